"""Data quality end to end on a real meshd: the ODCS quality rules of a contract (library
metrics and sql), completeness, validity and freshness against the contract's SLA, the score,
meshctl quality, /metrics, the catalog's min_quality, the scheduler, and the rules' bounds:
a sql rule may read only its own domain, and the node's measures ignore every user's masks."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, TOKEN, Node  # noqa: E402

NOW_S = int(time.time())

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:plant:readings
version: 1.0.0
status: active
domain: plant
slaProperties:
  - property: latency
    value: 1
    unit: h
  - property: frequency
    value: 2
    unit: d
schema:
  - name: readings
    customProperties:
      - property: onInvalid
        value: quarantine
    quality:
      - metric: rowCount
        mustBeGreaterThan: 3
      - id: unique_readings
        metric: duplicateValues
        arguments:
          properties: [device, ts]
        mustBe: 0
      - type: sql
        name: hot_devices
        query: "SELECT count(*) FROM {object} WHERE temp > 90"
        mustBeLessOrEqualTo: 1
      - type: text
        description: Readings are calibrated daily.
%(extra_rules)s    properties:
      - name: device
        logicalType: string
        required: true
        primaryKey: true
        quality:
          - metric: invalidValues
            arguments:
              pattern: "^m-[0-9]+$"
            mustBe: 0
      - name: ts
        logicalType: timestamp
        required: true
        primaryKey: true
      - name: temp
        logicalType: number
        logicalTypeOptions:
          maximum: 200
        quality:
          - metric: nullValues
            mustBeLessThan: 20
            unit: percent
          - name: temp_range
            type: sql
            query: "SELECT count(*) FROM {object} WHERE {property} < 0"
            mustBe: 0
      - name: status
        logicalType: string
        quality:
          - metric: missingValues
            arguments:
              missingValues: [null, '', 'n/a']
            mustBeLessOrEqualTo: 1
          - metric: invalidValues
            arguments:
              validValues: [ok, warn, fail]
            mustBeBetween: [0, 3]
"""

ROWS = [
    {"device": "m-1", "ts": NOW_S - 60, "temp": 20, "status": "ok"},
    {"device": "m-2", "ts": NOW_S - 50, "temp": 95, "status": "n/a"},
    {"device": "x-3", "ts": NOW_S - 40, "temp": None, "status": "bogus"},
    {"device": "m-4", "ts": NOW_S - 30, "temp": 300, "status": "ok"},  # quarantined: > 200
    {"device": "m-5", "ts": NOW_S - 20, "temp": 99, "status": ""},
]


def meshctl(node, *args):
    e = dict(os.environ)
    e.update({"XDG_CONFIG_HOME": "/nonexistent", "MESH_URL": node.url, "MESH_TOKEN": TOKEN})
    if node.scheme == "https":
        e["MESH_CACERT"] = node.cafile
    out = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=e,
                         timeout=120)
    return out.returncode, out.stdout, out.stderr


class QualityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(args=["--quality-interval", "0"])
        cls.n.start()
        n = cls.n
        n.create_domain("plant")
        n.create_domain("hr")
        n.apply(CONTRACT % {"extra_rules": ""}, expect=201)
        st, r = n.post_rows("plant", "readings", ROWS, query="?precision=s")
        assert st == 200 and r["accepted"] == 4 and r["quarantined"] == 1, r

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def run_quality(self, product="plant/readings"):
        st, rep = self.n.json("POST", "/v1/products/%s/quality/run" % product)
        self.assertEqual(st, 200, rep)
        return rep

    def test_rules_measured(self):
        rep = self.run_quality()
        rules = {r["name"]: r for r in rep["rules"]}
        # the text rule is kept in the contract but not run
        self.assertEqual(sorted(rules), sorted([
            "rowCount", "unique_readings", "hot_devices", "device.invalidValues",
            "temp.nullValues", "temp_range", "status.missingValues", "status.invalidValues"]))
        want = {  # name: (value, passed)
            "rowCount": (4, True),
            "unique_readings": (0, True),
            "hot_devices": (2, False),             # 95 and 99
            "device.invalidValues": (1, False),    # x-3
            "temp.nullValues": (25.0, False),      # 1 of 4 rows, in percent
            "temp_range": (0, True),
            "status.missingValues": (2, False),    # 'n/a' and ''
            "status.invalidValues": (3, True),     # n/a, bogus, '' (null is not invalid)
        }
        for name, (value, passed) in want.items():
            self.assertAlmostEqual(rules[name]["value"], value, msg=name)
            self.assertEqual(rules[name]["passed"], passed, name)
            self.assertNotIn("error", rules[name])
        self.assertEqual(rules["temp.nullValues"]["unit"], "percent")
        self.assertEqual(rules["status.invalidValues"]["threshold"], [0, 3])
        self.assertEqual((rep["rules_passed"], rep["rules_failed"]), (4, 4))
        # 4 rows x 4 columns, one NULL; 4 accepted of 5
        self.assertAlmostEqual(rep["completeness"], 15 / 16)
        self.assertAlmostEqual(rep["validity"], 0.8)
        self.assertEqual((rep["rows"], rep["quarantined"]), (4, 1))
        f = rep["freshness"]
        self.assertTrue(f["latency_ok"] and f["frequency_ok"], f)
        self.assertEqual((f["latency_s"], f["frequency_s"]), (3600, 172800))
        # the score: mean of rules 4/8, completeness, validity, freshness 1
        self.assertAlmostEqual(rep["score"], round(100 * (0.5 + 15 / 16 + 0.8 + 1) / 4, 1))

    def test_report_before_and_after(self):
        self.n.create_domain("fresh")
        self.n.apply(CONTRACT.replace("domain: plant", "domain: fresh")
                     .replace("urn:test:plant", "urn:test:fresh") % {"extra_rules": ""},
                     expect=201)
        st, rep = self.n.json("GET", "/v1/products/fresh/readings/quality")
        self.assertEqual(st, 200, rep)
        self.assertIsNone(rep["evaluated_at"])
        self.assertEqual(rep["rules"], [])
        # no rows yet: rowCount fails, freshness fails (never written)
        rep = self.run_quality("fresh/readings")
        rules = {r["name"]: r for r in rep["rules"]}
        self.assertFalse(rules["rowCount"]["passed"])
        self.assertFalse(rep["freshness"]["latency_ok"])
        self.assertIsNone(rep["completeness"])

    def test_old_rows_breach_latency(self):
        self.n.create_domain("stale")
        self.n.apply(CONTRACT.replace("domain: plant", "domain: stale")
                     .replace("urn:test:plant", "urn:test:stale") % {"extra_rules": ""},
                     expect=201)
        old = [{"device": "m-1", "ts": NOW_S - 3 * 3600, "temp": 1, "status": "ok"}]
        st, r = self.n.post_rows("stale", "readings", old, query="?precision=s")
        self.assertEqual(st, 200, r)
        rep = self.run_quality("stale/readings")
        self.assertFalse(rep["freshness"]["latency_ok"])      # 3 h > 1 h
        self.assertTrue(rep["freshness"]["frequency_ok"])     # 3 h < 2 d
        self.assertGreater(rep["freshness"]["age_s"], 3 * 3600 - 60)

    def test_sql_rule_stays_in_its_domain(self):
        n = self.n
        n.apply("""apiVersion: v3.1.0
kind: DataContract
id: urn:test:hr:staff
version: 1.0.0
status: active
domain: hr
schema:
  - name: staff
    properties:
      - name: id
        logicalType: integer
        primaryKey: true
      - name: salary
        logicalType: number
""", expect=201)
        n.post_rows("hr", "staff", [{"id": 1, "salary": 123456}])
        rule = """      - type: sql
        name: peek
        query: "SELECT max(salary) FROM hr.staff"
        mustBe: 0
      - type: sql
        name: not_a_number
        query: "SELECT 'x' FROM {object}"
        mustBe: 0
      - type: sql
        name: audit_peek
        query: "SELECT count(*) FROM system.audit"
        mustBe: 0
"""
        n.apply((CONTRACT % {"extra_rules": rule}).replace("version: 1.0.0", "version: 1.1.0"),
                expect=200)
        st, d = n.json("GET", "/v1/products/plant/readings/diff?from=1.0.0&to=1.1.0")
        self.assertEqual(st, 200, d)
        self.assertFalse(d["breaking"])
        self.assertIn("quality rule peek: added", [c["change"] for c in d["changes"]])
        rep = self.run_quality()
        rules = {r["name"]: r for r in rep["rules"]}
        for name in ("peek", "audit_peek"):
            self.assertFalse(rules[name]["passed"])
            self.assertIn("only the products of its own domain", rules[name]["error"])
            self.assertNotIn("value", rules[name])
        self.assertNotIn("123456", json.dumps(rep))
        self.assertIn("not a number", rules["not_a_number"]["error"])
        # the other rules still run
        self.assertTrue(rules["rowCount"]["passed"])

    def test_masks_do_not_change_measures(self):
        n = self.n
        # a mask for everyone on status: users see NULL, the node's measure does not
        st, m = n.json("POST", "/v1/masks", {"domain": "plant", "product": "readings",
                                            "column": "status", "type": "MASK_NULL",
                                            "roles": ["*"]})
        self.assertEqual(st, 201, m)
        try:
            self.assertEqual(n.rows("SELECT count(status) FROM plant.readings"), [[0]])
            rep = self.run_quality()
            rules = {r["name"]: r for r in rep["rules"]}
            self.assertEqual(rules["status.missingValues"]["value"], 2)
        finally:
            n.json("DELETE", "/v1/masks/%d" % m["id"], expect=204)

    def test_meshctl_quality(self):
        self.run_quality()
        rc, out, err = meshctl(self.n, "quality", "plant.readings")
        self.assertEqual(rc, 0, err)
        self.assertIn("score", out)
        self.assertIn("/ 100", out)
        self.assertIn("hot_devices", out)
        self.assertIn("FAIL", out)
        self.assertIn("<= 1", out)
        self.assertIn("25 %", out)
        rc, out, err = meshctl(self.n, "quality", "plant.readings", "--run", "--format", "json")
        self.assertEqual(rc, 0, err)
        self.assertIn("rules", json.loads(out))
        rc, out, err = meshctl(self.n, "quality", "plant.readings", "--format", "csv")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("RULE,COLUMN,VALUE,EXPECTED,RESULT") or
                        out.lower().startswith("rule,column,value,expected,result"), out)
        rc, out, err = meshctl(self.n, "quality", "plant.nothing")
        self.assertEqual(rc, 3, err)
        # the product's page shows its quality at a glance
        rc, out, err = meshctl(self.n, "product", "show", "plant.readings")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"quality +[0-9.]+ / 100 \(4 rules passed, 4 failed")
        self.assertIn("within the contract's SLA", out)
        st, p = self.n.json("GET", "/v1/products/plant/readings")
        self.assertEqual(p["quality"]["rules_failed"], 4)

    def test_metrics_and_catalog(self):
        rep = self.run_quality()
        st, h, data = self.n.request("GET", "/metrics")
        text = data.decode()
        self.assertIn('meshd_quality_score{domain="plant",product="readings"}', text)
        self.assertIn('meshd_quality_rule_passed{domain="plant",product="readings",'
                      'rule="hot_devices"} 0', text)
        self.assertIn('meshd_quality_rule_passed{domain="plant",product="readings",'
                      'rule="rowCount"} 1', text)
        st, cat = self.n.json("GET", "/v1/catalog?domain=plant")
        self.assertEqual(cat["products"][0]["quality_score"], rep["score"])
        st, cat = self.n.json("GET", "/v1/catalog?domain=plant&min_quality=%g" %
                              (rep["score"] + 1))
        self.assertEqual(cat["count"], 0)
        st, cat = self.n.json("GET", "/v1/catalog?domain=plant&min_quality=%g" %
                              (rep["score"] - 1))
        self.assertEqual(cat["count"], 1)
        self.assertEqual(self.n.request("GET", "/v1/catalog?min_quality=abc")[0], 400)

    def test_access(self):
        n = self.n
        n.json("POST", "/v1/principals", {"name": "qreader", "kind": "service",
                                          "roles": ["reader"]}, expect=201)
        st, tok = n.json("POST", "/v1/tokens", {"principal": "qreader"})
        self.assertEqual(st, 201, tok)
        t = tok["token"]
        self.assertEqual(n.request("GET", "/v1/products/plant/readings/quality", token=t)[0], 200)
        # running the measures needs admin on the product
        self.assertEqual(n.request("POST", "/v1/products/plant/readings/quality/run",
                                   token=t)[0], 403)
        self.assertEqual(n.request("GET", "/v1/products/plant/nothing/quality")[0], 404)


