"""Federated queries and security between nodes (issue 7 parts 4 and 6), real processes.

`meshctl mesh config` writes a 3-server hub cluster; the test starts those nats-servers and
three meshd nodes, each owning one domain (n1: factory, n2: energy, n3: quality), and a
fourth, standalone node (ref) holding all three domains with the same rows and policies.
Then:
- a join across the three domains, run on n3 as user ana, returns the same rows as the same
  query on ref; ana's mask (factory.readings.status) and row filter (energy.readings) are
  applied by the owners: through another node she sees masked and filtered rows;
- pushed-down scans and LIMIT give the same answers as local ones; the remote scan metrics
  count them;
- the owner's audit log (n1) records the scans with the real user (ana) and the calling node;
- an unauthorised user (bob: no grants on the owners; carol: unknown there) gets a clear
  error;
- requests sent straight to the domain's subject as node n3's NATS user are refused: not
  signed, a wrong signature, a stale one, a replay, a reply subject of another node; each
  refusal is audited on the owner;
- node n3's NATS user may not serve (subscribe to) the factory domain's subjects, nor publish
  to its stream subjects.
Every nats-server and meshd started here is stopped at the end, also on failure.
"""
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, free_base, run_in_tmp  # noqa: E402

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # python3-cryptography: signed test requests need it
    Ed25519PrivateKey = None

SEC = 1000000000
T0 = 1790000000 * SEC
DOMAINS = (("n1", "factory"), ("n2", "energy"), ("n3", "quality"))


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def rows_for(domain):
    out = []
    for d in range(4):
        for i in range(6):
            temp = {"factory": 20.0, "energy": 100.0, "quality": 1.0}[domain] + d * 3 + i * 0.5
            out.append({"device": "d%d" % d, "ts": T0 + i * 60 * SEC, "temp": temp,
                        "status": ["ok", "warn", "fail"][(d + i) % 3]})
    return out


def setup_policies(n, domains):
    """ana (role analyst): reads every domain; factory.readings.status masked; energy rows of
    device d3 filtered out. bob exists without grants."""
    n.json("POST", "/v1/roles", {"name": "analyst"}, expect=201)
    n.json("POST", "/v1/principals", {"name": "ana", "kind": "service", "roles": ["analyst"]},
           expect=201)
    n.json("POST", "/v1/principals", {"name": "bob", "kind": "service", "roles": []},
           expect=201)
    for d in domains:
        n.json("POST", "/v1/grants", {"role": "analyst", "action": "read", "domain": d},
               expect=201)
        if d == "factory":
            n.json("POST", "/v1/masks", {"domain": d, "product": "readings", "column": "status",
                                         "type": "MASK", "roles": ["analyst"]}, expect=201)
        if d == "energy":
            n.json("POST", "/v1/row-filters", {"role": "analyst", "domain": d,
                                               "product": "readings",
                                               "predicate": "device <> 'd3'"}, expect=201)


def token(n, who):
    return n.json("POST", "/v1/tokens", {"principal": who}, expect=201)[1]["token"]


def q(n, tok, sql, expect=200):
    st, _, body = n.request("POST", "/v1/query", {"sql": sql}, token=tok)
    doc = json.loads(body) if body.strip() else None
    if st != expect:
        fail("query %r on %s -> %d: %s" % (sql, n.url, st, doc))
    return doc


# ---- a raw NATS client (what a hostile node user could send) ----

class Raw:
    def __init__(self, port, user, password, inbox, cafile, cert, key):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.makefile("rb").readline()  # INFO
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.load_cert_chain(cert, key)
        self.ss = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.f = self.ss.makefile("rb")
        self.inbox, self.n, self.last_reply = inbox, 0, None
        self.ss.sendall(b"CONNECT " + json.dumps({"verbose": False, "user": user,
                                                  "pass": password}).encode() +
                        b"\r\nSUB " + inbox.encode() + b".> 1\r\nPING\r\n")
        if self.line() != "PONG":
            fail("cannot connect as %s" % user)

    def line(self):
        while True:
            line = self.f.readline().decode(errors="replace").strip()
            if not line.startswith("INFO") and line != "+OK":
                return line

    def send(self, data):
        self.ss.sendall(data)

    def request(self, subject, body, reply=None):
        """The reply's payload (bytes), or the server's -ERR line (str), or None (timeout)."""
        self.n += 1
        reply = reply or "%s.%d" % (self.inbox, self.n)
        self.ss.sendall(("PUB %s %s %d\r\n" % (subject, reply, len(body))).encode() + body +
                        b"\r\n")
        self.ss.settimeout(3)
        try:
            while True:
                line = self.line()
                if line.startswith("-ERR"):
                    return line
                if line.startswith("MSG "):
                    size = int(line.split()[-1])
                    data = self.f.read(size + 2)[:size]
                    if line.split()[1] == reply:
                        # MSG <subject> <sid> [reply-to] <size>: where to answer it
                        self.last_reply = line.split()[3] if len(line.split()) == 5 else None
                        return data
                if line == "PING":
                    self.ss.sendall(b"PONG\r\n")
        except (socket.timeout, TimeoutError):
            return None
        finally:
            self.ss.settimeout(10)

    def close(self):
        self.ss.close()


