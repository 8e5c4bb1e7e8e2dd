"""Rules and alerts against a real meshd and a real webhook receiver.

The receiver is a small http.server in this process: it checks each request's HMAC signature
(X-Meshd-Signature over timestamp "." body) and keeps the payloads. No timing assertions:
everything is checked with polling deadlines."""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, free_port, wait_for  # noqa: E402

SEC = 10**9
SECRET = "hook-secret-0123"


class Receiver:
    """A webhook receiver on a free loopback port; fail=True answers 500."""

    def __init__(self, port=0, tls=None):
        self.got = []
        self.bad_sig = 0
        self.fail = False
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                ts = self.headers.get("X-Meshd-Timestamp", "")
                sig = self.headers.get("X-Meshd-Signature", "")
                want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(sig, want) and abs(time.time() - int(ts or 0)) < 300
                with outer.lock:
                    if outer.fail:
                        self.send_response(500)
                        self.end_headers()
                        return
                    if not ok:
                        outer.bad_sig += 1
                    else:
                        outer.got.append((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.scheme = "http"
        if tls:  # (cert, key) files: HTTPS
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            self.scheme = "https"
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def url(self):
        return "%s://127.0.0.1:%d/hook" % (self.scheme, self.port)

    def events(self, rule=None, event=None):
        with self.lock:
            return [p for _, p in self.got if (rule is None or p["rule"]["name"] == rule) and
                    (event is None or p["event"] == event)]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def ts_contract(domain, product, value_col="value", key="device", key_extra="", ver="1.0.0"):
    return """apiVersion: v3.1.0
kind: DataContract
id: urn:test:%(domain)s:%(product)s
version: %(ver)s
status: active
domain: %(domain)s
schema:
  - name: %(product)s
    customProperties:
      - property: timeColumn
        value: time
    properties:
      - name: %(key)s
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
%(key_extra)s      - name: time
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: %(value_col)s
        logicalType: number
""" % locals()


class RulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rx = Receiver()
        cls.node = Node(args=["--rules-tick", "200ms"]).start()
        n = cls.node
        n.create_domain("factory")
        n.apply(ts_contract("factory", "telemetry", "temp", "machine"), expect=201)
        n.create_domain("icu")
        n.apply(ts_contract("icu", "vitals", "spo2", "patient",
                            key_extra="        classification: restricted\n"), expect=201)

    @classmethod
    def tearDownClass(cls):
        # a clean stop (exit 0): under the sanitizers, no leak and no error at exit either,
        # with deliveries possibly still queued
        rc = cls.node.stop()
        cls.node.destroy()
        cls.rx.close()
        if rc != 0:
            raise AssertionError("meshd exited with %s:\n%s" % (rc, "\n".join(cls.node.log[-60:])))

    def put_rule(self, text, expect=(200, 201)):
        st, doc = self.node.json("POST", "/v1/rules", text,
                                 headers={"Content-Type": "application/yaml"})
        if isinstance(expect, int):
            expect = (expect,)
        self.assertIn(st, expect, doc)
        return doc

    def write(self, domain, product, rows):
        st, doc = self.node.post_rows(domain, product, rows)
        self.assertEqual(st, 200, doc)
        return doc

    def alerts(self, domain, rule=None, state="all"):
        q = "/v1/alerts?domain=%s&state=%s" % (domain, state)
        if rule:
            q += "&rule=" + rule
        return self.node.json("GET", q, expect=200)[1]["alerts"]

    def log_seq(self, domain):
        st, _, body = self.node.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith('meshd_domain_log_seq{domain="%s"}' % domain):
                return int(line.split()[-1])
        raise AssertionError("no log seq for " + domain)

    # ---- threshold with hysteresis and for: ----

    def test_threshold_hysteresis_for(self):
        self.put_rule("""name: hot
domain: factory
product: telemetry
kind: threshold
column: temp
above: 80
clear: 75
for: 3s
severity: critical
actions:
  - type: webhook
    url: %s
    secret: %s
""" % (self.rx.url(), SECRET))
        t0 = 1767225600 * SEC
        m = "M100"
        # above, but not for 3 s: nothing
        rows = [{"machine": m, "time": t0 + i * SEC, "temp": v}
                for i, v in enumerate([70, 85, 86, 70, 85, 86, 87])]
        self.write("factory", "telemetry", rows)
        self.assertEqual(self.alerts("factory", "hot"), [])
        # above from t0+4 s to t0+8 s: fires once; 78 (between clear and limit) does not resolve
        rows = [{"machine": m, "time": t0 + i * SEC, "temp": v}
                for i, v in [(7, 88), (8, 90), (9, 78), (10, 79), (11, 81)]]
        self.write("factory", "telemetry", rows)
        al = self.alerts("factory", "hot")
        self.assertEqual(len(al), 1, al)
        self.assertEqual(al[0]["state"], "firing")
        self.assertEqual(json.loads(al[0]["series"]), {"machine": m})
        self.assertEqual(al[0]["value"], 81)
        # below clear: resolved, still one alert (no flapping)
        self.write("factory", "telemetry", [{"machine": m, "time": t0 + 12 * SEC, "temp": 74}])
        al = self.alerts("factory", "hot")
        self.assertEqual([a["state"] for a in al], ["resolved"])
        # webhook: fired and resolved, signed (the receiver counts bad signatures)
        self.assertTrue(wait_for(lambda: len(self.rx.events("hot")) >= 2, 20))
        evs = self.rx.events("hot")
        self.assertEqual([e["event"] for e in evs], ["fired", "resolved"])
        self.assertEqual(self.rx.bad_sig, 0)
        self.assertEqual(evs[0]["alert_id"], al[0]["alert_id"])
        self.assertEqual(evs[0]["series"], {"machine": m})
        self.assertEqual(evs[0]["rule"]["severity"], "critical")
        # the alerts product is queryable by SQL like any product
        n = self.node.scalar("SELECT count(*) FROM factory.alert_events WHERE alert_id = '%s'" %
                             al[0]["alert_id"])
        self.assertEqual(n, 2)

    # ---- window average ----

    def test_window_avg(self):
        self.put_rule("""name: avg-hot
domain: factory
product: telemetry
kind: window
function: avg
period: 10s
column: temp
above: 50
""")
        t0 = 1767229200 * SEC
        rows = [{"machine": "W1", "time": t0 + i * SEC, "temp": v}
                for i, v in enumerate([40, 45, 50, 55, 60])]  # avg 50: not above
        self.write("factory", "telemetry", rows)
        self.assertEqual(self.alerts("factory", "avg-hot"), [])
        self.write("factory", "telemetry", [{"machine": "W1", "time": t0 + 5 * SEC, "temp": 62}])
        al = self.alerts("factory", "avg-hot")
        self.assertEqual(len(al), 1)
        self.assertAlmostEqual(al[0]["value"], (40 + 45 + 50 + 55 + 60 + 62) / 6)
        # 20 s later the window holds only new low values: resolved
        self.write("factory", "telemetry", [{"machine": "W1", "time": t0 + 30 * SEC, "temp": 10}])
        self.assertEqual(self.alerts("factory", "avg-hot")[0]["state"], "resolved")

    # ---- z-score anomaly on one series of many ----

    def test_zscore_one_series(self):
        self.put_rule("""name: vib-anomaly
domain: factory
product: telemetry
kind: anomaly
method: zscore
samples: 30
warmup: 10
sensitivity: 4
column: temp
""")
        t0 = 1767232800 * SEC
        rows = []
        for i in range(40):
            for k in range(5):
                rows.append({"machine": "Z%d" % k, "time": t0 + i * SEC,
                             "temp": 20 + (i % 3) * 0.5 + k})
        self.write("factory", "telemetry", rows)
        self.assertEqual(self.alerts("factory", "vib-anomaly"), [])
        self.write("factory", "telemetry", [{"machine": "Z3", "time": t0 + 41 * SEC, "temp": 60}])
        al = self.alerts("factory", "vib-anomaly")
        self.assertEqual(len(al), 1, al)
        self.assertEqual(json.loads(al[0]["series"]), {"machine": "Z3"})

    # ---- absence: a device stops sending, then resumes ----

    def test_absence(self):
        self.put_rule("""name: offline
domain: factory
product: telemetry
kind: absence
after: 2s
""")
        now = time.time_ns()
        self.write("factory", "telemetry", [{"machine": "A1", "temp": 20, "time": now}])
        self.assertTrue(wait_for(lambda: any(a["state"] == "firing" for a in
                                             self.alerts("factory", "offline")), 30))
        al = [a for a in self.alerts("factory", "offline") if a["state"] == "firing"]
        self.assertEqual(json.loads(al[0]["series"]), {"machine": "A1"})
        # with every watched series firing, no tick can change anything: none is logged
        seq = self.log_seq("factory")
        time.sleep(1.0)  # five ticks of 200 ms
        self.assertEqual(self.log_seq("factory"), seq)
        self.write("factory", "telemetry", [{"machine": "A1", "temp": 21, "time": time.time_ns()}])
        self.assertEqual(self.alerts("factory", "offline", "open"), [])
        self.node.json("DELETE", "/v1/rules/factory/offline", expect=200)

    # ---- healthcare: SpO2 < 90 for 30 s on one patient, masked id in the webhook ----

    def test_healthcare_masked(self):
        self.put_rule("""name: spo2-low
domain: icu
product: vitals
kind: threshold
column: spo2
below: 90
clear: 92
for: 30s
severity: critical
actions:
  - type: webhook
    url: %s
    secret: %s
""" % (self.rx.url(), SECRET))
        t0 = 1767236400 * SEC
        rows = []
        for i in range(0, 45, 5):
            rows.append({"patient": "P-1001", "time": t0 + i * SEC, "spo2": 88})
            rows.append({"patient": "P-1002", "time": t0 + i * SEC, "spo2": 97})
        self.write("icu", "vitals", rows)
        al = self.alerts("icu", "spo2-low")
        self.assertEqual(len(al), 1)
        self.assertTrue(wait_for(lambda: self.rx.events("spo2-low"), 20))
        ev = self.rx.events("spo2-low")[0]
        self.assertNotIn("P-1001", json.dumps(ev))
        pid = ev["series"]["patient"]
        self.assertRegex(pid, "^[0-9a-f]{64}$")
        self.assertEqual(ev["row"]["patient"], pid)  # same patient, same hash
        self.assertIn("patient", ev["masked"])
        self.assertEqual(ev["row"]["spo2"], 88)
        # the same hash as a MASK_HASH mask gives in SQL: one patient, one hash everywhere
        n = self.node
        n.json("POST", "/v1/roles", {"name": "masked"}, expect=201)
        n.json("POST", "/v1/principals", {"name": "mia", "kind": "service", "roles": ["masked"]},
               expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "mia"}, expect=201)[1]["token"]
        n.json("POST", "/v1/grants", {"role": "masked", "action": "read", "domain": "icu"},
               expect=201)
        n.json("POST", "/v1/masks", {"domain": "icu", "product": "vitals", "column": "patient",
                                     "type": "MASK_HASH", "roles": ["masked"]}, expect=201)
        st, doc = n.json("POST", "/v1/query",
                         {"sql": "SELECT DISTINCT patient FROM icu.vitals WHERE spo2 < 90"},
                         token=tok)
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["rows"], [[pid]])
        # access: a reader of the domain lists rules and alerts, but may not change them
        st, doc = n.json("GET", "/v1/rules?domain=icu", token=tok)
        self.assertEqual(st, 200, doc)
        self.assertEqual([r["name"] for r in doc["rules"]], ["spo2-low"])
        self.assertEqual(doc["rules"][0]["actions"][0]["secret"], "(set)")
        self.assertNotIn(SECRET, json.dumps(doc))
        st, doc = n.json("GET", "/v1/rules/icu/spo2-low", token=tok)
        self.assertEqual(st, 200, doc)
        self.assertNotIn("text", doc)
        st, doc = n.json("POST", "/v1/rules", "name: x\ndomain: icu\nproduct: vitals\n"
                         "kind: absence\nafter: 1m\n", token=tok)
        self.assertEqual(st, 403, doc)
        st, doc = n.json("DELETE", "/v1/rules/icu/spo2-low", token=tok)
        self.assertEqual(st, 403, doc)
        st, doc = n.json("GET", "/v1/alerts?domain=icu", token=tok)
        self.assertEqual(st, 200, doc)
        self.assertEqual(len(doc["alerts"]), 1)
        st, doc = n.json("POST", "/v1/alerts/%s/ack" % al[0]["alert_id"], {}, token=tok)
        self.assertEqual(st, 403, doc)
        # alerts.series is classified restricted: a mask on that tag hides whose alert it is
        self.assertIn("P-1001", json.dumps(n.json("GET", "/v1/alerts?domain=icu", token=tok)[1]))
        n.json("POST", "/v1/masks", {"domain": "icu", "tag": "restricted", "type": "MASK_HASH",
                                     "roles": ["masked"]}, expect=201)
        st, doc = n.json("GET", "/v1/alerts?domain=icu", token=tok)
        self.assertEqual(len(doc["alerts"]), 1)
        self.assertNotIn("P-1001", json.dumps(doc))

    # ---- a receiver that is down: ingest goes on, retries deliver later ----

    def test_receiver_down_then_up(self):
        down = Receiver()
        port = down.port
        down.close()  # nothing listens there now
        self.put_rule("""name: pressure
domain: factory
product: telemetry
kind: threshold
column: temp
above: 1000
actions:
  - type: webhook
    url: http://127.0.0.1:%d/hook
    secret: %s
    retries: 8
    backoff: 200ms
""" % (port, SECRET))
        t0 = 1767240000 * SEC
        self.write("factory", "telemetry", [{"machine": "P1", "time": t0, "temp": 1500}])
        # writes are acknowledged while the hook fails
        for i in range(1, 20):
            st, _ = self.node.post_rows("factory", "telemetry",
                                        [{"machine": "P2", "time": t0 + i * SEC, "temp": 1}])
            self.assertEqual(st, 200)
        self.assertTrue(wait_for(lambda: any("pressure" in l and "attempt" in l
                                             for l in self.node.log), 20))
        up = Receiver(port)
        try:
            self.assertTrue(wait_for(lambda: up.events("pressure", "fired"), 60))
        finally:
            up.close()

    # ---- an HTTPS receiver: trusted through ca_file, refused without it ----

    def test_https_webhook(self):
        d = tempfile.mkdtemp(prefix="meshd-hook-tls-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        rx = Receiver(tls=(cert, key))
        try:
            for name, extra in (("tls-trusted", "    ca_file: %s\n" % cert),
                                ("tls-untrusted", "    retries: 0\n")):
                self.put_rule("""name: %s
domain: factory
product: telemetry
kind: threshold
column: temp
above: 5000
actions:
  - type: webhook
    url: %s
    secret: %s
%s""" % (name, rx.url(), SECRET, extra))
            self.write("factory", "telemetry", [{"machine": "T1", "time": 1767247200 * SEC,
                                                 "temp": 6000}])
            self.assertTrue(wait_for(lambda: rx.events("tls-trusted", "fired"), 30))
            # the untrusted one fails (certificate not verified) and is audited as failed
            self.assertTrue(wait_for(lambda: any(
                (r.get("details") or {}).get("rule") == "tls-untrusted" and
                r.get("outcome") == "failed" for r in self.node.json(
                    "GET", "/v1/audit?action=action.webhook&limit=1000")[1]["records"]), 30))
            self.assertEqual(rx.events("tls-untrusted"), [])
        finally:
            rx.close()
            shutil.rmtree(d, ignore_errors=True)
            for name in ("tls-trusted", "tls-untrusted"):
                self.node.json("DELETE", "/v1/rules/factory/" + name)

    # ---- ack / resolve through meshctl, history, audit ----

    def meshctl(self, *args, check=True):
        env = dict(os.environ, MESH_TOKEN=self.node.token)
        cmd = [MESHCTL, "--url", self.node.url, "--cacert", self.node.cafile] + list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if check and out.returncode != 0:
            raise AssertionError("meshctl %s -> %d: %s%s" % (args, out.returncode, out.stdout,
                                                            out.stderr))
        return out

    def test_ack_resolve_cli(self):
        self.put_rule("""name: cold
domain: factory
product: telemetry
kind: threshold
column: temp
below: -10
""")
        t0 = 1767243600 * SEC
        self.write("factory", "telemetry", [{"machine": "C1", "time": t0, "temp": -20}])
        al = self.alerts("factory", "cold", "open")
        self.assertEqual(len(al), 1)
        aid = al[0]["alert_id"]
        out = self.meshctl("alert", "list", "--domain", "factory")
        self.assertIn(aid, out.stdout)
        self.meshctl("alert", "ack", aid, "--note", "on it")
        self.assertEqual(self.alerts("factory", "cold")[0]["state"], "acknowledged")
        self.assertNotEqual(self.meshctl("alert", "ack", aid, check=False).returncode, 0)
        self.meshctl("alert", "resolve", aid)
        out = self.meshctl("alert", "show", aid, "--format", "json")
        doc = json.loads(out.stdout)
        self.assertEqual(doc["state"], "resolved")
        self.assertEqual([h["event"] for h in doc["history"]],
                         ["fired", "acknowledged", "resolved"])
        # still cold after a manual resolve: no new alert until it clears
        self.write("factory", "telemetry", [{"machine": "C1", "time": t0 + SEC, "temp": -21}])
        self.assertEqual(len(self.alerts("factory", "cold")), 1)
        self.write("factory", "telemetry", [{"machine": "C1", "time": t0 + 2 * SEC, "temp": 5},
                                            {"machine": "C1", "time": t0 + 3 * SEC, "temp": -30}])
        self.assertEqual(len(self.alerts("factory", "cold")), 2)
        # deleting the rule resolves its firing alert (and keeps the history)
        self.assertEqual(len(self.alerts("factory", "cold", "open")), 1)
        self.meshctl("rule", "delete", "factory", "cold")
        self.assertEqual(self.alerts("factory", "cold", "open"), [])
        self.assertEqual(self.alerts("factory", "cold")[0]["note"], "the rule was deleted")

    # ---- audit and metrics (runs last: the other tests' alerts and deliveries are in) ----

    def test_zz_audit_and_metrics(self):
        self.assertTrue(wait_for(lambda: any(
            r.get("outcome") == "ok" for r in self.node.json(
                "GET", "/v1/audit?action=action.webhook&limit=1000")[1]["records"]), 30))
        st, doc = self.node.json("GET", "/v1/audit?limit=10000", expect=200)
        acts = [(r.get("action"), r.get("principal")) for r in doc.get("records", [])]
        self.assertIn(("alert.fired", "meshd"), acts)
        self.assertIn(("alert.resolved", "meshd"), acts)
        self.assertIn(("alert.acknowledged", "admin"), acts)
        self.assertIn(("admin.rule.put", "admin"), acts)
        self.assertIn(("admin.rule.delete", "admin"), acts)
        # the audit never holds series key values (the masked patient's id)
        self.assertNotIn("P-1001", json.dumps(doc))
        st, _, body = self.node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(b'meshd_rule_series{domain="icu",rule="spo2-low"} 2' in body)
        self.assertTrue(b'meshd_rule_firing{domain="icu",rule="spo2-low"} 1' in body)
        self.assertTrue(b"meshd_actions_delivered_total" in body)

    # ---- the rule parser's refusals ----

    def test_refusals(self):
        cases = [
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: temp\n",
             "above or below"),
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: magic\n", "kind"),
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: temp\n"
             "above: 1\nbogus: 2\n", "bogus"),
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: nope\n"
             "above: 1\n", "no column"),
            ("name: x\ndomain: factory\nproduct: nope\nkind: threshold\ncolumn: temp\nabove: 1\n",
             "no product"),
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: temp\n"
             "above: 1\nactions:\n  - type: webhook\n    url: ftp://x\n", "actions[0].url"),
            ("name: x\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: temp\n"
             "above: 1\nclear: 5\n", "clear"),
            ("[1, 2", "not YAML"),
        ]
        for text, want in cases:
            st, doc = self.node.json("POST", "/v1/rules", text,
                                     headers={"Content-Type": "application/yaml"})
            self.assertIn(st, (400, 404), (text, doc))
            self.assertIn(want, doc["error"]["message"], (text, doc))

    # ---- dry run ----

    def test_dry_run(self):
        rule = ("name: t\ndomain: factory\nproduct: telemetry\nkind: threshold\ncolumn: temp\n"
                "above: 10\nfor: 1s\n")
        rows = [{"machine": "D", "time": "2026-01-01T00:00:0%dZ" % i, "temp": v}
                for i, v in enumerate([5, 11, 12, 13, 5])]
        st, doc = self.node.json("POST", "/v1/rules/test", {"rule": rule, "rows": rows},
                                 expect=200)
        self.assertEqual([e["event"] for e in doc["events"]], ["fired", "resolved"])
        # nothing stored, nothing fired
        st, doc = self.node.json("GET", "/v1/rules/factory/t")
        self.assertEqual(st, 404)


