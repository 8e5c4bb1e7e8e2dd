#!/usr/bin/python3
"""OpenLineage run events on a real meshd (docs/derived.md "OpenLineage", decision 0030).

A node with both sinks (a JSON Lines file, and an HTTP endpoint: a Python http.server in this
test receiving the POSTs) gets a continuous aggregate and rows that refresh it. Every event is
checked against the required members of an OpenLineage 2-0-2 RunEvent, written out below from
the spec and also as a JSON Schema (tests/data/openlineage-2-0-2-required.json). Then the
robustness side: an endpoint that is slow or down holds up neither writes nor refreshes, and
the dropped and failed counters in /metrics move.
"""
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node  # noqa: E402

try:
    import jsonschema  # python3-jsonschema (scripts/setup.sh)
except ImportError:  # the explicit checks below still run
    jsonschema = None

SRC = os.environ.get("MESH_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMA = os.path.join(SRC, "tests", "data", "openlineage-2-0-2-required.json")
RUN_EVENT_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
TOKEN = "ol-secret-token-4f1c9a"
MIN = 60 * 10**9
T0 = 1700000000 * 10**9 - (1700000000 * 10**9) % MIN
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

SOURCE = """apiVersion: v3.0.2
kind: DataContract
id: urn:test:factory:readings
version: 1.0.0
status: active
domain: factory
schema:
  - name: readings
    logicalType: object
    properties:
      - name: device
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: temp
        logicalType: number
"""

ORACLE = """SELECT device, (ts - ((ts %% %(w)d) + %(w)d) %% %(w)d) AS b, count(*), max(ts),
  count(temp), min(temp), max(temp), sum(temp)
FROM factory.readings GROUP BY 1, 2 ORDER BY 1, 2"""
AGG = """SELECT device, bucket, rows, last_time, temp_count, temp_min, temp_max, temp_sum
FROM factory.readings_1m ORDER BY 1, 2"""


class Receiver:
    """An HTTP endpoint that records each POST (path, headers, body); delay: seconds to wait
    before answering (a slow endpoint)."""

    def __init__(self, delay=0.0, status=201, tls=None):
        self.events, self.headers = [], []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if delay:
                    time.sleep(delay)
                with outer.lock:
                    outer.headers.append(dict(self.headers))
                    outer.events.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.scheme = "http"
        if tls:  # (cert, key): an https endpoint
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            self.scheme = "https"
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path="/api/v1/lineage"):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def count(self):
        with self.lock:
            return len(self.events)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def meshctl(node, *args):
    import subprocess
    out = subprocess.run([meshlib.MESHCTL, "--url", node.url, "--token", node.token] +
                         list(args), capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("meshctl %s -> %d: %s %s" % (args, out.returncode, out.stdout,
                                                          out.stderr))
    return out


def metric(node, name, **labels):
    st, _, body = node.request("GET", "/metrics")
    assert st == 200, body
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in body.decode().splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted((m.group(2) or "{}")[1:-1].split(","))) if m.group(2) else ""
        if got == want:
            return float(m.group(3))
    return None