def frame_tags(payload):
    """The value tags of a rows frame (fedwire.h)."""
    if not isinstance(payload, bytes) or payload[:4] != b"MFC1" or payload[4] != 0:
        fail("not a rows frame: %r" % (payload[:80],))
    ncols, nrows = struct.unpack("<HI", payload[6:12])
    at, tags = 12, set()

    def uvarint():
        nonlocal at
        v = shift = 0
        while True:
            b = payload[at]
            at += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v
    for _ in range(ncols * nrows):
        tag = payload[at]
        at += 1
        tags.add(tag)
        if tag in (1, 2):
            at += 8
        elif tag == 3:
            n = uvarint()  # (then moved past: at += uvarint() would read at first)
            at += n
        elif tag in (4, 5, 6):
            uvarint()
    if at != len(payload):
        fail("a rows frame of %d bytes ends at %d" % (len(payload), at))
    return tags


def frame_error(payload):
    """(status code, message) of an error frame; fails on anything else."""
    if not isinstance(payload, bytes) or payload[:4] != b"MFC1" or payload[4] != 1:
        fail("not an error frame: %r" % (payload,))
    code, ln = payload[12], struct.unpack("<H", payload[13:15])[0]
    return code, payload[15:15 + ln].decode()


def signed(key, subject, doc):
    js = json.dumps(doc, separators=(",", ":")).encode()
    sig = key.sign(b"meshd-fed-v1\n" + subject.encode() + b"\n" + js)
    return b"MFS1" + sig + js


def main():
    run_in_tmp("meshd-fed-test-", run)
    print("ok")


