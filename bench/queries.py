#!/usr/bin/python3
"""The benchmark's queries: the same five questions asked of each system in its own language.

    queries.py --system meshd|influxdb|postgres|sqlite --runs N --bounds bounds.json [target]

Targets: meshd --url http://HOST:PORT --token TOKEN; influxdb --url http://HOST:PORT;
postgres --pghost SOCKETDIR --pgport PORT; sqlite --db FILE.

Each query is run once to warm up, then --runs times, each timed as the whole client round
trip from a persistent client until the decoded rows are in hand: HTTP/1.1 keep-alive
(http.client) for meshd and InfluxDB (JSON decoded), psycopg2 for PostgreSQL (fetchall), the
sqlite3 module for SQLite (fetchall). Every run's rows are normalised (times as integer
nanoseconds, floats rounded to 6 decimals, sorted) and fingerprinted; all runs must agree, and
bench/report.py checks the fingerprints agree across systems.

The data's time range comes from bounds.json ({"tmin", "tmax", "truck"}, nanoseconds): "now"
is the newest reading (tmax), so the queries mean the same thing on every system whatever the
wall clock says.

meshd answers the two "latest per truck" questions from its `product__last` tables, and the
hourly average from its rollup view (`SELECT name, bucket, velocity_avg FROM
fleet.readings__agg('1h')`), when the meshd measured has them (--meshd-no-last: the plain SQL
forms, max(time) per name and GROUP BY time_bucket(), instead).

Rows whose `name` tag is missing (TSBS blanks a tag in 1 % of the entries) have no key: meshd's
contract sends them to the product's quarantine, so the peers' queries leave them out too
(`name IS NOT NULL`, InfluxQL `"name" != ''`).

Writes one JSON object (per query: times_ms, median/min/max, rows, fingerprint, first row) to
stdout. Standard library plus Debian's python3-psycopg2 (only for --system postgres).
"""
import argparse
import datetime
import hashlib
import http.client
import json
import socket
import statistics
import sys
import time
import urllib.parse

HOUR = 3600 * 10**9
QUERIES = ["last_reading", "avg_velocity_hourly", "low_fuel", "truck_last_hour", "rows_per_fleet"]
# column kinds for normalisation: s text, t time (ns), f float, i integer
KINDS = {
    "last_reading": "stffff",
    "avg_velocity_hourly": "stf",
    "low_fuel": "stf",
    "truck_last_hour": "tfffffff",
    "rows_per_fleet": "si",
}
SERVER_MS = []  # meshd: the elapsed_ms of each answer (time inside the server)
READING_COLS = "latitude, longitude, elevation, velocity, heading, grade, fuel_consumption"


def iso(ns):
    sec, frac = divmod(ns, 10**9)
    s = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return s + (".%09d" % frac if frac else "") + "Z"


