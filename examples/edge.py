"""edge.py - the pieces the edge scenarios (factory/, home/, healthcare/) run on.

Each scenario's run.sh starts everything it needs on loopback ports chosen here, in a
temporary directory, and stops all of it at the end (also on Ctrl-C or a failure):

- a mosquitto broker, configured as docs/mqtt.md asks (max_queued_messages 0);
- a meshd node (TLS on, an admin token; only the node's own certificate is trusted);
- a webhook receiver that checks every request's HMAC signature (X-Meshd-Signature);
- the scenario's devices, as real MQTT clients (paho-mqtt, Debian's python3-paho-mqtt).

A scenario prints one line per check ("ok   - ..." or "FAIL - ...") and exits 0 only when
every check passed; with --keep it leaves the directory (meshd's data and log) behind.
Standard library plus paho only; run with /usr/bin/python3 (Debian's, which has paho).
"""
import argparse
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
TOKEN = "edge-scenario-token-0123456789"
SECRET = "edge-scenario-webhook-secret"


def build_dir():
    """The build with meshd and meshctl: $MESH_BUILD, else build/debug of this checkout."""
    return os.environ.get("MESH_BUILD") or os.path.join(SRC, "build", "debug")


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def wait_for(pred, timeout=30.0, step=0.05):
    """Polls pred() until it is true or timeout seconds passed; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Checks:
    """Counts checks; prints one line each."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def __call__(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   - %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL - %s%s" % (name, (": " + str(detail)) if detail != "" else ""),
                  flush=True)
        return bool(cond)