def run(tmp, nodes):
    base = free_base(3)
    cport, rport, lport = base, base + 100, base + 200
    mdir = os.path.join(tmp, "mesh")
    out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1",
                          "--hub", "3", "--client-port", str(cport), "--cluster-port",
                          str(rport), "--leafnode-port", str(lport)] +
                         sum([["--node", "%s=%s" % (nn, d)] for nn, d in DOMAINS], []) +
                         ["--node", "n4"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail("mesh config: %s%s" % (out.stdout, out.stderr))
    for name in ("hub-1", "hub-2", "hub-3"):
        NatsServer(os.path.join(mdir, name, "nats.conf"),
                   os.path.join(tmp, name + ".log")).start()
    for nn, _ in DOMAINS:
        nodes[nn] = Node(args=["--config", os.path.join(mdir, "nodes", nn, "meshd.conf"),
                               "--site", nn, "--mesh-heartbeat", "500ms",
                               "--mesh-ttl", "2s"]).start()
    nodes["ref"] = Node().start()
    n1, n2, n3, ref = nodes["n1"], nodes["n2"], nodes["n3"], nodes["ref"]

    # ---- domains, rows and the same policies on the owners and on ref ----
    for nn, d in DOMAINS:
        n = nodes[nn]
        n.create_domain(d, owners=["ops"])
        n.apply(contract(domain=d), expect=201)
        st, doc = n.post_rows(d, "readings", rows_for(d))
        if st != 200:
            fail("rows into %s: %s %s" % (d, st, doc))
        setup_policies(n, [d])
        ref.create_domain(d, owners=["ops"])
        ref.apply(contract(domain=d), expect=201)
        st, doc = ref.post_rows(d, "readings", rows_for(d))
        if st != 200:
            fail("rows into ref %s: %s %s" % (d, st, doc))
    setup_policies(ref, [d for _, d in DOMAINS])
    # ana and bob exist on the caller too (they authenticate there); carol only on n3
    n3.json("POST", "/v1/principals", {"name": "carol", "kind": "service", "roles": []},
            expect=201)
    ana, ana_ref = token(n3, "ana"), token(ref, "ana")

    # ---- every node learns where the others' domains live ----
    def sees(n, d):
        st, _, body = n.request("POST", "/v1/query",
                                {"sql": "SELECT count(*) FROM %s.readings" % d},
                                token=meshlib.TOKEN)
        return st == 200
    for nn, _ in DOMAINS:
        for _, d in DOMAINS:
            if not wait_for(lambda: sees(nodes[nn], d), timeout=40, step=0.5):
                fail("%s not reachable from %s\n%s" % (d, nn, "\n".join(nodes[nn].log[-30:])))

    # ---- a join across the three nodes = the same query on one node holding everything ----
    join = ("SELECT f.device, f.ts, f.temp, f.status, e.temp AS power, q.status AS grade "
            "FROM factory.readings f JOIN energy.readings e ON e.device = f.device AND "
            "e.ts = f.ts JOIN quality.readings q ON q.device = f.device AND q.ts = f.ts "
            "ORDER BY f.device, f.ts")
    got, want = q(n3, ana, join), q(ref, ana_ref, join)
    if got["rows"] != want["rows"] or not want["rows"]:
        fail("federated join differs:\n%s\n%s" % (got["rows"], want["rows"]))
    if len(want["rows"]) != 18:  # 4 devices x 6, minus d3 filtered out of energy
        fail("expected 18 joined rows, got %d" % len(want["rows"]))
    if any(r[0] == "d3" for r in got["rows"]):
        fail("energy's row filter not applied through another node")
    if any(r[3] in ("ok", "warn", "fail") for r in got["rows"]):
        fail("factory's mask not applied through another node: %s" % got["rows"][:3])
    # the remote tables outlive a query while the owner's description of the domain is reused
    # (2 s), their replay of repeated scans does not: rows written between two runs of the join
    # are in the second at once
    for nn, d in DOMAINS:
        row = [{"device": "d1", "ts": T0 + 9 * 60 * SEC, "temp": 7.0, "status": "ok"}]
        for n in (nodes[nn], ref):
            st, doc = n.post_rows(d, "readings", row)
            if st != 200:
                fail("a new row into %s on %s: %s %s" % (d, n.url, st, doc))
    got, want = q(n3, ana, join), q(ref, ana_ref, join)
    if got["rows"] != want["rows"] or len(want["rows"]) != 19:
        fail("the join run again after new rows: %d rows, not %d:\n%s" % (
            len(got["rows"]), len(want["rows"]), got["rows"][-3:]))
    # the same from n2, and pushed-down constraints, LIMIT and aggregates: each reads one
    # remote domain, so its owner runs the whole statement (decision 0039)
    def metric(n, name):
        m = n.request("GET", "/metrics")[2].decode()
        return int(float([ln for ln in m.splitlines() if ln.startswith(name + " ")][0].split()[1]))
    pushed0 = {nn: metric(nodes[nn], "meshd_fed_remote_queries_total") for nn in ("n1", "n2")}
    for sql in ("SELECT device, temp FROM factory.readings WHERE device = 'd1' AND temp > 24 "
                "ORDER BY ts",
                "SELECT count(*), sum(temp) FROM energy.readings",
                "SELECT device FROM quality.readings WHERE status = 'ok' LIMIT 2",
                "SELECT status, count(*) FROM factory.readings GROUP BY status ORDER BY 1"):
        a = q(n2 if "energy" not in sql else n1, token(n2 if "energy" not in sql else n1, "ana"),
              sql)["rows"]
        b = q(ref, ana_ref, sql)["rows"]
        if a != b:
            fail("%s:\n%s\n%s" % (sql, a, b))
    if metric(n2, "meshd_fed_remote_queries_total") - pushed0["n2"] != 3 or \
            metric(n1, "meshd_fed_remote_queries_total") - pushed0["n1"] != 1:
        fail("the one-domain queries were not all sent whole to their owners")
    # the GROUP BY ran on the owner: 3 rows travelled for 24 read; the answer's columns, their
    # types and the rows the owner scanned came with it
    rows0 = metric(n2, "meshd_fed_remote_rows_total")
    doc = q(n2, token(n2, "ana"), "SELECT device, count(*) AS n, max(ts) AS last, "
            "avg(temp) FROM factory.readings WHERE device <> 'd0' GROUP BY device ORDER BY 1")
    want = q(ref, ana_ref, "SELECT device, count(*) AS n, max(ts) AS last, avg(temp) "
             "FROM factory.readings WHERE device <> 'd0' GROUP BY device ORDER BY 1")
    if doc["rows"] != want["rows"] or doc["columns"] != want["columns"]:
        fail("a pushed GROUP BY:\n%s\n%s" % (doc, want))
    if metric(n2, "meshd_fed_remote_rows_total") - rows0 != 3:
        fail("a pushed GROUP BY moved %d rows, not its 3" % (
            metric(n2, "meshd_fed_remote_rows_total") - rows0))
    if doc.get("rows_scanned") != want.get("rows_scanned"):
        fail("rows scanned through n2: %s, on ref: %s" % (doc.get("rows_scanned"),
                                                          want.get("rows_scanned")))
    # its errors are the owner's, worded as a local query's
    for sql, code, words in (("SELECT nosuch FROM factory.readings", 400, "no such column"),
                             ("SELECT * FROM factory.nosuch", 400, "no such table"),
                             ("DELETE FROM factory.readings", 403, "")):
        a = q(n2, token(n2, "ana"), sql, expect=code)
        b = q(ref, ana_ref, sql, expect=code)
        if words not in a["error"]["message"] or a["error"]["code"] != b["error"]["code"]:
            fail("%s through n2: %s; on ref: %s" % (sql, a, b))
    # a time series' views through another node: the newest rows, and rollups computed on
    # the owner (the width travels as the view's argument; what reaches the caller is one row
    # per series and bucket), under the owner's policies: ana's row filter on energy refuses
    # her its rollups there, as on ref
    for sql in ("SELECT device, ts, temp FROM factory.readings__last ORDER BY device",
                "SELECT device, bucket, rows, temp_avg, temp_max FROM factory.readings__agg('2m') "
                "ORDER BY device, bucket",
                "SELECT device, bucket, temp_sum FROM quality.readings__agg('120s') "
                "WHERE device = 'd2' AND bucket >= %d" % (T0 + 120 * SEC),
                "SELECT device, bucket_width, count(*) FROM factory.readings__agg "
                "WHERE bucket_width = '5m' GROUP BY device ORDER BY device"):
        a = q(n2, token(n2, "ana"), sql)["rows"]
        b = q(ref, ana_ref, sql)["rows"]
        if a != b or not b:
            fail("%s:\n%s\n%s" % (sql, a, b))
    for n, tok in ((n1, token(n1, "ana")), (ref, ana_ref)):
        doc = q(n, tok, "SELECT * FROM energy.readings__agg('1h')", expect=400)
        if "row filter" not in doc["error"]["message"]:
            fail("energy's rollups for ana on %s: %s" % (n.url, doc))
    doc = q(n2, token(n2, "ana"), "SELECT * FROM factory.readings__agg", expect=400)
    if "bucket width" not in doc["error"]["message"]:
        fail("a remote rollup without a width: %s" % doc)
    metrics = n3.request("GET", "/metrics")[2].decode()
    scans = [ln for ln in metrics.splitlines() if ln.startswith("meshd_fed_remote_scans_total ")]
    if not scans or int(float(scans[0].split()[1])) < 3:
        fail("remote scan metrics: %s" % scans)

    # ---- a scan of several frames (one frame in flight), read whole and stopped early ----
    bulk = [{"device": "bulk", "ts": T0 + i * SEC, "temp": 20.0 + i % 50 * 0.5,
             "status": ["ok", "warn", "fail"][i % 3]} for i in range(30000)]
    for n in (n1, ref):
        for k in range(0, len(bulk), 5000):
            st, doc = n.post_rows("factory", "readings", bulk[k:k + 5000])
            if st != 200:
                fail("bulk rows into %s: %s %s" % (n.url, st, doc))

    def frames(what="frames"):
        m = n2.request("GET", "/metrics")[2].decode()
        name = "meshd_fed_remote_%s_total " % what
        return int(float([ln for ln in m.splitlines() if ln.startswith(name)][0].split()[1]))
    # the scans of remote tables (each query reads a second domain, so it is not sent whole)
    also = " AND EXISTS (SELECT 1 FROM quality.readings)"
    before = frames()
    for sql in ("SELECT count(*), sum(temp), min(ts), max(ts), group_concat(DISTINCT status) "
                "FROM factory.readings WHERE device = 'bulk'" + also,
                # LIMIT is not pushed (temp + 0 is not a constraint the owner gets): the
                # scan stops after a few rows, with the next frame already asked for
                "SELECT ts FROM factory.readings WHERE device = 'bulk' AND temp + 0 = 44.5" +
                also + " LIMIT 3",
                "SELECT count(*) FROM factory.readings WHERE device = 'bulk' AND "
                "EXISTS (SELECT 1 FROM factory.readings WHERE device = 'bulk' AND ts > 0)" +
                also):
        a = q(n2, token(n2, "ana"), sql)["rows"]
        b = q(ref, ana_ref, sql)["rows"]
        if a != b:
            fail("%s:\n%s\n%s" % (sql, a, b))
    if frames() - before < 4:
        fail("the bulk scans came in %d frames: expected several" % (frames() - before))
    # a statement sent whole whose answer takes several frames, read whole, stopped early
    # (LIMIT in the statement runs on the owner; max_rows stops the caller), and its NULLs,
    # reals and texts as the local query has them
    before, bytes0 = frames(), frames("bytes")
    sql = ("SELECT ts, temp, status, NULL AS none, temp * 2 FROM factory.readings "
           "WHERE device = 'bulk' ORDER BY ts")
    a, b = q(n2, token(n2, "ana"), sql), q(ref, ana_ref, sql)
    if a["rows"] != b["rows"] or len(a["rows"]) != 30000 or a["columns"] != b["columns"]:
        fail("a pushed statement of 30000 rows: %d rows, columns %s / %s" % (
            len(a["rows"]), a["columns"], b["columns"]))
    if frames() - before < 2:
        fail("30000 rows came in %d frames: expected several" % (frames() - before))
    # in compact values (decision 0041): each row's time as its difference from the last,
    # its texts as entries of the frame's table, its whole reals as integers; written plain
    # (9 bytes an integer or real, a text its length + 1) a row takes about 34 bytes
    per_row = (frames("bytes") - bytes0) / 30000
    if per_row > 20:
        fail("30000 rows took %.1f bytes a row on the mesh: not compact" % per_row)
    # max_rows: the same answer as the local query's (its rows, then the limit's error)
    for lim in (5, 100, 30000, 30001):
        a = n2.request("POST", "/v1/query", {"sql": sql, "max_rows": lim}, token=token(n2, "ana"))
        b = ref.request("POST", "/v1/query", {"sql": sql, "max_rows": lim}, token=ana_ref)
        da, db = json.loads(a[2]), json.loads(b[2])
        if a[0] != b[0] or da.get("rows") != db.get("rows") or \
                ("error" in da) != ("error" in db):
            fail("max_rows %d: through n2 %d %s; on ref %d %s" % (
                lim, a[0], str(da)[-200:], b[0], str(db)[-200:]))
        # what the owner scanned, up to the last frame n2 read (every frame says so)
        if not da.get("rows_scanned"):
            fail("max_rows %d through n2: rows_scanned %s" % (lim, da.get("rows_scanned")))
    # a statement that sends nothing until it is done (an aggregate over 36 million pairs),
    # asked by node n4 whose NATS requests wait 250 ms: waited for within the query's own time
    # limit, not the mesh's
    n4 = nodes["n4"] = Node(args=["--config", os.path.join(mdir, "nodes", "n4", "meshd.conf"),
                                  "--site", "n4", "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s",
                                  "--mesh-timeout", "250ms"]).start()
    n4.json("POST", "/v1/principals", {"name": "ana", "kind": "service", "roles": []},
            expect=201)
    if not wait_for(lambda: sees(n4, "factory"), timeout=40, step=0.5):
        fail("factory not reachable from n4\n%s" % "\n".join(n4.log[-30:]))
    slow = ("SELECT count(*) FROM (SELECT temp FROM factory.readings WHERE device = 'bulk' "
            "LIMIT 6000) a, (SELECT temp FROM factory.readings WHERE device = 'bulk' "
            "LIMIT 6000) b WHERE a.temp + b.temp > 0")
    t0 = time.time()
    a = q(n4, token(n4, "ana"), slow)
    took = time.time() - t0
    if a["rows"] != q(ref, ana_ref, slow)["rows"]:
        fail("a long statement through n4: %s" % a)
    print("a statement sent whole that ran %.2f s (n4's mesh timeout: 0.25 s)" % took)
    # while it runs on n1, other requests for factory are answered (n1 serves requests on
    # worker threads, not on the domain subscription's own): a quick query from n2 returns
    # before the long one
    served = lambda: metric(n1, "meshd_fed_served_scans_total")  # noqa: E731
    s0, box = served(), {}
    th = threading.Thread(target=lambda: box.update(r=q(n4, token(n4, "ana"), slow)))
    th.start()
    wait_for(lambda: served() > s0, timeout=30, step=0.02)
    quick = q(n2, token(n2, "ana"), "SELECT count(*) FROM factory.readings WHERE device = 'd2'")
    still = th.is_alive()
    th.join()
    if not still or quick["rows"] != [[6]] or box["r"]["rows"] != a["rows"]:
        fail("a quick query waited for a long one on the owner (long one done first: %s)" %
             (not still))
    st, _, body = n2.request("POST", "/v1/query", {"sql": sql, "format": "csv"},
                             token=token(n2, "ana"))
    if st != 200 or body.count(b"\n") != 30001:
        fail("csv of a pushed statement: %d, %d lines" % (st, body.count(b"\n")))

    # ---- the owner's audit log names the real user and the calling node ----
    aud = q(n1, meshlib.TOKEN, "SELECT principal, source, auth, details FROM system.audit "
            "WHERE action = 'query' AND auth = 'mesh-node'")["rows"]
    if not any(r[0] == "ana" and r[1] == "node:n3" and "factory.readings" in r[3]
               for r in aud):
        fail("owner audit has no record of ana via n3: %s" % aud)
    if not any('"masks":["factory.readings.status: MASK' in r[3] for r in aud):
        fail("owner audit does not name the mask applied: %s" % aud[:2])

    # ---- unauthorised users get a clear error ----
    doc = q(n3, token(n3, "bob"), "SELECT * FROM factory.readings", expect=403)
    if "may read none" not in doc["error"]["message"]:
        fail("bob: %s" % doc)
    doc = q(n3, token(n3, "carol"), "SELECT * FROM energy.readings", expect=403)
    if "no access on node n2" not in doc["error"]["message"]:
        fail("carol: %s" % doc)

    # ---- an aggregates-only product leaves its owner as aggregates only, or not at all ----
    n1.apply("""apiVersion: v3.1.0
kind: DataContract
id: urn:test:factory-visits
version: 1.0.0
status: active
domain: factory
schema:
  - name: visits
    customProperties:
      - property: egress
        value: aggregates-only
      - property: privacyUnit
        value: person
    properties:
      - name: person
        logicalType: string
        primaryKey: true
      - name: hr
        logicalType: integer
""", expect=201)
    st, doc = n1.post_rows("factory", "visits", [{"person": "p%d" % i, "hr": 60 + i}
                                                  for i in range(20)])
    if st != 200:
        fail("rows into factory.visits: %s %s" % (st, doc))
    # the owner answers its own outsider with aggregates, and so another node's: the statement
    # runs on the owner under the same rule (groups of fewer than k people dropped there); a
    # row scan is refused, and so is any query that would need the rows elsewhere (a join
    # with another node's domain)
    got = q(n1, token(n1, "ana"), "SELECT count(*) FROM factory.visits")
    if got["rows"] != [[20]] or got.get("suppressed_groups") != 0:
        fail("aggregate on the owner: %s" % got)
    def described(sql):
        """n3's answer to sql once it knows factory's new product: the caller reuses the
        owner's description of the domain for 2 s, so a new product is known once the domain
        is described again."""
        ans = {}

        def known():
            ans["r"] = n3.request("POST", "/v1/query", {"sql": sql}, token=ana)
            return b"no such table" not in ans["r"][2]
        wait_for(known, timeout=20, step=0.5)
        return ans["r"]
    st, _, body = described("SELECT hr > 70, count(*) FROM factory.visits GROUP BY hr > 70")
    got = json.loads(body) if st == 200 else {}
    # 11 people at 60-70 (k = 11 by default), 9 above: that group is suppressed
    if st != 200 or got["rows"] != [[0, 11]] or got.get("suppressed_groups") != 1:
        fail("aggregates of factory.visits through n3: %d %s" % (st, body[:300]))
    for sql in ("SELECT * FROM factory.visits",
                "SELECT count(*) FROM factory.visits v JOIN quality.readings q ON 1"):
        st, _, body = described(sql)
        if st == 200 or b"aggregates only" not in body:
            fail("%s through n3 was not refused by the owner: %d %s" % (sql, st, body[:300]))

    # ---- a residency-local product's rows never go to a node of another site ----
    n1.apply("""apiVersion: v3.1.0
kind: DataContract
id: urn:test:factory-recipes
version: 1.0.0
status: active
domain: factory
schema:
  - name: recipes
    customProperties:
      - property: residency
        value: local
    properties:
      - name: name
        logicalType: string
        primaryKey: true
      - name: secret
        logicalType: string
""", expect=201)
    st, doc = n1.post_rows("factory", "recipes", [{"name": "glue", "secret": "s1"}])
    if st != 200:
        fail("rows into factory.recipes: %s %s" % (st, doc))
    if q(n1, token(n1, "ana"), "SELECT count(*) FROM factory.recipes")["rows"] != [[1]]:
        fail("a residency-local product on its own node")
    # n3 is on site n3, n1 on site n1: refused, sent whole or as a remote table's scan, and
    # audited on n1 (its views count as the product)
    for sql in ("SELECT * FROM factory.recipes", "SELECT count(*) FROM factory.recipes",
                "SELECT r.name FROM factory.recipes r JOIN quality.readings q ON 1"):
        st, _, body = described(sql)
        if st != 403 or b"residency local to site n1" not in body or b"glue" in body:
            fail("%s through n3: %d %s" % (sql, st, body[:300]))
    denied = q(n1, meshlib.TOKEN, "SELECT count(*) FROM system.audit WHERE action = "
               "'authz.deny' AND source = 'node:n3' AND details LIKE '%residency local%'")
    if denied["rows"][0][0] < 3:
        fail("residency refusals not audited on n1: %s" % denied)
    # nor when the query reaches the product after frames of other rows have left (the
    # second part of a UNION opens its scan late): the answer stops with the refusal
    sql = ("SELECT device, status FROM factory.readings WHERE device = 'bulk' UNION ALL "
           "SELECT name, secret FROM factory.recipes")
    st, _, body = n3.request("POST", "/v1/query", {"sql": sql}, token=ana)
    if b"glue" in body or b"s1" in body.split(b"residency")[0][-200:] or \
            b"residency local to site n1" not in body:
        fail("a residency-local product after the first frame: %d ...%s" % (st, body[-300:]))
    # a derived product's SQL must read this node's domains: a remote one is refused, and the
    # node stays up (the statement is never sent whole for lineage)
    n3.json("POST", "/v1/grants", {"role": "analyst", "action": "admin", "domain": "quality"},
            expect=201)
    st, _, body = n3.request("POST", "/v1/derive/quality/fromfactory",
                             {"sql": "SELECT device, temp FROM factory.readings "
                                     "WHERE device = 'd1'"}, token=token(n3, "ana"))
    if st < 400 or n3.proc.poll() is not None:
        fail("a derived product over another node's domain: %d %s (n3 alive: %s)" % (
            st, body[:300], n3.proc.poll() is None))

    # ---- forged, unsigned, stale, replayed requests on the domain's subject ----
    ndir = os.path.join(mdir, "nodes", "n3")
    raw = Raw(cport, "n3", open(os.path.join(ndir, "password")).read().strip(), "_INBOX_n3.raw",
              os.path.join(mdir, "ca.pem"), os.path.join(ndir, "cert.pem"),
              os.path.join(ndir, "key.pem"))
    subj = "meshd.dom.factory.req.scan"
    code, msg = frame_error(raw.request(subj, b"hello"))
    if "malformed" not in msg:
        fail("unsigned request: %d %s" % (code, msg))
    doc = {"v": 1, "op": "scan", "node": "n3", "user": "ana", "domain": "factory",
           "ts": time.time_ns(), "nonce": os.urandom(16).hex(), "table": "readings",
           "cols": ["device", "temp"], "where": []}
    js = json.dumps(doc).encode()
    code, msg = frame_error(raw.request(subj, b"MFS1" + os.urandom(64) + js))
    if "signature" not in msg:
        fail("forged signature: %s" % msg)
    if Ed25519PrivateKey is not None:
        seed = open(os.path.join(n3.data_dir, "node_sign.key"), "rb").read()
        key = Ed25519PrivateKey.from_private_bytes(seed)
        good = signed(key, subj, doc)
        r = raw.request(subj, good)
        if not isinstance(r, bytes) or r[:4] != b"MFC1" or r[4] != 0:
            fail("a correctly signed request was not answered with rows: %r" % (r,))
        # a caller that does not ask for compact values (an older node) gets plain ones;
        # one that asks gets its repeated devices as table entries (tag 6)
        if frame_tags(r) - {0, 1, 2, 3}:
            fail("compact values to a caller that did not ask: %s" % frame_tags(r))
        r = raw.request(subj, signed(key, subj, dict(doc, nonce=os.urandom(16).hex(), enc=2)))
        if 6 not in frame_tags(r):
            fail("no compact values to a caller that asked: %s" % frame_tags(r))
        # the frames after the first (decision 0041: the owner fills each one ahead): one
        # next per frame, on the subject the frame names; a second next for the same frame
        # is refused by the server (one response per message); a close ends the scan
        closed = ("SELECT count(*) FROM system.audit WHERE source = 'node:n3' AND "
                  "action = 'query' AND details LIKE '%closed by the caller%'")
        closed0 = q(n1, meshlib.TOKEN, closed)["rows"][0][0]
        many = dict(doc, nonce=os.urandom(16).hex(), cols=["device", "temp", "ts", "status"])
        r1 = raw.request(subj, signed(key, subj, many))
        next1 = raw.last_reply
        if frame_tags(r1) - {0, 1, 2, 3} or not next1 or ".fed." not in next1:
            fail("the first of several frames: tags %s, next subject %s" % (
                frame_tags(r1), next1))
        r2 = raw.request(next1, b"next")
        next2 = raw.last_reply
        if not frame_tags(r2) or not next2 or next2 == next1:
            fail("the second frame: next subject %s after %s" % (next2, next1))
        again = raw.request(next1, b"next")
        if not (isinstance(again, str) and "Permissions Violation for Publish" in again):
            fail("a second next for one frame: %r" % (again[:80],))
        raw.send(("PUB %s 5\r\nclose\r\n" % next2).encode())
        if not wait_for(lambda: q(n1, meshlib.TOKEN, closed)["rows"][0][0] > closed0, 10):
            fail("the scan closed by its caller after two frames is not audited as such: %s"
                 % q(n1, meshlib.TOKEN, "SELECT action, status, details FROM system.audit "
                     "WHERE source = 'node:n3' ORDER BY seq DESC LIMIT 3")["rows"])
        # a frame filled ahead does not leave once its product became residency local (n3 is
        # at another site): checked again when the next is asked, the error goes instead
        r1 = raw.request(subj, signed(key, subj, dict(many, nonce=os.urandom(16).hex())))
        next1 = raw.last_reply
        if not frame_tags(r1) or not next1:
            fail("the first frame before the residency change: %s" % next1)
        time.sleep(0.3)  # the second frame is filled ahead meanwhile
        n1.json("PUT", "/v1/governance/factory/readings", {"residency": "local"}, expect=200)
        try:
            code, msg = frame_error(raw.request(next1, b"next"))
            if "residency local" not in msg:
                fail("a frame filled before a residency change: %d %s" % (code, msg))
        finally:
            n1.json("PUT", "/v1/governance/factory/readings", {"residency": "any"}, expect=200)
        code, msg = frame_error(raw.request(subj, good))
        if "replay" not in msg:
            fail("replay: %s" % msg)
        stale = dict(doc, ts=time.time_ns() - 300 * SEC, nonce=os.urandom(16).hex())
        code, msg = frame_error(raw.request(subj, signed(key, subj, stale)))
        if "stale" not in msg:
            fail("stale: %s" % msg)
        other = dict(doc, nonce=os.urandom(16).hex(), user="root")
        code, msg = frame_error(raw.request(subj, signed(key, subj, other)))
        if "root" not in msg:
            fail("unknown user: %s" % msg)
        # signed by n3 but claiming n2: the reply would go to n2's inbox; refused
        claim = dict(doc, node="n2", nonce=os.urandom(16).hex())
        code, msg = frame_error(raw.request(subj, signed(key, subj, claim)))
        if "inbox" not in msg:
            fail("node claim: %s" % msg)
    if Ed25519PrivateKey is not None:
        # a statement sent whole is run with this node's domains only: one that names another
        # node's domain is refused, and the owner asks nothing of that node on the sender's
        # behalf, even with the domain still attached to its sessions from ana's own query
        for _ in range(3):
            q(n1, token(n1, "ana"), "SELECT count(*) FROM (SELECT device FROM energy.readings "
              "UNION ALL SELECT device FROM factory.readings)")
        asked = "SELECT count(*) FROM system.audit WHERE source = 'node:n1'"
        before = q(n2, meshlib.TOKEN, asked)["rows"][0][0]
        stmt = dict(doc, op="query", nonce=os.urandom(16).hex(), ts=time.time_ns(),
                    sql="SELECT device FROM factory.readings WHERE device = 'd1' UNION ALL "
                        "SELECT device FROM energy.readings")
        for k in ("table", "cols", "where"):
            stmt.pop(k)
        r = raw.request(subj, signed(key, subj, stmt))
        if not (isinstance(r, bytes) and r[:4] == b"MFC1" and r[4] == 1):
            fail("a statement sent to factory that reads energy was answered: %r" % (r[:80],))
        if q(n2, meshlib.TOKEN, asked)["rows"][0][0] != before:
            fail("n1 asked n2 for energy on behalf of a statement another node sent")
    refused = q(n1, meshlib.TOKEN, "SELECT count(*) FROM system.audit WHERE action = "
                "'auth.fail' AND source = 'node:n3'")["rows"][0][0]
    if refused < 2:
        fail("refused requests not audited on the owner: %d" % refused)

    # ---- n3's NATS user cannot serve factory's requests nor write its stream ----
    raw.send(b"SUB meshd.dom.factory.req.scan q 7\r\nPING\r\n")
    line = raw.line()
    if "Permissions Violation for Subscription" not in line:
        fail("n3 may subscribe to factory's requests: %s" % line)
    r = raw.request("meshd.dom.factory.log", b"x")
    if not (isinstance(r, str) and "Permissions Violation for Publish" in r):
        fail("n3 may publish to factory's stream subject: %r" % (r,))
    raw.close()

    # ---- a stream that takes in another node's inbox (a known limit, docs/mesh.md): n1 may
    # make its domain's stream with any subjects, n3's among them; n3 sees it and says so ----
    d1 = os.path.join(mdir, "nodes", "n1")
    own = Raw(cport, "n1", open(os.path.join(d1, "password")).read().strip(), "_INBOX_n1.raw",
              os.path.join(mdir, "ca.pem"), os.path.join(d1, "cert.pem"),
              os.path.join(d1, "key.pem"))

    def n3_captured():
        st = n3.json("GET", "/v1/status")[1]["mesh"]
        return st.get("inbox_captured_by"), metric(n3, "meshd_mesh_inbox_captured")
    if n3_captured() != (None, 0):
        fail("n3's inbox taken in before any such stream: %s" % (n3_captured(),))
    cfg = json.dumps({"name": "MESHD_DOM_factory", "num_replicas": 1, "storage": "memory",
                      "subjects": ["meshd.dom.factory.log", "_INBOX_n3.>",
                                   "meshd.dom.energy.req.>"]}).encode()
    r = own.request("$JS.API.STREAM.CREATE.MESHD_DOM_factory", cfg)
    if not isinstance(r, bytes) or b"error" in r:
        fail("n1 could not make the capturing stream: %r" % (r,))
    try:
        if not wait_for(lambda: n3_captured() == ("MESHD_DOM_factory", 1), timeout=15):
            fail("n3 does not say its inbox is taken in: %s" % (n3_captured(),))
        if not any("take in this node's inbox" in ln for ln in n3.log):
            fail("no error in n3's log for the stream that takes in its inbox")
        # and the requests to another domain (forwarded rows, statements): every node sees it
        def requests_captured(n):
            return (n.json("GET", "/v1/status")[1]["mesh"].get("requests_captured_by"),
                    metric(n, "meshd_mesh_requests_captured"))
        for n in (n2, n3):
            if not wait_for(lambda: requests_captured(n) == ("MESHD_DOM_factory", 1), 15):
                fail("%s does not say requests are taken in: %s" % (n.url,
                                                                    requests_captured(n)))
    finally:
        r = own.request("$JS.API.STREAM.DELETE.MESHD_DOM_factory", b"")
        own.close()
    if not isinstance(r, bytes) or b'"success":true' not in r:
        fail("n1 could not delete the capturing stream: %r" % (r,))
    if not wait_for(lambda: n3_captured() == (None, 0), timeout=15):
        fail("n3 still says its inbox is taken in after the stream went: %s" % (n3_captured(),))
    if not wait_for(lambda: requests_captured(n3) == (None, 0), timeout=15):
        fail("n3 still says requests are taken in: %s" % (requests_captured(n3),))

    # ---- a clean stop of every node (under ASan: no leak, no error report) ----
    # the owner stops while it runs a statement for another node: the statement is cancelled
    # (its caller gets the error) rather than holding the stop for its time limit
    s0, box = metric(n1, "meshd_fed_served_scans_total"), {}
    th = threading.Thread(target=lambda: box.update(
        r=n4.request("POST", "/v1/query", {"sql": slow}, token=token(n4, "ana"))))
    th.start()
    wait_for(lambda: metric(n1, "meshd_fed_served_scans_total") > s0, timeout=30, step=0.02)
    rc = n1.stop()
    th.join()
    st, _, body = box["r"]
    if rc != 0 or st == 200 or b"cancelled" not in body:
        fail("n1 stopped during a statement for n4: exit %s, the statement %d %s" % (
            rc, st, body[:300]))
    for name in ("n4", "n3", "n2", "ref"):
        rc = nodes[name].stop()
        if rc != 0:
            fail("%s exited %s:\n%s" % (name, rc, "\n".join(nodes[name].log[-40:])))


if __name__ == "__main__":
    main()