def windows(b):
    """The time windows of the queries, from the data's bounds."""
    tmax = b["tmax"]
    day_hi = (tmax // HOUR + 1) * HOUR  # the 24 whole hours that end with the newest reading's
    return {"day_lo": day_hi - 24 * HOUR, "day_hi": day_hi, "hour_lo": tmax - HOUR,
            "hour_hi": tmax, "truck": b["truck"]}


def sql_queries(w, dialect):
    """SQL for meshd (SQLite with meshd's time functions), the raw SQLite row store
    (integer-nanosecond times) and PostgreSQL (timestamptz)."""
    if dialect == "meshd":
        t = lambda ns: "ts('%s')" % iso(ns)
        r, d, keyed, bucket = "fleet.readings", "fleet.diagnostics", "", "time_bucket('1h', time)"
    elif dialect == "sqlite":
        t = lambda ns: str(ns)
        r, d, keyed = "readings", "diagnostics", "name IS NOT NULL"
        bucket = "(time / %d) * %d" % (HOUR, HOUR)
    else:
        t = lambda ns: "'%s'::timestamptz" % iso(ns)
        r, d, keyed, bucket = "readings", "diagnostics", "name IS NOT NULL", "date_trunc('hour', time)"
    where = lambda *c: " WHERE " + " AND ".join(x for x in c if x) if any(c) else ""
    q = {}
    if dialect == "postgres":
        q["last_reading"] = (
            "SELECT DISTINCT ON (name) name, time, latitude, longitude, velocity, fuel_consumption "
            "FROM readings WHERE name IS NOT NULL ORDER BY name, time DESC")
        q["low_fuel"] = (
            "SELECT name, time, fuel_state FROM (SELECT DISTINCT ON (name) name, time, fuel_state "
            "FROM diagnostics WHERE name IS NOT NULL ORDER BY name, time DESC) latest "
            "WHERE fuel_state < 0.1")
    else:  # SQLite: a bare column next to max() comes from the row holding the maximum
        q["last_reading"] = (
            "SELECT name, max(time) AS time, latitude, longitude, velocity, fuel_consumption "
            "FROM %s%s GROUP BY name" % (r, where(keyed)))
        q["low_fuel"] = (
            "SELECT name, time, fuel_state FROM (SELECT name, max(time) AS time, fuel_state "
            "FROM %s%s GROUP BY name) WHERE fuel_state < 0.1" % (d, where(keyed)))
    q["avg_velocity_hourly"] = (
        "SELECT name, %s AS hour, avg(velocity) AS velocity FROM %s%s GROUP BY name, hour"
        % (bucket, r, where(keyed, "time >= %s" % t(w["day_lo"]), "time < %s" % t(w["day_hi"]))))
    q["truck_last_hour"] = (
        "SELECT time, %s FROM %s WHERE name = '%s' AND time > %s AND time <= %s ORDER BY time"
        % (READING_COLS, r, w["truck"], t(w["hour_lo"]), t(w["hour_hi"])))
    q["rows_per_fleet"] = "SELECT fleet, count(*) FROM %s%s GROUP BY fleet" % (r, where(keyed))
    return q


def meshd_last_variant(q):
    """meshd's time series have `product__last` (the newest row of each series, read without
    the series' history): the two "latest per truck" queries use it where the meshd measured
    has it (the plain SQL form above is the fallback, and --meshd-no-last forces it)."""
    q = dict(q)
    q["last_reading"] = ("SELECT name, time, latitude, longitude, velocity, fuel_consumption "
                         "FROM fleet.readings__last")
    q["low_fuel"] = "SELECT name, time, fuel_state FROM fleet.diagnostics__last WHERE fuel_state < 0.1"
    return q


def meshd_bucket_variant(q, w):
    """meshd's time series have `product__agg(width)`, a rollup view: one row per series and
    time bucket with count, sum, min, max and avg of each numeric column, counted as the
    store decodes the chunks instead of by SQLite one row at a time. The hourly average reads
    it (the same answer as `avg(velocity) ... GROUP BY name, bucket` over the rows, which
    --meshd-no-last asks instead)."""
    q = dict(q)
    t = lambda ns: "ts('%s')" % iso(ns)
    q["avg_velocity_hourly"] = (
        "SELECT name, bucket AS hour, velocity_avg AS velocity FROM fleet.readings__agg('1h') "
        "WHERE bucket >= %s AND bucket < %s"
        % (t(w["day_lo"]), t(w["day_hi"])))
    return q


def influx_queries(w):
    """InfluxQL. Identifiers are quoted (name and diagnostics are keywords). A missing tag
    reads as ''. A raw query returns a row when any selected field is in it, and TSBS blanks at
    most one field and one tag (load_capacity, fuel_capacity and nominal_fuel_consumption are
    TSBS tags written as fields) per row, so selecting both load_capacity and fuel_capacity
    makes "the latest point" the latest row, not the latest non-null value of one field; and a
    row count is the count of the name tag over such a subquery (a tag selected in a subquery
    is a field of the outer query)."""
    return {
        "last_reading": (
            'SELECT latitude, longitude, velocity, fuel_consumption, load_capacity, fuel_capacity '
            'FROM readings '
            'WHERE "name" != \'\' GROUP BY "name" ORDER BY time DESC LIMIT 1'),
        "avg_velocity_hourly": (
            'SELECT mean(velocity) FROM readings WHERE "name" != \'\' AND time >= %d AND '
            'time < %d GROUP BY time(1h), "name" fill(none)' % (w["day_lo"], w["day_hi"])),
        "low_fuel": (
            'SELECT fuel_state FROM (SELECT fuel_state, load_capacity, fuel_capacity '
            'FROM "diagnostics" '
            'WHERE "name" != \'\' GROUP BY "name" ORDER BY time DESC LIMIT 1) '
            'WHERE fuel_state < 0.1 GROUP BY "name" ORDER BY time DESC'),
        "truck_last_hour": (
            'SELECT %s FROM readings WHERE "name" = \'%s\' AND time > %d AND time <= %d'
            % (READING_COLS, w["truck"], w["hour_lo"], w["hour_hi"])),
        "rows_per_fleet": (
            'SELECT count(n) FROM (SELECT "name" AS n, load_capacity, fuel_capacity FROM readings '
            'WHERE "name" != \'\') GROUP BY "fleet"'),
    }


def influx_rows(name, doc):
    """Turns InfluxDB's series into rows shaped like the SQL answers."""
    res = doc["results"][0]
    if "error" in res:
        raise RuntimeError(res["error"])
    out = []
    for s in res.get("series", []):
        tags = s.get("tags", {})
        cols = s["columns"]
        for v in s["values"]:
            row = dict(zip(cols, v))
            if name == "last_reading":
                out.append([tags["name"], row["time"], row["latitude"], row["longitude"],
                            row["velocity"], row["fuel_consumption"]])
            elif name == "avg_velocity_hourly":
                out.append([tags["name"], row["time"], row["mean"]])
            elif name == "low_fuel":
                out.append([tags["name"], row["time"], row["fuel_state"]])
            elif name == "truck_last_hour":
                out.append([row[c] for c in ["time"] + READING_COLS.split(", ")])
            else:
                out.append([tags.get("fleet") or None, row["count"]])
    return out


def to_ns(v):
    if isinstance(v, datetime.datetime):
        d = v - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (d.days * 86400 + d.seconds) * 10**9 + d.microseconds * 1000
    return int(v)


def normalise(name, rows):
    kinds = KINDS[name]
    out = []
    for r in rows:
        if len(r) != len(kinds):
            raise RuntimeError("%s: %d columns, expected %d: %r" % (name, len(r), len(kinds), r))
        n = []
        for k, v in zip(kinds, r):
            if v is None:
                n.append(None)
            elif k == "t":
                n.append(to_ns(v))
            elif k == "f":
                n.append(round(float(v), 6) + 0.0)
            elif k == "i":
                n.append(int(v))
            else:
                n.append(str(v))
        out.append(n)
    out.sort(key=lambda r: [(x is None, x if x is not None else 0) for x in r])
    return out


class Http:
    """Python's http.client (--http-client stdlib)."""
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)

    def call(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError("HTTP %d: %s" % (resp.status, data[:2000]))
        return data


class LeanHttp:
    """HTTP/1.1 over one kept-alive socket, reading the status line, Content-Length or a
    chunked body and nothing else of the headers (--http-client lean, the default): the work
    a compiled client does, as psycopg2 (C) does for PostgreSQL. Python's http.client parses
    every response header with email.parser: on this machine that alone took about 0.1 ms a
    request (meshd's SELECT 1: 0.227 ms round trip through http.client, 0.127 ms through a
    socket), the same for meshd and InfluxDB, more than meshd spends on most of the queries
    here. Both clients are kept: the results say which one measured."""
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.sock = None
        self.buf = b""
        self.conn = self  # callers reset a connection with h.conn.close(), as for http.client

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("HTTP: the server closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def call(self, method, path, body=None, headers=None):
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=600)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(body, str):
            body = body.encode()
        body = body or b""
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n" % (
            method, path, self.host, self.port, len(body))
        head += "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(head.encode() + b"\r\n" + body)
        status = int(self._line().split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding":
                chunked = b"chunked" in v.lower()
            elif k == b"connection":
                close = b"close" in v.lower()
        if chunked:
            parts = []
            while True:
                n = int(self._line().split(b";")[0], 16)
                if n == 0:
                    while self._line():  # trailers
                        pass
                    break
                parts.append(self._take(n))
                self._take(2)
            data = b"".join(parts)
        elif length is not None:
            data = self._take(length)
        else:  # to the end of the connection
            try:
                while True:
                    self._fill()
            except RuntimeError:
                pass
            data, self.buf, close = self.buf, b"", True
        if close:
            self.close()
        if status != 200:
            raise RuntimeError("HTTP %d: %s" % (status, data[:2000]))
        return data


HTTP_CLIENTS = {"lean": LeanHttp, "stdlib": Http}


def make_runner(a, w):
    """Returns (queries {name: text}, run(text, name) -> rows)."""
    if a.system == "meshd":
        h = HTTP_CLIENTS[a.http_client](a.url)
        hdr = {"Authorization": "Bearer " + a.token, "Content-Type": "application/json"}

        def run(q, name):
            doc = json.loads(h.call("POST", "/v1/query",
                                    json.dumps({"sql": q, "time_format": "ns"}), hdr))
            if "error" in doc:
                raise RuntimeError("meshd: %s" % doc["error"])
            SERVER_MS.append(doc.get("elapsed_ms"))  # meshd's own time for the query
            return doc["rows"]
        qs = sql_queries(w, "meshd")
        if not a.meshd_no_last:
            try:
                run("SELECT 1 FROM fleet.readings__last LIMIT 1", None)
                qs = meshd_last_variant(qs)
            except RuntimeError:
                h.conn.close()  # an older meshd: no __last tables (reconnects on next request)
            try:
                run("SELECT bucket FROM fleet.readings__agg('1h') LIMIT 1", None)
                qs = meshd_bucket_variant(qs, w)
            except RuntimeError:
                h.conn.close()  # an older meshd: no rollup view
        return qs, run
    if a.system == "influxdb":
        h = HTTP_CLIENTS[a.http_client](a.url)

        def run(q, name):
            path = "/query?" + urllib.parse.urlencode({"db": "fleet", "epoch": "ns", "q": q})
            return influx_rows(name, json.loads(h.call("GET", path)))
        return influx_queries(w), run
    if a.system == "postgres":
        import psycopg2
        conn = psycopg2.connect(host=a.pghost, port=a.pgport, user="postgres", dbname="postgres")
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SET TimeZone = 'UTC'")

        def run(q, name):
            cur.execute(q)
            return cur.fetchall()
        return sql_queries(w, "postgres"), run
    if a.system == "sqlite":
        import sqlite3
        conn = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True)

        def run(q, name):
            return conn.execute(q).fetchall()
        return sql_queries(w, "sqlite"), run
    raise SystemExit("unknown system " + a.system)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--system", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bounds", required=True)
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--pghost")
    p.add_argument("--pgport", type=int)
    p.add_argument("--db")
    p.add_argument("--only", help="comma-separated query names")
    p.add_argument("--meshd-no-last", action="store_true",
                   help="meshd: the plain SQL forms (max(time), time_bucket()), not __last "
                   "and __agg")
    p.add_argument("--http-client", choices=sorted(HTTP_CLIENTS), default="lean",
                   help="meshd and InfluxDB: a socket reading only what it needs (lean) or "
                   "Python's http.client (stdlib)")
    p.add_argument("--print-queries", action="store_true")
    a = p.parse_args()
    with open(a.bounds) as f:
        w = windows(json.load(f))
    if a.print_queries:
        qs = {"meshd": meshd_bucket_variant(meshd_last_variant(sql_queries(w, "meshd")), w),
              "meshd (without __last)": sql_queries(w, "meshd"), "influxdb": influx_queries(w),
              "postgres": sql_queries(w, "postgres"), "sqlite": sql_queries(w, "sqlite")}
        json.dump(qs, sys.stdout, indent=1)
        print()
        return
    texts, run = make_runner(a, w)
    names = a.only.split(",") if a.only else QUERIES
    out = {"system": a.system, "runs": a.runs, "windows": w, "queries": {}}
    if a.system in ("meshd", "influxdb"):
        out["http_client"] = a.http_client
    for name in names:
        q = texts[name]
        fps, times, server = set(), [], []
        for i in range(a.runs + 1):  # the first run warms up and is not counted
            del SERVER_MS[:]
            t0 = time.perf_counter()
            rows = run(q, name)
            dt = time.perf_counter() - t0
            if i > 0 and SERVER_MS and SERVER_MS[-1] is not None:
                server.append(SERVER_MS[-1])
            norm = normalise(name, rows)
            fps.add(hashlib.sha256(json.dumps(norm).encode()).hexdigest()[:16])
            if i > 0:
                times.append(dt * 1e3)
        if len(fps) != 1:
            raise SystemExit("%s %s: the answer changed between runs" % (a.system, name))
        out["queries"][name] = {
            "query": q, "times_ms": [round(t, 3) for t in times],
            "median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "max_ms": round(max(times), 3), "rows": len(norm), "fingerprint": fps.pop(),
            "first_row": norm[0] if norm else None}
        if server:
            out["queries"][name]["server_median_ms"] = round(statistics.median(server), 3)
        print("  %-9s %-20s %9.2f ms  (%d rows)" % (a.system, name, statistics.median(times),
                                                    len(norm)), file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