class QuarantineTest(unittest.TestCase):
    def test_resubmit_and_drop_survive_kill(self):
        n = Node(args=["--quality-interval", "0"])
        n.start()
        try:
            n.create_domain("plant")
            n.apply(CONTRACT % {"extra_rules": ""}, expect=201)
            bad = [{"device": "m-%d" % i, "ts": NOW_S - i, "temp": 300 + i, "status": "ok"}
                   for i in range(1, 5)]
            st, r = n.post_rows("plant", "readings", bad, query="?precision=s")
            self.assertEqual((st, r["accepted"], r["quarantined"]), (200, 0, 4), r)
            st, q = n.json("GET", "/v1/products/plant/readings/quarantine")
            ids = sorted(row["id"] for row in q["rows"])
            base = "/v1/products/plant/readings/quarantine/"
            # as kept: still invalid, refused (not quarantined again), nothing changes
            st, e = n.json("POST", base + "%d/resubmit" % ids[0])
            self.assertEqual(st, 400, e)
            self.assertEqual(e["error"]["code"], "VALIDATION")
            # fixed: written once, even when retried, and gone from the quarantine
            fixed = {"device": "m-1", "ts": NOW_S - 1, "temp": 30, "status": "ok"}
            st, h, data = n.request("POST", base + "%d/resubmit" % ids[0],
                                    json.dumps(fixed).encode(),
                                    headers={"Content-Type": "application/json"})
            self.assertEqual(st, 200, data)
            res = json.loads(data)
            self.assertEqual((res["accepted"], res["dropped"]), (1, 1))
            st, h, data = n.request("POST", base + "%d/resubmit" % ids[0],
                                    json.dumps(fixed).encode())
            self.assertEqual(st, 404, data)
            # drop one, then a list with a missing id
            self.assertEqual(n.json("DELETE", base + "%d" % ids[1])[0], 200)
            self.assertEqual(n.json("DELETE", base + "%d" % ids[1])[0], 404)
            st, d = n.json("POST", base + "drop", {"ids": [ids[1], ids[2]]})
            self.assertEqual((st, d["dropped"]), (200, 1), d)
            for body in ({}, {"ids": [0]}, {"ids": "1"}, {"all": True, "ids": [1]},
                         {"all": "yes"}, {"frob": 1}):
                self.assertEqual(n.json("POST", base + "drop", body)[0], 400, body)
            n.kill()  # kill -9: the drops and the write were acknowledged, so they stay
            n.start()
            self.assertEqual(n.rows("SELECT device, temp FROM plant.readings"), [["m-1", 30.0]])
            st, q = n.json("GET", "/v1/products/plant/readings/quarantine")
            self.assertEqual([row["id"] for row in q["rows"]], [ids[3]])
            st, p = n.json("GET", "/v1/products/plant/readings")
            self.assertEqual((p["rows"], p["quarantined"]), (1, 1))
            st, d = n.json("POST", base + "drop", {"all": True})
            self.assertEqual(d["dropped"], 1)
            st, recs = n.json("GET", "/v1/audit?action=admin.quarantine&limit=100")
            self.assertGreaterEqual(len(recs["records"]), 4)
        finally:
            n.destroy()


class SchedulerTest(unittest.TestCase):
    def test_scheduled_evaluation(self):
        n = Node(args=["--quality-interval", "1s"])
        n.start()
        try:
            n.create_domain("plant")
            n.apply(CONTRACT % {"extra_rules": ""}, expect=201)
            n.post_rows("plant", "readings", ROWS, query="?precision=s")
            deadline = time.time() + 60
            rep = None
            while time.time() < deadline:
                st, rep = n.json("GET", "/v1/products/plant/readings/quality")
                if rep.get("rows_measured") == 4:
                    break
                time.sleep(0.2)
            self.assertEqual(rep.get("rows_measured"), 4, rep)
            self.assertEqual(len(rep["rules"]), 8)
        finally:
            n.destroy()


if __name__ == "__main__":
    unittest.main(verbosity=2)