class MqttActionTest(unittest.TestCase):
    """The mqtt action against a real mosquitto broker and a real mosquitto_sub: the home
    scenario's thermostat command, a topic from the series' key and a payload template."""

    def test_thermostat_command(self):
        tmp = tempfile.mkdtemp(prefix="meshd-mqtt-act-")
        port = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\n" % port)
        broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        sub = n = None
        try:
            def broker_up():
                import socket
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False
            self.assertTrue(wait_for(broker_up, 20))
            out = os.path.join(tmp, "sub.out")
            with open(out, "w") as outf:
                sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                        "-q", "1", "-v", "-t", "home/#"], stdout=outf,
                                       stderr=subprocess.DEVNULL)
            n = Node(args=["--mqtt-url", "mqtt://127.0.0.1:%d" % port]).start()
            n.create_domain("home-42")
            n.apply(ts_contract("home-42", "climate", "temperature", "room"), expect=201)
            st, doc = n.json("POST", "/v1/rules", """name: too-cold
domain: home-42
product: climate
kind: threshold
column: temperature
below: 16
clear: 17.5
actions:
  - type: mqtt
    topic: home/{room}/thermostat/set
    payload: '{"target": 19.5, "was": {value}}'
""", headers={"Content-Type": "application/yaml"})
            self.assertEqual(st, 201, doc)
            self.assertEqual(doc["rule"]["actions"][0]["topic"], "home/{room}/thermostat/set")
            self.assertTrue(wait_for(lambda: any("connected" in l and "mqtt" in l
                                                 for l in n.log), 20), n.log[-5:])
            t0 = 1767225600 * SEC
            st, _ = n.post_rows("home-42", "climate", [{"room": "kitchen", "time": t0,
                                                        "temperature": 14.5}])
            self.assertEqual(st, 200)

            def got():
                with open(out) as f:
                    return [l.strip() for l in f if l.strip()]
            self.assertTrue(wait_for(lambda: got(), 30), n.log[-10:])
            topic, _, payload = got()[0].partition(" ")
            self.assertEqual(topic, "home/kitchen/thermostat/set")
            self.assertEqual(json.loads(payload), {"target": 19.5, "was": 14.5})
            # audited once the broker's acknowledgement came back (after the subscriber got it)
            self.assertTrue(wait_for(lambda: any(
                r.get("outcome") == "ok" and r["details"]["topic"] == "home/kitchen/thermostat/set"
                for r in n.json("GET", "/v1/audit?action=action.mqtt&limit=100")[1]["records"]),
                30))
            self.assertEqual(n.stop(), 0)
        finally:
            if n:
                n.destroy()
            for p in (sub, broker):
                if p:
                    p.terminate()
                    p.wait()
            shutil.rmtree(tmp, ignore_errors=True)