class Receiver:
    """A webhook receiver on a free loopback port. Keeps (headers, raw body, JSON) of every
    request whose signature is right (HMAC-SHA256 over timestamp "." body, compared in
    constant time, timestamp within 5 minutes); counts the others in bad_sig."""

    def __init__(self, secret=SECRET):
        self.got = []
        self.bad_sig = 0
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(n, 1 << 20))
                ts = self.headers.get("X-Meshd-Timestamp", "")
                sig = self.headers.get("X-Meshd-Signature", "")
                want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                ok = (hmac.compare_digest(sig, want) and ts.isdigit()
                      and abs(time.time() - int(ts)) < 300)
                with outer.lock:
                    if ok:
                        outer.got.append((dict(self.headers), body, json.loads(body)))
                    else:
                        outer.bad_sig += 1
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def events(self, rule=None, event=None):
        """The JSON bodies received, optionally of one rule and one event."""
        with self.lock:
            return [p for _, _, p in self.got
                    if (rule is None or p["rule"]["name"] == rule)
                    and (event is None or p["event"] == event)]

    def raw(self):
        with self.lock:
            return [b for _, b, _ in self.got]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Scenario:
    """Owns the temporary directory and every process of a scenario; close() stops them all
    (also registered for SIGTERM/SIGINT)."""

    def __init__(self, name, argv=None):
        ap = argparse.ArgumentParser(prog="examples/%s/run.sh" % name,
                                     description="Runs the %s edge scenario end to end "
                                     "(see examples/README.md)." % name)
        ap.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (meshd's data and log)")
        self.add_args(ap)
        self.opts = ap.parse_args(argv)
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="meshd-%s-" % name)
        self.procs = []
        self.clients = []
        self.receiver = None
        self.check = Checks()
        self.build = build_dir()
        self.meshd_log = None
        self.meshd_proc = None
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._on_signal)
        for exe in ("meshd", "meshctl"):
            if not os.access(os.path.join(self.build, exe), os.X_OK):
                sys.exit("%s not found in %s: build first (cmake --preset debug && "
                         "cmake --build build/debug), or set MESH_BUILD" % (exe, self.build))

    def add_args(self, ap):
        """Scenario options: overridden by scenarios that have some."""

    def _on_signal(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    # ---- processes ----------------------------------------------------------------------
    def spawn(self, argv, log):
        f = open(os.path.join(self.tmp, log), "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=self.tmp)
        f.close()
        self.procs.append(p)
        return p

    def broker(self):
        """Starts mosquitto on a free port; returns the port."""
        port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nlog_dest stderr\nlog_type error\n"
                    "log_type warning\n" % port)
        p = self.spawn(["mosquitto", "-c", conf], "mosquitto.log")
        if not wait_for(lambda: port_open(port) or p.poll() is not None, 20) or p.poll():
            self.fail_setup("mosquitto did not start", "mosquitto.log")
        self.broker_port = port
        return port

    def meshd(self, args=(), name="data"):
        """Starts meshd with its data in the scenario's directory (NAME/, its log NAME.log);
        waits until it serves."""
        data = os.path.join(self.tmp, name)
        self.meshd_log = os.path.join(self.tmp, name + ".log")
        open(self.meshd_log, "w").close()
        argv = [os.path.join(self.build, "meshd"), "--data-dir", data, "--listen",
                "127.0.0.1:0", "--admin-token", TOKEN] + list(args)
        f = open(self.meshd_log, "ab")
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=f, cwd=self.tmp)
        f.close()
        self.procs.append(p)
        self.meshd_proc = p

        def addr():
            with open(self.meshd_log) as lf:
                m = re.search(r"listening on https://([0-9.]+:[0-9]+)", lf.read())
            return m.group(1) if m else (None if p.poll() is None else "died")
        a = wait_for(addr, 30)
        if not a or a == "died":
            self.fail_setup("meshd did not start", self.meshd_log)
        self.host, port = a.split(":")
        self.port = int(port)
        self.cafile = os.path.join(data, "tls", "cert.pem")
        self.ssl = ssl.create_default_context(cafile=self.cafile)
        return p

    def webhook(self):
        """A new webhook receiver (the previous one, if any, is closed)."""
        if self.receiver:
            self.receiver.close()
        self.receiver = Receiver()
        return self.receiver

    def stop_meshd(self):
        """Stops meshd (SIGTERM) and checks it exited cleanly."""
        p = self.meshd_proc
        p.terminate()
        try:
            rc = p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        self.check("meshd stopped cleanly", rc == 0, rc)
        self.procs.remove(p)
        self.meshd_proc = None

    def mqtt(self, client_id, on_message=None):
        """A connected paho client (MQTT 3.1.1) with its network loop in a thread."""
        c = new_client(client_id)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        if on_message:
            c.on_message = on_message
        c.connect("127.0.0.1", self.broker_port, keepalive=30)
        c.loop_start()
        self.clients.append(c)
        return c

    def fail_setup(self, what, log):
        print("FAIL - %s" % what, flush=True)
        try:
            with open(os.path.join(self.tmp, log)) as f:
                print("".join(f.readlines()[-20:]), flush=True)
        except OSError:
            pass
        self.close()
        sys.exit(1)

    def close(self):
        for c in self.clients:
            try:
                c.loop_stop()
                c.disconnect()
            except Exception:
                pass
        self.clients = []
        if self.receiver:
            self.receiver.close()
            self.receiver = None
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        if self.tmp and not self.opts.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            print("# kept %s" % self.tmp, flush=True)
        self.tmp = None

    def finish(self):
        """Checks meshd is alive, stops everything, prints the summary; returns the exit code."""
        if self.meshd_proc:
            if self.check("meshd ran through", self.meshd_proc.poll() is None):
                self.stop_meshd()
        if self.check.failed and self.meshd_log:
            with open(self.meshd_log) as f:
                print("# last lines of meshd's log:\n" + "".join(f.readlines()[-15:]))
        self.close()
        print("# %s: %d passed, %d failed" % (self.name, self.check.passed, self.check.failed),
              flush=True)
        return 1 if self.check.failed else 0

    # ---- meshd's API --------------------------------------------------------------------
    def api(self, method, path, body=None, ctype="application/json"):
        """One request as the admin; returns (status, parsed JSON or text)."""
        return self.api_as(TOKEN, method, path, body, ctype)

    def api_as(self, token, method, path, body=None, ctype="application/json"):
        """One request with a bearer token; returns (status, parsed JSON or text)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl, timeout=60)
        hdrs = {"Authorization": "Bearer " + token}
        if body is not None:
            hdrs["Content-Type"] = ctype
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")

    def must(self, want, method, path, body=None, ctype="application/json"):
        st, doc = self.api(method, path, body, ctype)
        if st != want:
            self.check("%s %s answers %d" % (method, path, want), False, "%d %s" % (st, doc))
            self.close()
            sys.exit(1)
        return doc

    def query(self, sql):
        """Rows of a query as a list of dicts."""
        doc = self.must(200, "POST", "/v1/query", {"sql": sql})
        cols = [c["name"] for c in doc["columns"]]
        return [dict(zip(cols, r)) for r in doc["rows"]]

    def scalar(self, sql):
        rows = self.query(sql)
        return list(rows[0].values())[0] if rows else None

    def setup_domain(self, domain, folder):
        """The domain and the contracts of examples/FOLDER."""
        self.must(201, "POST", "/v1/domains", {"name": domain})
        for f in sorted(os.listdir(os.path.join(HERE, folder))):
            if f.endswith(".odcs.yaml"):
                with open(os.path.join(HERE, folder, f)) as fh:
                    self.must(201, "POST", "/v1/contracts", fh.read(), "application/yaml")

    def rule(self, folder, name, webhook=None):
        """Applies examples/FOLDER/rules/NAME.yaml; its webhook actions are pointed at the
        scenario's receiver (their example URLs do not exist here)."""
        with open(os.path.join(HERE, folder, "rules", name + ".yaml")) as f:
            text = f.read()
        if webhook:
            text = re.sub(r"(?m)^(\s*url:) .*$", r"\1 " + webhook.url, text)
            text = re.sub(r"(?m)^(\s*secret:) .*$", r"\1 " + SECRET, text)
        self.must(201, "POST", "/v1/rules", text, "application/yaml")

    def mapping(self, name, topic, domain, product, fmt="json"):
        """A mapping written by the principal mqtt, and mqtt allowed to write (writer role)."""
        self.must(200, "PUT", "/v1/principals/mqtt", {"roles": ["writer"]})
        self.must(201, "POST", "/v1/mqtt/mappings",
                  {"name": name, "topic": topic, "domain": domain, "product": product,
                   "format": fmt, "qos": 1})

    def mqtt_ready(self):
        """Waits until meshd's MQTT session is up and every mapping is subscribed."""
        def ready():
            st, doc = self.api("GET", "/v1/mqtt/status")
            return (st == 200 and doc["state"] == "connected"
                    and all(m.get("subscribed") for m in doc["mappings"]))
        return self.check("meshd's MQTT session is up and subscribed", wait_for(ready, 30))

    def stored(self, mapping):
        """Messages of a mapping meshd stored or quarantined (acknowledged to the broker once
        durable)."""
        st, doc = self.api("GET", "/v1/mqtt/status")
        for m in doc["mappings"]:
            if m["name"] == mapping:
                return m["messages"]["stored"] + m["messages"]["quarantined"]
        return 0


def new_client(client_id):
    """A paho client with the version 1 callbacks (paho-mqtt 1.6 on Debian 12; paho-mqtt 2 on
    Debian 13 asks for the callback API version)."""
    import paho.mqtt.client as mqtt
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id,
                           clean_session=True)
    return mqtt.Client(client_id=client_id, clean_session=True)


def publish_all(client, msgs, qos=1):
    """Publishes (topic, payload) pairs at QoS 1 and waits for every PUBACK."""
    infos = [client.publish(t, p, qos=qos) for t, p in msgs]
    for i in infos:
        i.wait_for_publish(60)
    return all(i.is_published() for i in infos)