def check_event(tc, ev):
    """The required members of an OpenLineage 2-0-2 RunEvent, from the spec."""
    # BaseEvent: eventTime (date-time), producer (uri), schemaURL (uri)
    for k in ("eventTime", "producer", "schemaURL", "run", "job"):
        tc.assertIn(k, ev)
    tc.assertRegex(ev["eventTime"], RFC3339)
    tc.assertRegex(ev["producer"], r"^https?://")
    tc.assertEqual(ev["schemaURL"], RUN_EVENT_URL)
    tc.assertIn(ev.get("eventType"), ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"))
    # Run: runId, a UUID
    tc.assertIn("runId", ev["run"])
    tc.assertEqual(str(uuid.UUID(ev["run"]["runId"])), ev["run"]["runId"])
    # Job: namespace, name
    tc.assertTrue(ev["job"]["namespace"])
    tc.assertTrue(ev["job"]["name"])

    def facets(obj):
        for name, f in obj.get("facets", {}).items():
            tc.assertIn("_producer", f, name)
            tc.assertIn("_schemaURL", f, name)
            tc.assertRegex(f["_schemaURL"], r"^https://openlineage\.io/spec/facets/", name)

    facets(ev["run"])
    facets(ev["job"])
    # Dataset: namespace, name; the schema facet's fields have a name; columnLineage: each
    # output field's inputFields have namespace, name, field
    for ds in ev.get("inputs", []) + ev.get("outputs", []):
        tc.assertTrue(ds["namespace"])
        tc.assertTrue(ds["name"])
        facets(ds)
        for f in ds.get("facets", {}).get("schema", {}).get("fields", []):
            tc.assertTrue(f["name"])
        cl = ds.get("facets", {}).get("columnLineage")
        if cl is not None:
            tc.assertIn("fields", cl)
            for out, v in cl["fields"].items():
                tc.assertIn("inputFields", v, out)
                for i in v["inputFields"]:
                    for k in ("namespace", "name", "field"):
                        tc.assertTrue(i.get(k), "%s: %s" % (out, i))
    if jsonschema is not None:
        with open(SCHEMA) as f:
            schema = json.load(f)
        jsonschema.validate(ev, schema, format_checker=jsonschema.FormatChecker())


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write(node, rows):
    lines = ["readings,device=%s temp=%r %d" % (d, v, t) for d, t, v in rows]
    st, _, body = node.write_lp("factory", "\n".join(lines))
    assert st == 204, body


class OpenLineage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshd-ol-")
        self.nodes, self.receivers = [], []

    def tearDown(self):
        for n in self.nodes:
            n.destroy()
        for r in self.receivers:
            r.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, *args):
        n = Node(tls=False, args=list(args))
        self.nodes.append(n)
        n.start()
        n.create_domain("factory")
        n.apply(SOURCE, expect=201)
        return n

    def derive(self, n):
        meshctl(n, "product", "derive", "factory.readings_1m", "--source", "readings",
                "--bucket", "1m", "--column", "temp")

    def check_same(self, n):
        want = n.rows(ORACLE % {"w": MIN})
        got = n.query(AGG, time_format="ns")["rows"]
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g[:5], w[:5])
            for a, b in zip(g[5:], w[5:]):
                self.assertAlmostEqual(float(a), float(b), places=6)

    def test_1_both_sinks(self):
        rec = Receiver()
        self.receivers.append(rec)
        tokfile = os.path.join(self.tmp, "ol.token")
        with open(tokfile, "w") as f:
            f.write(TOKEN + "\n")
        path = os.path.join(self.tmp, "lineage.jsonl")
        n = self.node("--openlineage-file", path, "--openlineage-url", rec.url(),
                      "--openlineage-token-file", tokfile, "--openlineage-namespace", "test-mesh")
        write(n, [("d%d" % (i % 3), T0 + i * 10**9 * 13, 20.0 + i) for i in range(40)])
        self.derive(n)  # built from the rows: a refresh (recompute)
        for k in range(5):  # in order: merged in the writer's transaction
            write(n, [("d%d" % i, T0 + (600 + k * 70 + i) * 10**9, 30.0 + k) for i in range(3)])
        write(n, [("d1", T0 + 5 * 10**9, 99.5)])  # late: merged, then its bucket recomputed
        self.check_same(n)
        self.assertTrue(meshlib.wait_for(lambda: len(read_lines(path)) >= 14 and
                                         rec.count() >= 14, timeout=15),
                        "events: file %d, http %d" % (len(read_lines(path)), rec.count()))
        # settled: every event counted as sent by both sinks is in the file and the receiver
        self.assertTrue(meshlib.wait_for(
            lambda: metric(n, "meshd_openlineage_events_total", sink="http", result="sent") ==
            rec.count() == len(read_lines(path)) ==
            metric(n, "meshd_openlineage_events_total", sink="file", result="sent"), timeout=10))
        file_events = read_lines(path)
        with rec.lock:
            posted = list(rec.events)
            headers = list(rec.headers)
        http_events = []
        for p, ctype, body in posted:
            self.assertEqual(p, "/api/v1/lineage")
            self.assertEqual(ctype, "application/json")
            http_events.append(json.loads(body))
        for h in headers:
            self.assertEqual(h.get("Authorization"), "Bearer " + TOKEN)
        # the same events reach both sinks
        self.assertEqual(sorted(json.dumps(e, sort_keys=True) for e in file_events),
                         sorted(json.dumps(e, sort_keys=True) for e in http_events))
        for ev in file_events:
            check_event(self, ev)
        # each run: one START and one COMPLETE, the same run id, in time order
        runs = {}
        for ev in file_events:
            runs.setdefault(ev["run"]["runId"], []).append(ev)
        self.assertGreaterEqual(len(runs), 7)
        for rid, evs in runs.items():
            self.assertEqual(sorted(e["eventType"] for e in evs), ["COMPLETE", "START"], rid)
            s = [e for e in evs if e["eventType"] == "START"][0]
            c = [e for e in evs if e["eventType"] == "COMPLETE"][0]
            self.assertLessEqual(s["eventTime"][:19], c["eventTime"][:19])
        ev = file_events[-1]
        self.assertEqual(ev["job"], {"namespace": "test-mesh", "name": "factory.readings_1m",
                                     "facets": ev["job"].get("facets", {})})
        self.assertEqual([(d["namespace"], d["name"]) for d in ev["inputs"]],
                         [("test-mesh", "factory.readings")])
        self.assertEqual([f["name"] for f in ev["inputs"][0]["facets"]["schema"]["fields"]],
                         ["device", "ts", "temp"])
        out = ev["outputs"][0]
        self.assertEqual((out["namespace"], out["name"]), ("test-mesh", "factory.readings_1m"))
        names = [f["name"] for f in out["facets"]["schema"]["fields"]]
        for c in ("device", "bucket", "rows", "last_time", "temp_avg", "temp_max"):
            self.assertIn(c, names)
        cl = out["facets"]["columnLineage"]["fields"]
        self.assertEqual(cl["temp_avg"]["inputFields"][0]["field"], "temp")
        self.assertEqual(cl["temp_avg"]["inputFields"][0]["name"], "factory.readings")
        self.assertEqual(cl["temp_avg"]["inputFields"][0]["transformations"][0]["subtype"],
                         "AGGREGATION")
        self.assertEqual(cl["device"]["inputFields"][0]["transformations"][0]["subtype"],
                         "IDENTITY")
        self.assertEqual(cl["temp_max"]["inputFields"][0]["transformations"][0]["subtype"],
                         "TRANSFORMATION")
        # counters; the token is never logged
        self.assertEqual(metric(n, "meshd_openlineage_events_total", sink="http",
                                result="sent"), len(http_events))
        self.assertEqual(metric(n, "meshd_openlineage_events_total", sink="file",
                                result="sent"), len(file_events))
        self.assertEqual(metric(n, "meshd_openlineage_dropped_total"), 0)
        n.stop()
        self.assertNotIn(TOKEN, "\n".join(n.log))

    def test_5_sql_derived(self):
        """A product derived by SQL: each refresh that ran is a START and a COMPLETE with the
        column lineage meshd extracted from its query (identity, transformation, aggregation)."""
        path = os.path.join(self.tmp, "lineage-sql.jsonl")
        n = self.node("--openlineage-file", path)
        write(n, [("d%d" % (i % 3), T0 + i * 10**9 * 13, 20.0 + i) for i in range(40)])
        meshctl(n, "product", "derive", "factory.hot", "--sql",
                "SELECT device, ts, temp * 2 AS t2 FROM factory.readings WHERE temp > 25",
                "--refresh", "1s")
        meshctl(n, "product", "derive", "factory.per_device", "--sql",
                "SELECT device, avg(temp) AS t_avg FROM factory.readings GROUP BY device",
                "--refresh", "1s")

        def done(job):
            return [e for e in read_lines(path) if e["job"]["name"] == job and
                    e["eventType"] == "COMPLETE"]
        self.assertTrue(meshlib.wait_for(lambda: done("factory.hot") and
                                         done("factory.per_device"), timeout=15),
                        read_lines(path))
        write(n, [("d1", T0 + 900 * 10**9, 31.5)])  # a later refresh runs again
        self.assertTrue(meshlib.wait_for(lambda: len(done("factory.per_device")) >= 2,
                                         timeout=15))
        evs = read_lines(path)
        for ev in evs:
            check_event(self, ev)
        runs = {}
        for ev in evs:
            runs.setdefault(ev["run"]["runId"], []).append(ev["eventType"])
        for rid, types in runs.items():
            if len(types) == 2:  # the last run's COMPLETE may still be on its way
                self.assertEqual(sorted(types), ["COMPLETE", "START"], rid)
        ev = done("factory.hot")[-1]
        self.assertEqual([d["name"] for d in ev["inputs"]], ["factory.readings"])
        cl = ev["outputs"][0]["facets"]["columnLineage"]["fields"]
        sub = {c: [(f["name"], f["field"], f["transformations"][0]["subtype"])
                   for f in cl[c]["inputFields"]] for c in cl}
        self.assertEqual(sub["device"], [("factory.readings", "device", "IDENTITY")])
        self.assertEqual(sub["t2"], [("factory.readings", "temp", "TRANSFORMATION")])
        ev = done("factory.per_device")[-1]
        cl = ev["outputs"][0]["facets"]["columnLineage"]["fields"]
        self.assertEqual([(f["field"], f["transformations"][0]["subtype"])
                          for f in cl["t_avg"]["inputFields"]], [("temp", "AGGREGATION")])

    def test_2_slow_endpoint(self):
        """A slow endpoint (each POST answered after 3 s, timeout 500 ms): writes and refreshes
        go on at their pace, the HTTP sink's queue fills and drops are counted; the file sink is
        not held up by it and rotates at its size bound."""
        rec = Receiver(delay=3.0)
        self.receivers.append(rec)
        path = os.path.join(self.tmp, "lineage.jsonl")
        n = self.node("--openlineage-file", path, "--openlineage-file-max-size", "64KiB",
                      "--openlineage-url", rec.url(), "--openlineage-timeout", "500ms",
                      "--openlineage-retries", "1", "--openlineage-queue", "64")
        self.derive(n)
        worst = 0.0
        for k in range(40):
            t = time.monotonic()
            write(n, [("d%d" % i, T0 + (k * 20 + i) * 10**9, float(k + i)) for i in range(3)])
            worst = max(worst, time.monotonic() - t)
        self.assertLess(worst, 2.0, "a write waited for the lineage endpoint")
        self.check_same(n)
        self.assertTrue(meshlib.wait_for(
            lambda: (metric(n, "meshd_openlineage_dropped_total") or 0) > 0, timeout=10))
        self.assertGreater(metric(n, "meshd_openlineage_events_total", sink="http",
                                  result="dropped"), 0)
        self.assertEqual(metric(n, "meshd_openlineage_events_total", sink="file",
                                result="dropped"), 0)
        # the file sink wrote every event (a START and a COMPLETE per refresh: the build and
        # each of the 40 writes), rotating at its bound (FILE.1 keeps the previous part only)
        self.assertTrue(meshlib.wait_for(
            lambda: metric(n, "meshd_openlineage_events_total", sink="file",
                           result="sent") >= 82, timeout=10),
            metric(n, "meshd_openlineage_events_total", sink="file", result="sent"))
        self.assertTrue(os.path.exists(path + ".1"), "no rotation")
        self.assertLessEqual(os.path.getsize(path + ".1"), 65536)
        self.assertLessEqual(os.path.getsize(path), 65536)
        for ev in read_lines(path) + read_lines(path + ".1"):
            check_event(self, ev)
        # a stop does not wait for the slow endpoint beyond the POST in flight
        for k in range(20):
            write(n, [("d9", T0 + (2000 + k) * 10**9, 1.0)])
        t = time.monotonic()
        n.stop()
        self.assertLess(time.monotonic() - t, 5.0)

    def test_3_dead_endpoint(self):
        """An endpoint nothing listens on: every POST fails, counted; writes go on."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        n = self.node("--openlineage-url", "http://user:pw@127.0.0.1:%d/lineage?key=k" % port,
                      "--openlineage-timeout", "200ms", "--openlineage-retries", "0")
        self.derive(n)
        for k in range(5):
            write(n, [("d0", T0 + k * 10**9, float(k))])
        self.check_same(n)
        self.assertTrue(meshlib.wait_for(
            lambda: (metric(n, "meshd_openlineage_events_total", sink="http",
                            result="failed") or 0) >= 4, timeout=10))
        log = "\n".join(n.log)
        self.assertIn("POST http://127.0.0.1:%d/lineage failed" % port, log)
        self.assertNotIn("pw@", log)
        self.assertNotIn("key=k", log)

    def test_4_https_endpoint(self):
        """An https endpoint verified with openlineage_ca_file; without it the POSTs fail
        (the endpoint's certificate is not trusted) and are counted."""
        cert, key = os.path.join(self.tmp, "ol.crt"), os.path.join(self.tmp, "ol.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=ol-test",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        rec = Receiver(tls=(cert, key))
        self.receivers.append(rec)
        n = self.node("--openlineage-url", rec.url(), "--openlineage-ca-file", cert)
        self.derive(n)
        write(n, [("d0", T0, 1.0)])
        self.assertTrue(meshlib.wait_for(lambda: rec.count() >= 4, timeout=10), rec.count())
        for _, ctype, body in list(rec.events):
            check_event(self, json.loads(body))
        self.assertEqual(metric(n, "meshd_openlineage_events_total", sink="http",
                                result="failed"), 0)
        untrusted = self.node("--openlineage-url", rec.url(), "--openlineage-retries", "0")
        before = rec.count()
        self.derive(untrusted)
        self.assertTrue(meshlib.wait_for(
            lambda: (metric(untrusted, "meshd_openlineage_events_total", sink="http",
                            result="failed") or 0) >= 2, timeout=10))
        self.assertEqual(rec.count(), before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