class RulesFileTest(unittest.TestCase):
    """rules_file: applied at start, unchanged rules left alone, a bad one fails the start;
    and the rule commands of meshctl."""

    def test_rules_file_and_cli(self):
        d = tempfile.mkdtemp(prefix="meshd-rules-")
        with open(os.path.join(d, "hot.yaml"), "w") as f:
            f.write("name: hot\ndomain: plant\nproduct: telemetry\nkind: threshold\n"
                    "column: temp\nabove: 90\n")
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("not a rule: ignored\n")
        n = Node(args=["--rules-file", d]).start()
        try:
            # no domain yet: the rule waits for the next start
            self.assertTrue(any("not applied now" in l for l in n.log), n.log[-5:])
            n.create_domain("plant")
            n.apply(ts_contract("plant", "telemetry", "temp", "machine"), expect=201)
            self.assertEqual(n.stop(), 0)
            n.start()
            rules = n.json("GET", "/v1/rules?domain=plant", expect=200)[1]["rules"]
            self.assertEqual([r["name"] for r in rules], ["hot"])
            n.stop()
            n.start()  # unchanged: not applied again
            st, doc = n.json("GET", "/v1/audit?action=admin.rule.put&limit=100", expect=200)
            self.assertEqual(len(doc["records"]), 1, doc["records"])
            self.assertEqual(doc["records"][0]["principal"], "meshd")

            def ctl(*args, check=True, stdin=None):
                env = dict(os.environ, MESH_TOKEN=n.token)
                out = subprocess.run([MESHCTL, "--url", n.url, "--cacert", n.cafile] +
                                     list(args), capture_output=True, text=True, env=env,
                                     input=stdin)
                if check and out.returncode != 0:
                    raise AssertionError("meshctl %s -> %d: %s%s" % (args, out.returncode,
                                                                    out.stdout, out.stderr))
                return out
            out = ctl("rule", "list")
            self.assertIn("hot", out.stdout)
            self.assertIn("temp > 90", out.stdout)
            out = ctl("rule", "show", "plant", "hot", "--format", "yaml")
            self.assertIn("above: 90", out.stdout)
            rule = "name: cold\ndomain: plant\nproduct: telemetry\nkind: threshold\n" \
                   "column: temp\nbelow: 0\nfor: 2s\n"
            rows = json.dumps([{"machine": "M", "time": "2026-01-01T00:00:0%dZ" % i, "temp": v}
                               for i, v in enumerate([1, -1, -2, -3, 5])])
            rows_file = os.path.join(n.tmp, "rows.json")  # not in the rules directory
            with open(rows_file, "w") as f:
                f.write(rows)
            out = ctl("rule", "test", "-", "--rows", rows_file, stdin=rule)
            self.assertIn("5 rows evaluated", out.stdout)
            self.assertIn("fired", out.stdout)
            self.assertIn("resolved", out.stdout)
            out = ctl("rule", "create", "-", stdin=rule)
            self.assertIn("created rule cold", out.stdout)
            out = ctl("rule", "create", "-", stdin=rule.replace("for: 2s", "for: 3s"))
            self.assertIn("updated rule cold", out.stdout)
            bad = ctl("rule", "create", "-", stdin=rule + "bogus: 1\n", check=False)
            self.assertEqual(bad.returncode, 2, bad.stderr)
            self.assertIn("bogus (line 8)", bad.stderr)
            ctl("rule", "delete", "plant", "cold")
            gone = ctl("rule", "show", "plant", "cold", check=False)
            self.assertEqual(gone.returncode, 3, gone.stderr)
            self.assertEqual(ctl("alert", "list").stdout.strip(), "no alerts")
            self.assertEqual(n.stop(), 0)
            # a rule file that does not parse fails the start, naming the file and the line
            with open(os.path.join(d, "zz-bad.yaml"), "w") as f:
                f.write("name: bad\ndomain: plant\nproduct: telemetry\nkind: threshold\n"
                        "column: temp\nabove: hot\n")
            with self.assertRaises(RuntimeError) as cm:
                n.start()
            self.assertIn("zz-bad.yaml: above (line 6)", str(cm.exception))
            self.assertNotIn("Sanitizer", str(cm.exception))
        finally:
            n.destroy()
            shutil.rmtree(d, ignore_errors=True)


