#!/usr/bin/python3
"""edge_latency.py - ingest-to-action latency and rule evaluation throughput (issue 6, part 6).

    bench/edge_latency.py [--build build/release] [--rules 100] [--series 1000]
                          [--rate 100000] [--seconds 20] [--probes 300] [--out DIR]

Starts, on loopback, mosquitto (max_queued_messages 0), a release meshd (plain HTTP, as
bench/run.sh does; encryption at rest on), a webhook receiver and an MQTT subscriber
(bench/edge_sink), and stops them all at the end. Domain `bench`: product `load` (series `device`, 1000
of them, columns value and aux) carrying N rules (a third each of threshold, 10 s sliding
window average and rolling z-score, with limits the load never reaches, so every rule
evaluates every row and none fires), and product `probe` with two rules that fire on every
new probe series: one with a webhook action, one with an MQTT publish action.

1. Throughput: the load file (rows = rate x seconds, 1000 series, 1 s apart per series) is
   written as fast as meshd answers by bench/loader (2 clients, 5000-row batches), into a
   fresh node with 0 rules and into one with N rules: rows/s each, and rule evaluations per
   second (rows/s x rules) with N rules.
2. Latency: on a fresh node with N rules, probes alone (idle), then probes while the loader
   offers `--rate` rows/s. A probe is one row (a new series, value 1) written with
   POST /v1/products/bench/probe/rows; its times: sent, acknowledged (the 200 read), webhook
   received and MQTT command received (by edge_sink). All are CLOCK_MONOTONIC, one clock
   for every process of the machine. Reported: ack -> webhook, ack -> MQTT (what the goal names:
   from the acknowledged write to the action, here up to its receipt, so receiver and
   loopback are included) and sent -> webhook (the whole path, write included).

The receiving end is bench/edge_sink.c (C: a Python receiver added 1-20 ms of jitter here).
Prints a Markdown table and writes DIR/summary.json (default bench/results/edge-<UTC time>/).
Needs cc, libcurl and libmosquitto (scripts/setup.sh) for bench/loader.c and bench/edge_sink.c.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(BENCH)
TOKEN = "bench-token-0123456789abcdef"
SECRET = "bench-webhook-secret"  # the webhook is signed as usual; edge_sink does not check
T0 = 1767225600  # 2026-01-01T00:00:00Z: load rows' first time (s)

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:bench:%(p)s
version: 1.0.0
status: active
domain: bench
schema:
  - name: %(p)s
    customProperties:
      - property: timeColumn
        value: time
    properties:
      - name: device
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: time
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: value
        logicalType: number
      - name: aux
        logicalType: number
"""


def now():
    return time.monotonic_ns()


