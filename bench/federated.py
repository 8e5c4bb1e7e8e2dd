"""Federated scan overhead: the same queries on the node that holds the data (local) and on
another node of the mesh (federated), in one run on this machine.

A 3-server nats-server hub (configs from `meshctl mesh config`), node n1 owning domain
factory with ROWS rows, node n2 owning nothing. Each query is sent over HTTPS by this script
to n1 (local) and to n2 (federated: the statement sent whole to n1 over NATS since decision
0039, before it describe + scans of remote tables; frames of 256 KiB), RUNS times
after WARMUP runs, through one kept-alive connection per node (--connection-per-query: a new
connection and TLS handshake for every query, as the tables before 20261124 14:40 did); the
table gives the median and p90 wall time of each and the ratio federated / local. Both
answers are compared (they must be equal).

Usage: bench/federated.sh [--rows N] [--runs N] [--connection-per-query] [--only TEXT]
       [--same-server]
       (MESH_BUILD: build dir, default build/release)
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
os.environ.setdefault("MESH_BUILD", os.path.join(SRC, "build", "release"))
sys.path.insert(0, os.path.join(SRC, "tests", "system"))
import meshlib  # noqa: E402
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, _servers, free_base  # noqa: E402

SEC = 1000000000
T0 = 1790000000 * SEC
DEVICES = 50

# Each reads one domain, so since decision 0039 the owner runs the whole statement and only
# its answer travels; before, the caller ran it over remote tables (the titles say what those
# pushed down). Run a build before 0039 (MESH_BUILD) for the table path.
QUERIES = [
    ("point: one device, a time range (table path: =, >= pushed)",
     "SELECT ts, temp FROM factory.readings WHERE device = 'd7' AND ts >= %d" % (T0 + 500 * SEC)),
    ("LIMIT 100 of one device (table path: =, LIMIT pushed)",
     "SELECT * FROM factory.readings WHERE device = 'd3' LIMIT 100"),
    ("one device, all rows (table path: = pushed)",
     "SELECT ts, temp, status FROM factory.readings WHERE device = 'd11'"),
    ("every device, the last quarter of the time range (table path: >= pushed)",
     "SELECT device, ts, temp FROM factory.readings WHERE ts >= %d" % (T0 + 1500 * SEC)),
    ("GROUP BY over every row (table path: all rows travel)",
     "SELECT device, count(*), avg(temp) FROM factory.readings GROUP BY device"),
    ("the same from the rollup view (table path: a row per device and day travels)",
     "SELECT device, sum(rows), sum(temp_sum) / sum(temp_count) FROM factory.readings__agg('1d') "
     "GROUP BY device"),
]


class Conn:
    """One kept-alive HTTPS connection to a node (the default)."""

    def __init__(self, node):
        self.node = node
        self.c = http.client.HTTPSConnection(node.host, node.port, timeout=60,
                                             context=node.ssl_context())

    def request(self, method, path, body):
        h = {"Authorization": "Bearer " + self.node.token, "Content-Type": "application/json"}
        self.c.request(method, path, body=json.dumps(body), headers=h)
        r = self.c.getresponse()
        return r.status, None, r.read()


def timed(node, sql):
    t = time.perf_counter()
    st, _, body = node.request("POST", "/v1/query", {"sql": sql})
    dt = time.perf_counter() - t
    if st != 200:
        raise SystemExit("query failed on %s: %s %s" % (node.url, st, body[:300]))
    return dt, json.loads(body)["rows"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--same-server", action="store_true",
                    help="both nodes connected to the same hub server (by default each node's "
                         "list starts with another server, as `meshctl mesh config` writes it)")
    ap.add_argument("--only", default="",
                    help="run only the queries whose title contains this text (to profile one)")
    ap.add_argument("--connection-per-query", action="store_true",
                    help="a new HTTPS connection (with its TLS handshake) per query, on both "
                         "nodes; default: one kept-alive connection per node, so the times are "
                         "the queries'")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="meshd-bench-fed-")
    nodes = []
    try:
        run(a, tmp, nodes)
    finally:
        for n in nodes:
            n.destroy()
        for s in list(_servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp, nodes):
    base = free_base(3)
    mdir = os.path.join(tmp, "mesh")
    subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1", "--hub",
                    "3", "--client-port", str(base), "--cluster-port", str(base + 100),
                    "--leafnode-port", str(base + 200), "--node", "n1=factory",
                    "--node", "n2"], check=True, capture_output=True)
    for h in ("hub-1", "hub-2", "hub-3"):
        NatsServer(os.path.join(mdir, h, "nats.conf"), os.path.join(tmp, h + ".log")).start()
    n1 = Node(args=["--config", os.path.join(mdir, "nodes", "n1", "meshd.conf"),
                    "--mesh-heartbeat", "1s", "--mesh-ttl", "3s"]).start()
    nodes.append(n1)
    same = []
    if a.same_server:  # n2 lists the servers in n1's order: both on n1's server
        with open(os.path.join(mdir, "nodes", "n1", "meshd.conf")) as f:
            same = ["--mesh", [ln.split("=", 1)[1].strip() for ln in f
                               if ln.startswith("mesh =")][0]]
    n2 = Node(args=["--config", os.path.join(mdir, "nodes", "n2", "meshd.conf"),
                    "--mesh-heartbeat", "1s", "--mesh-ttl", "3s"] + same).start()
    nodes.append(n2)
    n1.create_domain("factory")
    n1.apply(contract(domain="factory"), expect=201)
    per = a.rows // DEVICES
    batch = []
    for i in range(per):
        for d in range(DEVICES):
            batch.append({"device": "d%d" % d, "ts": T0 + i * SEC, "temp": 20 + (i * 7 + d) % 50,
                          "status": ["ok", "warn", "fail"][(i + d) % 3]})
            if len(batch) == 5000:
                st, doc = n1.post_rows("factory", "readings", batch)
                assert st == 200, doc
                batch = []
    if batch:
        st, doc = n1.post_rows("factory", "readings", batch)
        assert st == 200, doc

    def reachable():
        st, _, _ = n2.request("POST", "/v1/query",
                              {"sql": "SELECT count(*) FROM factory.readings"})
        return st == 200
    if not wait_for(reachable, timeout=60, step=0.5):
        raise SystemExit("factory not reachable from n2")
    print("rows: %d (%d devices), runs: %d after %d warm-up, build: %s, %s" % (
        per * DEVICES, DEVICES, a.runs, a.warmup, os.environ["MESH_BUILD"],
        "a new connection a query" if a.connection_per_query else
        "one kept-alive connection per node"))
    print()
    print("| query | rows out | local median ms | local p90 | federated median ms | "
          "federated p90 | federated / local |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    c1, c2 = (n1, n2) if a.connection_per_query else (Conn(n1), Conn(n2))
    def scan_metrics():
        m = n2.request("GET", "/metrics")[2].decode()
        v = {}
        for line in m.splitlines():
            for k in ("meshd_fed_remote_scan_seconds_total", "meshd_fed_remote_scans_total",
                      "meshd_fed_remote_queries_total", "meshd_fed_remote_bytes_total",
                      "meshd_fed_remote_rows_total"):
                if line.startswith(k + " "):
                    v[k] = float(line.split()[1])
        return v
    def owner_seq():
        st, _, body = n1.request("POST", "/v1/query",
                                 {"sql": "SELECT max(seq) FROM system.audit"})
        return json.loads(body)["rows"][0][0]

    def owner_time(seq0):
        st, _, body = n1.request("POST", "/v1/query", {
            "sql": "SELECT avg(json_extract(details, '$.elapsed_ms')) FROM system.audit "
                   "WHERE seq > %d AND action = 'query' AND auth = 'mesh-node'" % seq0})
        v = json.loads(body)["rows"][0][0]
        return v if v is not None else float("nan")
    scans = []
    for title, sql in QUERIES:
        if a.only not in title:
            continue
        m0 = None
        lt, ft = [], []
        for i in range(a.warmup + a.runs):
            # alternate so both see the same machine load
            dl, rl = timed(c1, sql)
            df, rf = timed(c2, sql)
            if rl != rf:
                raise SystemExit("different answers for %s" % sql)
            if i + 1 == a.warmup:
                m0 = scan_metrics()
                seq0 = owner_seq()
            if i >= a.warmup:
                lt.append(dl)
                ft.append(df)
        m1 = scan_metrics()
        k = m1["meshd_fed_remote_scans_total"] - m0["meshd_fed_remote_scans_total"]
        owner_ms = owner_time(seq0)
        whole = (m1.get("meshd_fed_remote_queries_total", 0) -
                 m0.get("meshd_fed_remote_queries_total", 0))
        # bytes a row on the mesh (builds before decision 0041 do not count them)
        rows = (m1.get("meshd_fed_remote_rows_total", 0) -
                m0.get("meshd_fed_remote_rows_total", 0))
        nbytes = (m1.get("meshd_fed_remote_bytes_total", 0) -
                  m0.get("meshd_fed_remote_bytes_total", 0))
        per_row = "%.1f" % (nbytes / rows) if nbytes and rows else "-"
        scans.append((title, (m1["meshd_fed_remote_scan_seconds_total"] -
                              m0["meshd_fed_remote_scan_seconds_total"]) / max(k, 1) * 1e3,
                      k / a.runs, whole / a.runs, owner_ms, per_row))
        lm, fm = statistics.median(lt), statistics.median(ft)
        p90 = lambda v: sorted(v)[int(0.9 * (len(v) - 1))]  # noqa: E731
        print("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
            title, len(rl), lm * 1e3, p90(lt) * 1e3, fm * 1e3, p90(ft) * 1e3, fm / lm))
    print()
    print("Remote scans as n2 timed them (request sent to last frame in; mean over the runs):")
    print()
    print("| query | scans a query | of which whole statements | mean scan ms | owner ms | "
          "bytes a row |")
    print("|---|---:|---:|---:|---:|---:|")
    for title, ms, per, whole, owner_ms, per_row in scans:
        print("| %s | %.1f | %.1f | %.2f | %.2f | %s |" % (title, per, whole, ms, owner_ms,
                                                        per_row))
    print()
    print("(owner ms: the mean time n1 spent on a scan, from the request in to the last frame "
          "out, from its audit records; the rest of a scan's time is the NATS path)")
    m = n2.request("GET", "/metrics")[2].decode()
    print()
    for line in m.splitlines():
        if line.startswith("meshd_fed_remote_"):
            print("    " + line)


if __name__ == "__main__":
    main()