class RestartTest(unittest.TestCase):
    """State survives a restart: a window that spans it fires at the right row; actions still
    owed at a crash run after the restart, once."""

    def test_outbox_survives_crash(self):
        down = Receiver()
        port = down.port
        down.close()
        n = Node(args=["--rules-tick", "200ms"]).start()
        up = None
        try:
            n.create_domain("home")
            n.apply(ts_contract("home", "climate", "temp", "room"), expect=201)
            for name, url in (("freezing", "http://127.0.0.1:%d/hook" % port),
                              ("boiling", "http://127.0.0.1:%d/hook" % port)):
                st, doc = n.json("POST", "/v1/rules", """name: %s
domain: home
product: climate
kind: threshold
column: temp
%s
actions:
  - type: webhook
    url: %s
    secret: %s
    retries: 20
    backoff: 60s
""" % (name, "below: 0" if name == "freezing" else "above: 100", url, SECRET),
                    headers={"Content-Type": "application/yaml"})
                self.assertEqual(st, 201, doc)
            t0 = 1767225600 * SEC
            n.post_rows("home", "climate", [{"room": "attic", "time": t0, "temp": -5}])
            # the first attempt fails (nothing listens); the next is a minute away: crash now
            self.assertTrue(wait_for(lambda: any("freezing" in l and "attempt 1 failed" in l
                                                 for l in n.log), 30))
            n.kill()
            up = Receiver(port)
            n.start()
            self.assertTrue(wait_for(lambda: up.events("freezing", "fired"), 30))
            first = [h for h, p in up.got if p["rule"]["name"] == "freezing"]
            self.assertEqual(first[0]["X-Meshd-Delivery"], "home:1/fired/0")
            # delivered: not owed any more. A clean restart, then a new alert: had the first
            # been owed still, it would have been sent again before the new one.
            self.assertEqual(n.stop(), 0)
            n.start()
            n.post_rows("home", "climate", [{"room": "sauna", "time": t0, "temp": 120}])
            self.assertTrue(wait_for(lambda: up.events("boiling", "fired"), 30))
            self.assertEqual(len(up.events("freezing")), 1)
            self.assertEqual(n.stop(), 0)
        finally:
            n.destroy()
            if up:
                up.close()


    def test_restart_mid_window(self):
        n = Node(args=["--rules-tick", "200ms"]).start()
        try:
            n.create_domain("home")
            n.apply(ts_contract("home", "climate", "temp", "room"), expect=201)
            st, doc = n.json("POST", "/v1/rules", """name: warm
domain: home
product: climate
kind: window
function: count
period: 1h
above: 9
""", headers={"Content-Type": "application/yaml"})
            self.assertEqual(st, 201, doc)
            t0 = 1767225600 * SEC
            for i in range(6):
                st, _ = n.post_rows("home", "climate", [{"room": "kitchen",
                                                         "time": t0 + i * SEC, "temp": 20}])
                self.assertEqual(st, 200)
            n.kill()  # no clean stop: the log replays
            n.start()
            for i in range(6, 9):
                n.post_rows("home", "climate", [{"room": "kitchen", "time": t0 + i * SEC,
                                                 "temp": 20}])
            alerts = n.json("GET", "/v1/alerts?domain=home", expect=200)[1]["alerts"]
            self.assertEqual(alerts, [])
            self.assertEqual(n.stop(), 0)
            n.start()
            n.post_rows("home", "climate", [{"room": "kitchen", "time": t0 + 9 * SEC,
                                             "temp": 20}])
            alerts = n.json("GET", "/v1/alerts?domain=home", expect=200)[1]["alerts"]
            self.assertEqual(len(alerts), 1, alerts)
            self.assertEqual(alerts[0]["value"], 10)
            self.assertEqual(n.stop(), 0)
        finally:
            n.destroy()


if __name__ == "__main__":
    unittest.main(verbosity=2)