def pct(xs, q):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class Bench:
    def __init__(self, o):
        self.o = o
        self.tmp = tempfile.mkdtemp(prefix="meshd-edge-bench-")
        self.procs = []
        self.webhook_at = {}  # probe device -> ns
        self.mqtt_at = {}
        self.lock = threading.Lock()

    # ---- processes ----------------------------------------------------------------------
    def broker(self):
        self.mport = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\n" % self.mport)
        self.procs.append(subprocess.Popen(["mosquitto", "-c", conf],
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.mport), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("mosquitto did not start")

    def meshd(self, name):
        data = os.path.join(self.tmp, name)
        log = data + ".log"
        env = dict(os.environ, MESHD_KEK=hashlib.sha256(name.encode()).hexdigest())
        with open(log, "wb") as lf:
            p = subprocess.Popen([os.path.join(self.o.build, "meshd"), "--data-dir", data,
                                  "--listen", "127.0.0.1:0", "--tls", "off", "--admin-token",
                                  TOKEN, "--mqtt-url", "mqtt://127.0.0.1:%d" % self.mport],
                                 stdout=subprocess.DEVNULL, stderr=lf, env=env)
        self.procs.append(p)
        for _ in range(600):
            with open(log) as f:
                m = re.search(r"listening on http://([0-9.]+):([0-9]+)", f.read())
            if m:
                self.port = int(m.group(2))
                self.node = p
                return p
            if p.poll() is not None:
                break
            time.sleep(0.05)
        sys.exit("meshd did not start: see %s" % log)

    def stop_meshd(self):
        self.node.terminate()
        self.node.wait(60)
        self.procs.remove(self.node)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- API ----------------------------------------------------------------------------
    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def api(self, method, path, body=None, ctype="application/json", c=None):
        own = c is None
        c = c or self.conn()
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        h = {"Authorization": "Bearer " + TOKEN}
        if body is not None:
            h["Content-Type"] = ctype
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if own:
            c.close()
        if r.status >= 300:
            sys.exit("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data) if data else None

    def setup(self, nrules, with_probe):
        self.api("POST", "/v1/domains", {"name": "bench"})
        for p in ("load", "probe"):
            self.api("POST", "/v1/contracts", CONTRACT % {"p": p}, "application/yaml")
        for i in range(nrules):
            kind = ("threshold", "window", "anomaly")[i % 3]
            col = ("value", "aux")[i % 2]
            text = "name: load-%03d\ndomain: bench\nproduct: load\nkind: %s\ncolumn: %s\n" % (
                i, kind, col)
            if kind == "threshold":
                text += "above: %d\n" % (1000000 + i)
            elif kind == "window":
                text += "function: avg\nperiod: 10s\nabove: %d\n" % (1000000 + i)
            else:
                text += "method: zscore\nsamples: 60\nwarmup: 10\nsensitivity: 1000\n"
            self.api("POST", "/v1/rules", text, "application/yaml")
        if with_probe:
            self.api("POST", "/v1/rules", """name: probe-webhook
domain: bench
product: probe
kind: threshold
column: value
above: 0.5
actions:
  - {type: webhook, url: "http://127.0.0.1:%d/hook", secret: "%s", retries: 0}
""" % (self.hport, SECRET), "application/yaml")
            self.api("POST", "/v1/rules", """name: probe-mqtt
domain: bench
product: probe
kind: threshold
column: value
above: 0.5
actions:
  - {type: mqtt, topic: "bench/cmd/{device}", payload: '{"device": "{device}"}', retries: 0}
""", "application/yaml")
        for _ in range(200):
            st = self.api("GET", "/v1/mqtt/status")
            if st["state"] == "connected":
                break
            time.sleep(0.05)

    # ---- receivers ------------------------------------------------------------------------
    def receivers(self):
        """bench/edge_sink (C): the webhook receiver and the MQTT subscriber; its lines
        "webhook|mqtt DEVICE NS" are read by a thread of this process."""
        self.sink = subprocess.Popen([self.sink_bin, "--mqtt-port", str(self.mport), "--topic",
                                      "bench/cmd/#"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.procs.append(self.sink)
        kind, _, port = self.sink.stdout.readline().split(" ")
        if kind != "http":
            sys.exit("edge_sink did not start")
        self.hport = int(port)

        def read():
            for line in self.sink.stdout:
                kind, dev, ns = line.split()
                with self.lock:
                    (self.webhook_at if kind == "webhook" else self.mqtt_at).setdefault(
                        dev, int(ns))
        threading.Thread(target=read, daemon=True).start()

    # ---- load -----------------------------------------------------------------------------
    def load_file(self):
        path = os.path.join(self.tmp, "load.lp")
        rows = self.o.rate * self.o.seconds
        per_t = self.o.series
        with open(path, "w") as f:
            for k in range(rows):
                t, d = divmod(k, per_t)
                # value wanders per series; aux a slow sine-like sawtooth: never near the limits
                f.write("load,device=d%05d value=%.3f,aux=%.2f %d\n"
                        % (d, 20 + (k * 7919 % 1000) / 100.0, (t % 60) / 6.0,
                           (T0 + t) * 10**9))
        return path, rows

    def loader(self, path, rate=None):
        argv = [self.loader_bin, "--url", "http://127.0.0.1:%d/write?db=bench" % self.port,
                "--token", TOKEN, "--clients", "2", "--batch", "5000", path]
        if rate:
            argv[1:1] = ["--rate", str(rate)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def probes(self, n, gap, tag):
        """n probe rows, one every gap s; returns the latency samples in ms."""
        c = self.conn()
        sent = {}
        acked = {}
        for i in range(n):
            dev = "%s-%05d" % (tag, i)
            body = json.dumps([{"device": dev, "time": (T0 + i) * 10**9, "value": 1}])
            t = now()
            self.api("POST", "/v1/products/bench/probe/rows", body, c=c)
            acked[dev] = now()
            sent[dev] = t
            time.sleep(gap)
        c.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.lock:
                if all(d in self.webhook_at and d in self.mqtt_at for d in sent):
                    break
            time.sleep(0.05)
        with self.lock:
            ms = lambda a, b: (a - b) / 1e6  # noqa: E731
            return {
                "probes": n,
                "webhook_received": sum(d in self.webhook_at for d in sent),
                "mqtt_received": sum(d in self.mqtt_at for d in sent),
                "write_ms": [ms(acked[d], sent[d]) for d in sent],
                "ack_to_webhook_ms": [ms(self.webhook_at[d], acked[d]) for d in sent
                                      if d in self.webhook_at],
                "ack_to_mqtt_ms": [ms(self.mqtt_at[d], acked[d]) for d in sent
                                   if d in self.mqtt_at],
                "sent_to_webhook_ms": [ms(self.webhook_at[d], sent[d]) for d in sent
                                       if d in self.webhook_at],
            }


def summarize(r):
    out = {k: v for k, v in r.items() if not isinstance(v, list)}
    for k, v in r.items():
        if isinstance(v, list):
            out[k] = {"p50": pct(v, 0.5), "p99": pct(v, 0.99), "max": max(v) if v else None}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SRC, "build", "release"))
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=100000, help="rows/s offered during probes")
    ap.add_argument("--seconds", type=int, default=20, help="seconds of load (rows = rate x s)")
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between probes")
    ap.add_argument("--out", default=None)
    o = ap.parse_args()
    for exe in ("meshd", "meshctl"):
        if not os.access(os.path.join(o.build, exe), os.X_OK):
            sys.exit("%s/%s missing: cmake --preset release && cmake --build build/release"
                     % (o.build, exe))
    b = Bench(o)
    res = {"command": " ".join(["bench/edge_latency.py"] + sys.argv[1:]), "rules": o.rules,
           "series": o.series, "offered_rate": o.rate, "nproc": os.cpu_count(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        hb = os.path.join(BENCH, "build")
        os.makedirs(hb, exist_ok=True)
        b.loader_bin = os.path.join(hb, "loader")
        b.sink_bin = os.path.join(hb, "edge_sink")
        for exe, libs in ((b.loader_bin, ["-lcurl", "-lpthread"]),
                          (b.sink_bin, ["-lmosquitto", "-lpthread"])):
            subprocess.run(["cc", "-std=c11", "-O2", "-o", exe,
                            os.path.join(BENCH, os.path.basename(exe) + ".c")] + libs,
                           check=True)
        b.broker()
        b.receivers()
        path, rows = b.load_file()
        res["load_rows"] = rows
        # 1. throughput with 0 and N rules
        for nr in (0, o.rules):
            b.meshd("tp-%d" % nr)
            b.setup(nr, False)
            p = b.loader(path)
            out, err = p.communicate()
            if p.returncode:
                sys.exit("loader: " + err)
            r = json.loads(out)
            res["throughput_%d_rules" % nr] = {
                "rows_per_s": r["rows_per_s"], "seconds": r["seconds"],
                "rule_evals_per_s": r["rows_per_s"] * nr,
                "batch_ms_p50": r["batch_ms_p50"], "batch_ms_p99": r["batch_ms_p99"]}
            b.stop_meshd()
        # 2. latency: idle, then under the offered load
        b.meshd("lat")
        b.setup(o.rules, True)
        res["idle"] = summarize(b.probes(o.probes, o.gap, "idle"))
        p = b.loader(path, o.rate)
        time.sleep(1)  # the load is running
        loaded = b.probes(o.probes, o.gap, "load")
        lp_done = p.poll() is None  # the probes ended while the load still ran
        out, err = p.communicate()
        if p.returncode:
            sys.exit("loader: " + err)
        r = json.loads(out)
        res["under_load"] = summarize(loaded)
        res["under_load"]["load_rows_per_s"] = r["rows_per_s"]
        res["under_load"]["probes_within_load"] = lp_done
    finally:
        b.close()
    outdir = o.out or os.path.join(BENCH, "results",
                                   "edge-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(res, f, indent=2)
    f2 = lambda v: "-" if v is None else "%.2f" % v  # noqa: E731
    print("\n## ingest-to-action latency, ms (%d probes each; %d rules on the loaded product)"
          % (o.probes, o.rules))
    print("| condition | write p50 / p99 | ack->webhook p50 / p99 / max | "
          "ack->MQTT p50 / p99 / max | sent->webhook p50 / p99 |")
    print("|---|---|---|---|---|")
    for name, k in (("idle", "idle"), ("load %d rows/s offered, %.0f achieved"
                                       % (o.rate, res["under_load"]["load_rows_per_s"]),
                                       "under_load")):
        x = res[k]
        print("| %s | %s / %s | %s / %s / %s | %s / %s / %s | %s / %s |" % (
            name, f2(x["write_ms"]["p50"]), f2(x["write_ms"]["p99"]),
            f2(x["ack_to_webhook_ms"]["p50"]), f2(x["ack_to_webhook_ms"]["p99"]),
            f2(x["ack_to_webhook_ms"]["max"]), f2(x["ack_to_mqtt_ms"]["p50"]),
            f2(x["ack_to_mqtt_ms"]["p99"]), f2(x["ack_to_mqtt_ms"]["max"]),
            f2(x["sent_to_webhook_ms"]["p50"]), f2(x["sent_to_webhook_ms"]["p99"])))
    print("\n## rule evaluation throughput (%d rows, %d series, bench/loader 2 clients x 5000)"
          % (rows, o.series))
    print("| rules | rows/s | rule evaluations/s | batch ms p50 / p99 |")
    print("|---|---|---|---|")
    for nr in (0, o.rules):
        x = res["throughput_%d_rules" % nr]
        print("| %d | %.0f | %.0f | %.1f / %.1f |" % (nr, x["rows_per_s"], x["rule_evals_per_s"],
                                                   x["batch_ms_p50"], x["batch_ms_p99"]))
    print("\nwritten: %s/summary.json" % outdir)
    lost = [res[k]["probes"] - min(res[k]["webhook_received"], res[k]["mqtt_received"])
            for k in ("idle", "under_load")]
    return 1 if any(lost) else 0


if __name__ == "__main__":
    sys.exit(main())
