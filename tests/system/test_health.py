"""Built-in health alerts against real meshd processes, a real webhook receiver and (for
node-down) a real nats-server with two meshd nodes, one of them killed.

Each alert is checked end to end: the node writes its health samples, the alert's rule fires,
the signed webhook arrives, the alert is in the health domain's alerts product (meshctl alert
list), it is acknowledged or resolved with meshctl, and the transitions are audited. No timing
assertions: everything is polled with deadlines."""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, free_ports, wait_for  # noqa: E402

SECRET = "health-hook-secret-0123"
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Receiver:
    """Webhook receiver on a free loopback port; keeps only correctly signed payloads."""

    def __init__(self):
        self.got, self.bad_sig, self.lock = [], 0, threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ts = self.headers.get("X-Meshd-Timestamp", "")
                want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(self.headers.get("X-Meshd-Signature", ""), want)
                with outer.lock:
                    if ok:
                        outer.got.append(json.loads(body))
                    else:
                        outer.bad_sig += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def events(self, rule, event=None):
        with self.lock:
            return [p for p in self.got if p["rule"]["name"] == rule and
                    (event is None or p["event"] == event)]

    def wait(self, rule, event, pred=lambda p: True, timeout=30):
        ok = wait_for(lambda: any(pred(p) for p in self.events(rule, event)), timeout=timeout,
                      step=0.2)
        if not ok:
            raise AssertionError("no %s %s webhook; got %s" % (rule, event, self.got))
        return [p for p in self.events(rule, event) if pred(p)][-1]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def meshctl(node, *args, check=True):
    env = dict(os.environ, MESH_TOKEN=node.token)
    cmd = [MESHCTL, "--url", node.url, "--cacert", node.cafile] + list(args)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError("meshctl %s -> %d: %s%s" % (args, out.returncode, out.stdout,
                                                        out.stderr))
    return out


def alerts(node, rule, state="all"):
    out = meshctl(node, "alert", "list", "--domain", "health", "--rule", rule, "--state", state,
                  "--format", "json")
    doc = json.loads(out.stdout)
    return doc["alerts"] if isinstance(doc, dict) else doc


def health_args(rx, secret_file, *extra):
    return ["--health-domain", "health", "--health-interval", "1s",
            "--health-webhook-url", rx.url, "--health-webhook-secret-file", secret_file,
            "--rules-tick", "200ms"] + list(extra)


def contract_with_sla(domain, product, latency="2s"):
    return """apiVersion: v3.1.0
kind: DataContract
id: urn:test:%(domain)s:%(product)s
version: 1.0.0
status: active
domain: %(domain)s
slaProperties:
  - property: latency
    value: %(value)s
    unit: s
schema:
  - name: %(product)s
    customProperties:
      - {property: timeColumn, value: time}
      - {property: onInvalid, value: quarantine}
    properties:
      - {name: device, logicalType: string, primaryKey: true, primaryKeyPosition: 1}
      - {name: time, logicalType: timestamp, primaryKey: true, primaryKeyPosition: 2}
      - name: value
        logicalType: number
        logicalTypeOptions: {minimum: 0, maximum: 100}
""" % {"domain": domain, "product": product, "value": latency.rstrip("s")}


def audit_alerts(node, rule):
    recs = node.json("GET", "/v1/audit?limit=10000", expect=200)[1]["records"]
    return [r for r in recs if r["action"].startswith("alert.") and r.get("domain") == "health"
            and (r.get("details") or {}).get("rule") == rule]


class HealthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-health-test-")
        cls.secret = os.path.join(cls.tmp, "hook.secret")
        with open(cls.secret, "w") as f:
            f.write(SECRET + "\n")
        cls.rx = Receiver()
        cls.node = Node(args=health_args(
            cls.rx, cls.secret, "--health-auth-failures", "5", "--health-auth-window", "2s",
            "--health-quality-min", "90", "--health-disk-low", "0")).start()

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy()
        cls.rx.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_rules_made_from_the_options(self):
        rules = self.node.json("GET", "/v1/rules?domain=health", expect=200)[1]["rules"]
        names = sorted(r["name"] for r in rules)
        # disk-space-low is off here (health_disk_low 0)
        self.assertEqual(names, ["auth-failures", "node-down", "product-stale", "quality-low",
                                 "replication-lag"])
        auth = [r for r in rules if r["name"] == "auth-failures"][0]
        self.assertEqual(auth["product"], "auth")
        text = json.dumps(rules)
        self.assertNotIn(SECRET, text)  # the webhook secret is never listed

    def test_auth_failures(self):
        n = self.node
        before = self.scrape_value("meshd_auth_failures_total")
        for _ in range(8):
            st, _, _ = n.request("GET", "/v1/domains", token="not-a-valid-token-0123456789")
            self.assertEqual(st, 401)
        # a wrong password at login counts too
        st, _, _ = n.request("POST", "/v1/login", body=json.dumps(
            {"user": "nobody", "password": "wrong-password"}).encode(),
            headers={"Content-Type": "application/json"}, token="")
        self.assertIn(st, (401, 429))
        fired = self.rx.wait("auth-failures", "fired")
        self.assertEqual(fired["series"], {"source": "127.0.0.1"})
        self.assertGreater(fired["value"], 5)
        self.assertEqual(fired["domain"], "health")
        self.assertGreaterEqual(self.scrape_value("meshd_auth_failures_total"), before + 9)
        # the window (2 s) passes without failures: the alert resolves by itself
        self.rx.wait("auth-failures", "resolved",
                     lambda p: p["alert_id"] == fired["alert_id"])
        got = [a for a in alerts(n, "auth-failures") if a["alert_id"] == fired["alert_id"]]
        self.assertEqual(got[0]["state"], "resolved")
        acts = sorted({r["action"] for r in audit_alerts(n, "auth-failures")})
        self.assertEqual(acts, ["alert.fired", "alert.resolved"])

    def test_product_stale_and_quality_low(self):
        n = self.node
        n.create_domain("plant")
        n.apply(contract_with_sla("plant", "readings"), expect=201)
        now = time.time()
        rows = [{"device": "d1", "time": int(now), "value": 50}]
        rows += [{"device": "d%d" % i, "time": int(now), "value": 500} for i in range(2, 8)]
        st, r = n.post_rows("plant", "readings", json.dumps(rows).encode())
        self.assertEqual(st, 200, r)
        # 1 row in 7 valid: the score falls below health_quality_min (90)
        low = self.rx.wait("quality-low", "fired",
                           lambda p: p["series"] == {"domain": "plant", "product": "readings"})
        self.assertLess(low["value"], 90)
        # no write for more than the SLA's 2 s: stale
        stale = self.rx.wait("product-stale", "fired",
                             lambda p: p["series"] == {"domain": "plant", "product": "readings"})
        self.assertEqual(stale["value"], 0)
        # acknowledge it with meshctl: a webhook for the acknowledgement, the row says so
        meshctl(n, "alert", "ack", stale["alert_id"], "--note", "looking")
        self.rx.wait("product-stale", "acknowledged", lambda p: p["alert_id"] == stale["alert_id"])
        row = [a for a in alerts(n, "product-stale") if a["alert_id"] == stale["alert_id"]][0]
        self.assertEqual(row["state"], "acknowledged")
        # fresh data: it resolves by itself
        st, r = n.post_rows("plant", "readings", json.dumps(
            [{"device": "d1", "time": int(time.time()) + 1, "value": 51}]).encode())
        self.assertEqual(st, 200, r)
        self.rx.wait("product-stale", "resolved", lambda p: p["alert_id"] == stale["alert_id"])
        # quality-low resolved by hand
        meshctl(n, "alert", "resolve", low["alert_id"], "--note", "sensor replaced")
        self.rx.wait("quality-low", "resolved", lambda p: p["alert_id"] == low["alert_id"])
        acts = [r["action"] for r in audit_alerts(n, "product-stale")]
        for a in ("alert.fired", "alert.acknowledged", "alert.resolved"):
            self.assertIn(a, acts)
        by = [r for r in audit_alerts(n, "quality-low") if r["action"] == "alert.resolved"]
        self.assertTrue(by and by[0]["principal"] != "meshd", by)

    def test_zz_samples_are_products(self):
        # the samples are rows like any product's, readable by SQL
        n = self.node
        cnt = n.scalar('SELECT count(*) FROM health.products')
        self.assertGreater(cnt, 0)
        self.assertEqual(self.rx.bad_sig, 0)

    def scrape_value(self, name):
        st, _, body = self.node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("no %s in /metrics" % name)


