"""The smart factory, end to end (examples/factory/run.sh runs this).

1000 sensor nodes (50 machines x 20 nodes of Plant A) publish their readings over MQTT, each
on its own topic factory/plant-a/LINE/MACHINE/SENSOR/telemetry; the topic levels become the
columns site, line, machine and sensor of factory-a.telemetry. A failing bearing is injected
on one machine; the rule vibration-anomaly (a rolling z-score per sensor node) alerts it with
the machine's id, through a signed webhook and the domain's alerts product, and no other
machine is alerted.

The readings come from `meshctl generate factory` (deterministic from --seed), with times
ending now. A node publishes --batch readings per message (a node buffering a few seconds);
the devices publish as fast as meshd acknowledges, so the run takes less time than the
readings span: the rules work on the rows' own times.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import edge  # noqa: E402


class Factory(edge.Scenario):
    def add_args(self, ap):
        ap.add_argument("--machines", type=int, default=50, help="machines (default 50)")
        ap.add_argument("--sensors", type=int, default=20,
                        help="sensor nodes per machine (default 20)")
        ap.add_argument("--seconds", type=int, default=60,
                        help="seconds of readings (default 60; the bearing fails 20 s "
                        "before the end)")
        ap.add_argument("--batch", type=int, default=5,
                        help="readings per MQTT message (default 5)")
        ap.add_argument("--machine", default="M017",
                        help="the machine whose bearing fails (default M017)")
        ap.add_argument("--seed", type=int, default=1)


def main():
    s = Factory("factory")
    o = s.opts
    check = s.check
    if o.seconds < 45:
        sys.exit("--seconds: at least 45 (the baseline needs 20 readings before the anomaly)")
    # ---- the readings ---------------------------------------------------------------------
    start = int(time.time()) - o.seconds
    start_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    onset = o.seconds - 20
    gen = subprocess.run(
        [os.path.join(s.build, "meshctl"), "generate", "factory", "--machines", str(o.machines),
         "--sensors", str(o.sensors), "--duration", "%ds" % o.seconds, "--start", start_iso,
         "--seed", str(o.seed), "--anomaly", "%s@+%ds/20s" % (o.machine, onset)],
        check=True, capture_output=True, text=True).stdout.splitlines()
    # "telemetry,site=..,line=..,machine=..,sensor=.. FIELDS TS" -> one topic per node, the
    # tags in the topic, "telemetry FIELDS TS" in the payload
    per_node = {}
    statuses = {}
    for line in gen:
        head, rest = line.split(" ", 1)
        tags = dict(kv.split("=", 1) for kv in head.split(",")[1:])
        topic = "factory/%(site)s/%(line)s/%(machine)s/%(sensor)s/telemetry" % tags
        per_node.setdefault(topic, []).append("telemetry " + rest)
        status = rest.split('status="', 1)[1].split('"', 1)[0]
        statuses.setdefault(tags["machine"], set()).add(status)
    nodes = len(per_node)
    check("%d sensor nodes, %d readings each" % (nodes, o.seconds),
          nodes == o.machines * o.sensors
          and all(len(v) == o.seconds for v in per_node.values()))
    others_ok = all(st == {"ok"} for m, st in statuses.items() if m != o.machine)
    check("the generator gave the other machines no warning episode (status ok only)",
          others_ok, {m: st for m, st in statuses.items() if st != {"ok"}})

    # ---- broker, node, receiver -------------------------------------------------------------
    port = s.broker()
    s.meshd(["--mqtt-url", "mqtt://127.0.0.1:%d" % port])
    hook = s.webhook()
    s.setup_domain("factory-a", "factory")
    s.rule("factory", "vibration-anomaly", hook)
    s.mapping("telemetry", "factory/{site}/{line}/{machine}/{sensor}/telemetry", "factory-a",
              "telemetry", "lineprotocol")
    s.mqtt_ready()

    # ---- 1000 nodes publish -----------------------------------------------------------------
    msgs = []
    for k in range(0, o.seconds, o.batch):  # in time order: every node's first batch, ...
        for topic, lines in per_node.items():
            msgs.append((topic, "\n".join(lines[k:k + o.batch])))
    pub = s.mqtt("factory-sensors")
    t0 = time.monotonic()
    check("%d messages published at QoS 1 and acknowledged by the broker" % len(msgs),
          edge.publish_all(pub, msgs))
    check("meshd stored every message",
          edge.wait_for(lambda: s.stored("telemetry") >= len(msgs), 300),
          s.stored("telemetry"))
    took = time.monotonic() - t0
    rows = s.scalar('SELECT count(*) FROM "factory-a".telemetry')
    check("telemetry holds every reading (%d rows in %.1f s)" % (rows, took),
          rows == nodes * o.seconds, rows)

    # ---- the anomaly is alerted, with the machine's id -----------------------------------------
    def fired():
        return hook.events("vibration-anomaly", "fired")
    edge.wait_for(lambda: len(fired()) >= o.sensors, 60)
    machines = sorted({p["series"]["machine"] for p in fired()})
    check("vibration-anomaly fired for %s only" % o.machine, machines == [o.machine], machines)
    check("on each of its %d sensor nodes, once" % o.sensors,
          sorted(p["series"]["sensor"] for p in fired())
          == ["S%02d" % (i + 1) for i in range(o.sensors)], len(fired()))
    f = fired()
    if f:
        p = f[0]
        check("the webhook names the machine, the rule and the anomalous value",
              p["row"]["machine"] == o.machine and p["rule"]["kind"] == "anomaly"
              and p["sample"] >= 14 and p["value"] >= 10, p)
        check("it fired at the bearing's failure (row time)",
              p["time_ns"] // 10**9 == start + onset, (p["time"], start + onset))
    check("every webhook request was signed correctly", hook.bad_sig == 0, hook.bad_sig)
    alerts = s.query("SELECT series, state FROM \"factory-a\".alerts "
                     "WHERE rule = 'vibration-anomaly'")
    check("the alerts product has the %d alerts of %s, none of another machine"
          % (o.sensors, o.machine),
          len(alerts) == o.sensors and all(o.machine in a["series"] for a in alerts),
          alerts[:3])
    for a in s.query("SELECT rule, count(*) AS n FROM \"factory-a\".alerts GROUP BY rule"):
        print("# alerts of %s: %d" % (a["rule"], a["n"]))
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
