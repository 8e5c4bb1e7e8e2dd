"""Monitoring: /metrics of a real meshd covers what docs/operations.md lists, the series move
with real work, and every metric that the Grafana dashboard (deploy/grafana/meshd.json) and
the Prometheus rules (deploy/prometheus/meshd-alerts.yaml) use is one meshd exports.

The node joins a mesh whose NATS server is not there (so the mesh link's metrics are exported
while it keeps trying) and has the built-in health alerts on. The rules are checked with
promtool (Debian's prometheus package, installed by scripts/setup.sh) when it is present."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import SRC, Node, free_port, wait_for  # noqa: E402

DASHBOARD = os.path.join(SRC, "deploy", "grafana", "meshd.json")
RULES = os.path.join(SRC, "deploy", "prometheus", "meshd-alerts.yaml")
PROMTOOL = shutil.which("promtool")

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:plant:readings
version: 1.0.0
status: active
domain: plant
slaProperties:
  - {property: latency, value: 1, unit: h}
schema:
  - name: readings
    customProperties:
      - {property: timeColumn, value: time}
      - {property: onInvalid, value: quarantine}
    properties:
      - {name: device, logicalType: string, primaryKey: true, primaryKeyPosition: 1}
      - {name: time, logicalType: timestamp, primaryKey: true, primaryKeyPosition: 2}
      - name: value
        logicalType: number
        logicalTypeOptions: {minimum: 0, maximum: 100}
  - name: events
    customProperties:
      - {property: onInvalid, value: reject}
    properties:
      - {name: id, logicalType: integer, primaryKey: true, primaryKeyPosition: 1}
      - {name: level, logicalType: integer, logicalTypeOptions: {minimum: 0, maximum: 9}}
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
# PromQL words that look like metric names but are not
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "time", "max", "min",
                "avg", "count", "changes", "and", "or", "unless", "without", "le", "on",
                "ignoring", "group_left", "group_right", "label_values", "humanize1024",
                "offset", "bool", "up", "instance", "job", "domain", "product", "rule",
                "endpoint", "code", "event", "value", "labels"}


def parse(text):
    """{(name, labels-text): value} of an exposition, and the set of names."""
    series, names = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        series[(m.group(1), m.group(2) or "")] = float(m.group(3))
        names.add(m.group(1))
    return series, names


def total(series, name, **labels):
    """Sum of the samples of a metric whose labels include the given ones."""
    want = ['%s="%s"' % kv for kv in labels.items()]
    return sum(v for (n, lab), v in series.items()
               if n == name and all(w in lab for w in want))


def metric_names(expr):
    """The metric names a PromQL expression reads (meshd_* and process_*)."""
    expr = re.sub(r'"[^"]*"', '""', expr)         # label values
    expr = re.sub(r'\[[^\]]*\]', '', expr)         # ranges
    words = set(re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', expr))
    return {w for w in words if w.startswith(("meshd_", "process_"))}


def exported(name, names):
    if name in names:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in names:
            return True
    return False


class MonitoringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(args=["--health-domain", "health", "--health-interval", "1s",
                              "--mesh", "nats://127.0.0.1:%d" % free_port(),
                              "--node-name", "mon1"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy()

    def scrape(self):
        st, h, body = self.node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        return body.decode()

    def test_series_exist_and_move(self):
        n = self.node
        before, _ = parse(self.scrape())
        n.create_domain("plant")
        n.apply(CONTRACT, expect=201)
        now = int(time.time())
        rows = [{"device": "d%d" % i, "time": now, "value": 10 * i} for i in range(5)]
        rows.append({"device": "bad", "time": now, "value": 500})  # quarantined
        st, r = n.post_rows("plant", "readings", rows)
        self.assertEqual(st, 200, r)
        st, r = n.post_rows("plant", "events", [{"id": 1, "level": 3}, {"id": 2, "level": 99}])
        self.assertEqual(st, 400, r)  # refused as a whole
        self.assertEqual(len(n.rows("SELECT * FROM plant.readings")), 5)
        st, _, _ = n.request("GET", "/v1/domains", token="no-such-token-0123456789abcdef")
        self.assertEqual(st, 401)
        # the health tick writes its samples and quality has a score to show
        self.assertTrue(wait_for(lambda: n.scalar("SELECT count(*) FROM health.disk") > 0,
                                 timeout=30))
        text = self.scrape()
        after, names = parse(text)
        p = {"domain": "plant", "product": "readings"}
        moved = {
            "meshd_ingest_rows_total": total(after, "meshd_ingest_rows_total", **p) -
            total(before, "meshd_ingest_rows_total", **p),
            "meshd_ingest_rows_quarantined_total":
                total(after, "meshd_ingest_rows_quarantined_total", **p),
            "meshd_ingest_rows_refused_total": total(
                after, "meshd_ingest_rows_refused_total", domain="plant", product="events"),
            "meshd_ingest_batches_total": total(after, "meshd_ingest_batches_total", **p),
            "meshd_ingest_bytes_total": total(after, "meshd_ingest_bytes_total", **p),
            "meshd_ingest_write_duration_seconds_count":
                total(after, "meshd_ingest_write_duration_seconds_count") -
                total(before, "meshd_ingest_write_duration_seconds_count"),
            "meshd_queries_total": total(after, "meshd_queries_total") -
            total(before, "meshd_queries_total"),
            "meshd_query_rows_total": total(after, "meshd_query_rows_total") -
            total(before, "meshd_query_rows_total"),
            "meshd_query_duration_seconds_count":
                total(after, "meshd_query_duration_seconds_count") -
                total(before, "meshd_query_duration_seconds_count"),
            "meshd_audit_seq": total(after, "meshd_audit_seq") - total(before, "meshd_audit_seq"),
            "meshd_auth_failures_total": total(after, "meshd_auth_failures_total") -
            total(before, "meshd_auth_failures_total"),
            "meshd_domain_db_bytes": total(after, "meshd_domain_db_bytes", domain="plant"),
            "meshd_product_last_write_seconds":
                total(after, "meshd_product_last_write_seconds", **p),
            "meshd_quality_freshness_ok": total(after, "meshd_quality_freshness_ok", **p),
            "meshd_quality_score": total(after, "meshd_quality_score", **p),
            "process_resident_memory_bytes": total(after, "process_resident_memory_bytes"),
            "process_cpu_seconds_total": total(after, "process_cpu_seconds_total"),
            "process_open_fds": total(after, "process_open_fds"),
            "meshd_disk_free_bytes": total(after, "meshd_disk_free_bytes"),
        }
        for name, v in moved.items():
            self.assertGreater(v, 0, "%s did not move (%s)" % (name, v))
        self.assertEqual(moved["meshd_ingest_rows_total"], 5)
        self.assertEqual(moved["meshd_ingest_rows_quarantined_total"], 1)
        self.assertEqual(moved["meshd_ingest_rows_refused_total"], 2)
        self.assertGreaterEqual(moved["meshd_ingest_bytes_total"], len(json.dumps(rows)) - 10)
        for name in ("meshd_domain_wal_bytes", "meshd_query_timeouts_total",
                     "meshd_query_failures_total", "meshd_rule_firing", "meshd_rule_series",
                     "meshd_actions_delivered_total", "meshd_actions_failed_total",
                     "meshd_alert_events_total", "meshd_audit_lost_total",
                     "meshd_mesh_connected", "process_max_fds"):
            self.assertIn(name, names)
        # the health domain's rules are exported like any rule's
        self.assertIn(("meshd_rule_firing", '{domain="health",rule="disk-space-low"}'), after)
        if PROMTOOL:  # the exposition passes Prometheus' own parser
            out = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                                 capture_output=True, text=True)
            errors = [line for line in (out.stdout + out.stderr).splitlines()
                      if "error" in line.lower()]
            self.assertEqual(errors, [], out.stdout + out.stderr)

    def test_dashboard_uses_exported_metrics(self):
        with open(DASHBOARD) as f:
            d = json.load(f)
        self.assertEqual(d["uid"], "meshd-overview")
        _, names = parse(self.scrape())
        exprs = []

        def walk(panels):
            for p in panels:
                walk(p.get("panels", []))
                for t in p.get("targets", []):
                    exprs.append(t["expr"])
        walk(d["panels"])
        self.assertGreater(len(exprs), 30)
        used = set()
        for e in exprs:
            used |= metric_names(e)
        missing = sorted(m for m in used if not exported(m, names))
        self.assertEqual(missing, [], "the dashboard reads metrics meshd does not export")
        # every panel has a unique id and a place on the grid
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertTrue(all("gridPos" in p for p in d["panels"]))

    def test_alert_rules(self):
        import yaml  # python3-yaml (scripts/setup.sh)
        with open(RULES) as f:
            doc = yaml.safe_load(f)
        _, names = parse(self.scrape())
        rules = [r for g in doc["groups"] for r in g["rules"]]
        self.assertGreater(len(rules), 10)
        with open(os.path.join(SRC, "docs", "operations.md")) as f:
            ops = f.read().lower().replace(" ", "-")
        for r in rules:
            self.assertIn("alert", r)
            self.assertIn(r["labels"]["severity"], ("info", "warning", "critical"))
            missing = sorted(m for m in metric_names(r["expr"]) if not exported(m, names))
            self.assertEqual(missing, [], "%s reads metrics meshd does not export" % r["alert"])
            anchor = r["annotations"]["runbook"].split("#", 1)[1]
            self.assertTrue("#-" + anchor in ops, "%s: no runbook section %s" % (r["alert"], anchor))
        if not PROMTOOL:
            print("promtool not installed (scripts/setup.sh installs prometheus): "
                  "rules checked for structure and metric names only")
            return
        out = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