class DiskSpaceLowTest(unittest.TestCase):
    """The warning before min_free_space refuses writes: a threshold above the disk's free
    space fires; lowering it in the configuration (a restart) resolves it."""

    def test_disk_space_low(self):
        tmp = tempfile.mkdtemp(prefix="meshd-health-disk-")
        rx = Receiver()
        secret = os.path.join(tmp, "hook.secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        node = None
        try:
            node = Node(data_dir=os.path.join(tmp, "data"), keep_dir=True, args=health_args(
                rx, secret, "--health-disk-low", "100000GiB", "--health-webhook-alerts",
                "disk-space-low")).start()
            fired = rx.wait("disk-space-low", "fired")
            self.assertEqual(list(fired["series"].keys()), ["node"])
            self.assertGreater(fired["value"], 0)  # free bytes
            self.assertEqual(fired["rule"]["severity"], "warning")
            a = alerts(node, "disk-space-low", "firing")
            self.assertEqual([x["alert_id"] for x in a], [fired["alert_id"]])
            table = meshctl(node, "alert", "list", "--domain", "health").stdout
            self.assertIn("disk-space-low", table)
            # the metric the Prometheus rule and the dashboard read
            st, _, body = node.request("GET", "/metrics")
            self.assertIn('meshd_rule_firing{domain="health",rule="disk-space-low"} 1',
                          body.decode())
            node.stop()
            node = Node(data_dir=os.path.join(tmp, "data"), keep_dir=True, args=health_args(
                rx, secret, "--health-disk-low", "1KiB", "--health-webhook-alerts",
                "disk-space-low")).start()
            rx.wait("disk-space-low", "resolved", lambda p: p["alert_id"] == fired["alert_id"])
            self.assertEqual(alerts(node, "disk-space-low", "open"), [])
            acts = [r["action"] for r in audit_alerts(node, "disk-space-low")]
            self.assertIn("alert.fired", acts)
            self.assertIn("alert.resolved", acts)
            # health_webhook_alerts named only disk-space-low: the other rules have no webhook
            rules = node.json("GET", "/v1/rules?domain=health", expect=200)[1]["rules"]
            self.assertTrue(all(r.get("actions") for r in rules if r["name"] ==
                                "disk-space-low"))
            self.assertFalse(any(r.get("actions") for r in rules if r["name"] !=
                                 "disk-space-low"))
        finally:
            if node:
                node.destroy()
            rx.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_bad_alert_name_refused(self):
        tmp = tempfile.mkdtemp(prefix="meshd-health-bad-")
        try:
            out = subprocess.run(
                [os.path.join(os.path.dirname(MESHCTL), "meshd"), "--data-dir",
                 os.path.join(tmp, "d"), "--listen", "127.0.0.1:0", "--tls", "off",
                 "--health-domain", "health", "--health-webhook-alerts", "disk-space-low,nope"],
                capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("unknown alert 'nope'", out.stderr + out.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class NatsServer:
    def __init__(self, conf, log):
        self.logf = open(log, "w")
        self.proc = subprocess.Popen([NATS, "-c", conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


class NodeDownTest(unittest.TestCase):
    """Two meshd nodes joined through a real nats-server; n2 is killed with SIGKILL: n1 raises
    node-down for n2, and resolves it when n2 is back."""

    def test_node_down(self):
        tmp = tempfile.mkdtemp(prefix="meshd-health-mesh-")
        rx = Receiver()
        secret = os.path.join(tmp, "hook.secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        nats, n1, n2 = None, None, None
        try:
            cport, rport, lport = free_ports(3)
            mdir = os.path.join(tmp, "mesh")
            out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind",
                                  "127.0.0.1", "--hub", "1", "--client-port", str(cport),
                                  "--cluster-port", str(rport), "--leafnode-port", str(lport),
                                  "--node", "n1", "--node", "n2"], capture_output=True,
                                 text=True)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            nats = NatsServer(os.path.join(mdir, "hub-1", "nats.conf"),
                              os.path.join(tmp, "nats.log"))
            mesh = ["--mesh-heartbeat", "500ms", "--mesh-ttl", "2s"]
            n1 = Node(args=["--config", os.path.join(mdir, "nodes", "n1", "meshd.conf")] + mesh +
                      health_args(rx, secret, "--health-node-down", "3s",
                                  "--health-disk-low", "0")).start()
            n2 = Node(data_dir=os.path.join(tmp, "n2"), keep_dir=True, args=[
                "--config", os.path.join(mdir, "nodes", "n2", "meshd.conf")] + mesh).start()

            def sees_n2():
                st, _, body = n1.request("GET", "/v1/mesh/nodes")
                return st == 200 and any(x["name"] == "n2" and x["alive"]
                                         for x in json.loads(body)["nodes"])
            self.assertTrue(wait_for(sees_n2, timeout=60, step=0.5), "\n".join(n1.log[-20:]))
            # n1 samples n2 as running before the kill
            self.assertTrue(wait_for(lambda: n1.scalar(
                "SELECT count(*) FROM health.nodes WHERE node = 'n2'") > 0, timeout=30))
            self.assertEqual(rx.events("node-down"), [])
            n2.kill()  # SIGKILL: no last "stopped" heartbeat
            fired = rx.wait("node-down", "fired", timeout=60)
            self.assertEqual(fired["series"], {"node": "n2"})
            self.assertGreater(fired["value"], 3)
            self.assertEqual(fired["rule"]["severity"], "critical")
            a = alerts(n1, "node-down", "firing")
            self.assertEqual([x["alert_id"] for x in a], [fired["alert_id"]])
            meshctl(n1, "alert", "ack", fired["alert_id"])
            rx.wait("node-down", "acknowledged", lambda p: p["alert_id"] == fired["alert_id"])
            # n2 comes back: its heartbeats resolve the alert
            n2 = Node(data_dir=os.path.join(tmp, "n2"), keep_dir=True, args=[
                "--config", os.path.join(mdir, "nodes", "n2", "meshd.conf")] + mesh).start()
            rx.wait("node-down", "resolved", lambda p: p["alert_id"] == fired["alert_id"],
                    timeout=60)
            acts = [r["action"] for r in audit_alerts(n1, "node-down")]
            for act in ("alert.fired", "alert.acknowledged", "alert.resolved"):
                self.assertIn(act, acts)
        finally:
            for n in (n1, n2):
                if n:
                    n.destroy()
            if nats:
                nats.stop()
            rx.close()
            shutil.rmtree(tmp, ignore_errors=True)


class MqttRouteTest(unittest.TestCase):
    """health_mqtt_topic: the alert published through a real mosquitto to a real
    mosquitto_sub, only for the alerts health_mqtt_alerts names."""

    def test_disk_alert_on_mqtt(self):
        import socket
        tmp = tempfile.mkdtemp(prefix="meshd-health-mqtt-")
        port = free_ports(1)[0]
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\n" % port)
        broker = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        sub = node = None
        try:
            def broker_up():
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False
            self.assertTrue(wait_for(broker_up, 20))
            out = os.path.join(tmp, "sub.out")
            with open(out, "w") as outf:
                sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                        "-q", "1", "-v", "-t", "meshd/#"], stdout=outf,
                                       stderr=subprocess.DEVNULL)
            node = Node(args=["--mqtt-url", "mqtt://127.0.0.1:%d" % port,
                              "--health-domain", "health", "--health-interval", "1s",
                              "--health-disk-low", "100000GiB",
                              "--health-mqtt-topic", "meshd/health/{rule}/{event}",
                              "--health-mqtt-alerts", "disk-space-low,node-down"]).start()

            def got():
                with open(out) as f:
                    return [line.strip() for line in f if line.strip()]
            self.assertTrue(wait_for(lambda: any(line.startswith(
                "meshd/health/disk-space-low/fired ") for line in got()), 60), got())
            line = [x for x in got() if x.startswith("meshd/health/disk-space-low/fired ")][0]
            payload = json.loads(line.split(" ", 1)[1])
            self.assertEqual(payload["rule"]["name"], "disk-space-low")
            self.assertEqual(payload["domain"], "health")
            rules = node.json("GET", "/v1/rules?domain=health", expect=200)[1]["rules"]
            with_mqtt = sorted(r["name"] for r in rules if r.get("actions"))
            self.assertEqual(with_mqtt, ["disk-space-low", "node-down"])
        finally:
            if node:
                node.destroy()
            for p in (sub, broker):
                if p and p.poll() is None:
                    p.terminate()
                    p.wait(10)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
