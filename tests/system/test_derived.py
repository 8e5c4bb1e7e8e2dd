#!/usr/bin/python3
"""Derived products on a real meshd: continuous aggregates, lineage, classification along
lineage, access policy (docs/derived.md).

The oracle for a continuous aggregate is a plain GROUP BY over its source through the same
query API: after in-order, late, out-of-order and rewritten rows, after a restart and after
kill -9, every bucket must match.
"""
import json
import os
import random
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node  # noqa: E402

MIN = 60 * 10**9
T0 = 1700000000 * 10**9 - (1700000000 * 10**9) % MIN

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
        classification: internal
        tags: [device-id]
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: temp
        logicalType: number
        classification: confidential
        tags: [PII]
      - name: load
        logicalType: integer
"""

ORACLE = """SELECT device, (ts - ((ts %% %(w)d) + %(w)d) %% %(w)d) AS b, count(*), max(ts),
  count(temp), min(temp), max(temp), sum(temp), avg(temp),
  count(load), min(load), max(load), sum(load), avg(load)
FROM factory.readings GROUP BY 1, 2 ORDER BY 1, 2"""

AGG = """SELECT device, bucket, rows, last_time, temp_count, temp_min, temp_max, temp_sum,
  temp_avg, load_count, load_min, load_max, load_sum, load_avg
FROM factory.readings_1m ORDER BY 1, 2"""


def meshctl(node, *args, check=True):
    env = dict(os.environ, MESHCTL_URL=node.url, MESHCTL_TOKEN=node.token)
    out = subprocess.run([meshlib.MESHCTL, "--url", node.url, "--token", node.token] +
                         list(args), capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError("meshctl %s -> %d: %s %s" % (args, out.returncode, out.stdout,
                                                          out.stderr))
    return out


class Derived(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(tls=False)
        cls.n.start()
        cls.n.create_domain("factory")
        cls.n.apply(SOURCE, expect=201)
        cls.rng = random.Random(7)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def write(self, rows):
        lines = []
        for dev, t, temp, load in rows:
            f = ["temp=%r" % temp] if temp is not None else []
            if load is not None:
                f.append("load=%di" % load)
            lines.append("readings,device=%s %s %d" % (dev, ",".join(f), t))
        st, _, body = self.n.write_lp("factory", "\n".join(lines))
        self.assertEqual(st, 204, body)

    def gen(self, n, start, late=False):
        rows = []
        for i in range(n):
            dev = "d%d" % self.rng.randrange(4)
            if late:
                t = T0 + self.rng.randrange(0, start - T0 + 1)
            else:
                t = start + i * 7 * 10**9 + self.rng.randrange(0, 5 * 10**9)
            temp = None if self.rng.random() < 0.1 else round(self.rng.uniform(-10, 90), 2)
            load = None if self.rng.random() < 0.1 else self.rng.randrange(-100, 1000)
            if temp is None and load is None:
                load = 0  # a line needs a field
            rows.append((dev, t, temp, load))
        return rows

    def check_same(self, label):
        want = self.n.rows(ORACLE % {"w": MIN})
        got = self.n.query(AGG, time_format="ns")["rows"]
        self.assertEqual(len(got), len(want), label)
        for g, w in zip(got, want):
            self.assertEqual(g[:5], w[:5], "%s: %s vs %s" % (label, g, w))
            for a, b in zip(g[5:], w[5:]):
                if a is None or b is None:
                    self.assertEqual(a, b, "%s: %s vs %s" % (label, g, w))
                else:
                    self.assertAlmostEqual(float(a), float(b), places=6,
                                           msg="%s: %s vs %s" % (label, g, w))
        return len(got)

    def test_1_aggregate(self):
        n = self.n
        # rows before the aggregate exists: the aggregate is built from them
        self.write(self.gen(200, T0))
        out = meshctl(n, "product", "derive", "factory.readings_1m", "--source", "readings",
                      "--bucket", "1m", "--column", "temp", "--column", "load", "--dry-run")
        self.assertIn("derivation", out.stdout)
        self.assertIn("temp_avg", out.stdout)
        meshctl(n, "product", "derive", "factory.readings_1m", "--source", "readings",
                "--bucket", "1m", "--column", "temp", "--column", "load",
                "--description", "per device and minute")
        self.assertGreater(self.check_same("after the build"), 10)
        # in order, then late and out of order, then rows written again (merge on the key)
        t = T0 + 200 * 7 * 10**9
        self.write(self.gen(300, t))
        self.check_same("in order")
        late = self.gen(150, t, late=True)
        self.rng.shuffle(late)
        self.write(late)
        self.check_same("late and out of order")
        again = [(d, ts, 1000.5, None) for d, ts, _, _ in late[:40]]
        self.write(again + [(d, ts, -1.0, 5) for d, ts, _, _ in late[40:50]] * 2)
        self.check_same("rewritten rows")
        # a row with no value for temp in a bucket of its own
        self.write([("d9", T0 + 3 * MIN, None, 3)])
        self.check_same("nulls")
        # restart, then kill -9 after more writes (late ones too)
        n.stop()
        n.start()
        self.check_same("after a restart")
        self.write(self.gen(100, t + 400 * 7 * 10**9))
        self.write(self.gen(60, t + 400 * 7 * 10**9, late=True))
        n.kill()
        n.start()
        self.check_same("after kill -9")
        self.write(self.gen(50, t + 900 * 7 * 10**9, late=True))
        self.check_same("writes after kill -9")
        # the aggregate is a product like any other: catalog, stats, pushdown
        st, doc = n.json("GET", "/v1/products/factory/readings_1m", expect=200)
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.readings_1m WHERE device = 'd1'"),
                         n.scalar("SELECT count(DISTINCT ts / %d) FROM factory.readings "
                                  "WHERE device = 'd1'" % MIN))
        # an erasure of a device's rows reaches the aggregate: its buckets go, the others stay
        before = n.scalar("SELECT count(*) FROM factory.readings_1m WHERE device <> 'd2'")
        self.assertGreater(n.scalar("SELECT count(*) FROM factory.readings_1m "
                                    "WHERE device = 'd2'"), 0)
        out = meshctl(n, "erase", "factory.readings", "--where", "device = 'd2'")
        self.assertIn("erased", out.stdout)
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.readings WHERE device = 'd2'"), 0)
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.readings_1m "
                                  "WHERE device = 'd2'"), 0)
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.readings_1m "
                                  "WHERE device <> 'd2'"), before)
        self.check_same("after an erasure")

    def test_2_refusals(self):
        n = self.n
        bad = {"aggregate": {"source": "readings", "bucket": "1m", "columns": ["device"]}}
        st, doc = n.json("POST", "/v1/derive/factory/x", bad)
        self.assertEqual(st, 400, doc)
        st, doc = n.json("POST", "/v1/derive/factory/x", "{not json")
        self.assertEqual(st, 400, doc)
        st, doc = n.json("POST", "/v1/derive/factory/x",
                         {"aggregate": {"source": "nope", "bucket": "1m", "columns": ["temp"]}})
        self.assertEqual(st, 404, doc)
        st, doc = n.json("POST", "/v1/derive/factory/x",
                         {"aggregate": {"source": "readings", "bucket": "1m",
                                        "groupBy": ["temp"], "columns": ["temp"]}})
        self.assertEqual(st, 400, doc)
        # a column named twice would make two output columns alike (found by fuzz_derive_request)
        st, doc = n.json("POST", "/v1/derive/factory/x",
                         {"aggregate": {"source": "readings", "bucket": "1m",
                                        "columns": ["temp", "temp"]}})
        self.assertEqual(st, 400, doc)
        self.assertIn("names temp twice", doc["error"]["message"])
        # a hand-written contract whose columns do not fit its derivation is refused
        st, doc = n.json("POST", "/v1/derive/factory/bad_agg",
                         {"aggregate": {"source": "readings", "bucket": "5m",
                                        "columns": ["temp"]}}, expect=200)
        y = doc["contract"].replace("temp_avg", "temp_mean")
        st, doc = n.apply(y)
        self.assertEqual(st, 400, doc)
        self.assertIn("temp_avg", json.dumps(doc))
        # nobody writes a derived product but meshd
        st, _, body = n.write_lp("factory", "readings_1m,device=d1 rows=5i %d" % T0)
        self.assertEqual(st, 403, body)
        # the source of an aggregate cannot be dropped under it
        st, doc = n.json("DELETE", "/v1/products/factory/readings")
        self.assertEqual(st, 409, doc)

    def test_3_lineage_and_classification(self):
        n = self.n
        st, doc = n.json("GET", "/v1/lineage/factory/readings_1m", expect=200)
        self.assertEqual(doc["upstream"], ["factory.readings"])
        self.assertEqual(doc["downstream"], [])
        cols = {c["name"]: c for c in doc["columns"]}
        self.assertEqual(cols["device"]["transformation"], "identity")
        self.assertEqual(cols["device"]["inputs"], ["factory.readings.device"])
        self.assertEqual(cols["temp_avg"]["transformation"], "aggregation")
        self.assertEqual(cols["temp_avg"]["inputs"], ["factory.readings.temp"])
        self.assertEqual(cols["temp_last"]["inputs"],
                         ["factory.readings.temp", "factory.readings.ts"])
        # PII flows into values of the column (min, max, last), not into aggregates
        self.assertEqual(cols["temp_max"]["inherited_tags"], ["PII"])
        self.assertEqual(cols["temp_max"]["inherited_classification"], "confidential")
        self.assertEqual(cols["temp_max"]["tags"], ["PII"])  # written by product derive
        self.assertEqual(cols["temp_max"]["missing_tags"], [])
        self.assertEqual(cols["temp_avg"]["inherited_tags"], [])
        self.assertIsNone(cols["temp_avg"]["inherited_classification"])
        self.assertEqual(cols["device"]["inherited_classification"], "internal")
        st, doc = n.json("GET", "/v1/lineage/factory/readings", expect=200)
        self.assertEqual(doc["downstream"], ["factory.readings_1m"])
        self.assertFalse(doc["derived"])
        out = meshctl(n, "lineage", "factory.readings").stdout
        self.assertIn("downstream:\n  `-- factory.readings_1m", out)
        out = meshctl(n, "lineage", "factory.readings_1m").stdout
        self.assertIn("upstream:\n  `-- factory.readings", out)
        self.assertIn("temp_max", out)
        self.assertIn("[inherits confidential, PII]", out)
        dot = meshctl(n, "lineage", "factory.readings_1m", "--format", "dot").stdout
        self.assertTrue(dot.startswith("digraph lineage {"), dot)
        self.assertIn('"factory.readings" -> "factory.readings_1m";', dot)
        out = meshctl(n, "lineage", "factory.nope", check=False)
        self.assertEqual(out.returncode, 3, out.stderr)

    def test_4_access_policy(self):
        n = self.n
        n.json("POST", "/v1/roles", {"name": "dash"}, expect=201)
        n.json("POST", "/v1/principals", {"name": "grafana", "kind": "service",
                                          "roles": ["dash"]}, expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "grafana"}, expect=201)[1]["token"]

        def q(sql):
            st, h, data = n.request("POST", "/v1/query", {"sql": sql}, token=tok)
            return st, json.loads(data)

        # deny by default: neither the aggregate nor its lineage
        st, doc = q("SELECT count(*) FROM factory.readings_1m")
        self.assertNotEqual(st, 200, doc)
        st, h, data = n.request("GET", "/v1/lineage/factory/readings_1m", token=tok)
        self.assertEqual(st, 403, data)
        # a grant on the aggregate alone: readable, its source stays closed, and the lineage
        # graph hides what the caller may not read
        n.json("POST", "/v1/grants", {"role": "dash", "action": "read", "domain": "factory",
                                      "product": "readings_1m",
                                      "columns": ["device", "bucket", "rows", "temp_avg"]},
               expect=201)
        st, doc = q("SELECT device, bucket, temp_avg FROM factory.readings_1m LIMIT 1")
        self.assertEqual(st, 200, doc)
        st, doc = q("SELECT temp_max FROM factory.readings_1m LIMIT 1")
        self.assertNotEqual(st, 200, doc)
        st, doc = q("SELECT count(*) FROM factory.readings")
        self.assertNotEqual(st, 200, doc)
        st, h, data = n.request("GET", "/v1/lineage/factory/readings_1m", token=tok)
        self.assertEqual(st, 200, data)
        doc = json.loads(data)
        self.assertEqual(doc["upstream"], [])
        self.assertEqual(doc["hidden"], 1)
        # a mask on the PII tag the aggregate inherited applies to it
        n.json("POST", "/v1/grants", {"role": "dash", "action": "read", "domain": "factory",
                                      "product": "readings_1m"}, expect=201)
        st, doc = n.json("POST", "/v1/masks", {"roles": ["dash"], "domain": "factory",
                                               "tag": "PII", "type": "MASK_NULL"})
        self.assertIn(st, (200, 201), doc)
        st, doc = q("SELECT temp_max, temp_avg FROM factory.readings_1m "
                    "WHERE temp_max IS NOT NULL LIMIT 1")
        self.assertEqual(st, 200, doc)
        st, doc = q("SELECT count(*) FROM factory.readings_1m WHERE temp_max IS NOT NULL")
        self.assertEqual(doc["rows"][0][0], 0, doc)
        st, doc = q("SELECT count(*) FROM factory.readings_1m WHERE temp_avg IS NOT NULL")
        self.assertGreater(doc["rows"][0][0], 0, doc)

    def test_5_erasure_rebuilds_only_its_buckets(self):
        """An erasure recomputes only the buckets that held erased rows: the other buckets
        stay as they were, including history the source no longer holds (retention deleted
        it: a whole rebuild would have lost it), and the recent range equals a fresh GROUP BY
        over the source."""
        n = self.n
        n.create_domain("plant")
        n.apply(SOURCE.replace("domain: factory", "domain: plant")
                .replace("urn:test:factory:readings", "urn:test:plant:readings"), expect=201)
        import time
        now = time.time_ns()
        now -= now % MIN
        old_t, new_t = now - 40 * 86400 * 10**9, now - 3600 * 10**9
        rows = []
        for base in (old_t, new_t):
            for m in range(6):  # six buckets per range, four devices, three rows each
                for dev in range(4):
                    for k in range(3):
                        rows.append(("d%d" % dev, base + m * MIN + k * 15 * 10**9,
                                     round(self.rng.uniform(0, 50), 2), k))
        lines = ["readings,device=%s temp=%r,load=%di %d" % (d, v, ld, t)
                 for d, t, v, ld in rows]
        st, _, body = n.write_lp("plant", "\n".join(lines))
        self.assertEqual(st, 204, body)
        meshctl(n, "product", "derive", "plant.readings_1m", "--source", "readings",
                "--bucket", "1m", "--column", "temp", "--column", "load")
        agg = AGG.replace("factory.", "plant.")
        self.assertEqual(len(n.query(agg, time_format="ns")["rows"]), 48)
        # retention deletes the old range from the source; the aggregate keeps it
        n.json("PUT", "/v1/governance/plant/readings", {"retention": "30d"}, expect=200)
        n.json("POST", "/v1/retention/run", {}, expect=200)
        self.assertEqual(n.scalar("SELECT count(*) FROM plant.readings WHERE ts < %d"
                                  % (now - 30 * 86400 * 10**9)), 0)
        before = {(r[0], r[1]): r for r in n.query(agg, time_format="ns")["rows"]}
        self.assertEqual(len(before), 48)
        # erase d1's rows of the recent range's buckets 1 (all of it) and 2 (its first row)
        lo, hi = new_t + MIN, new_t + 2 * MIN
        out = meshctl(n, "erase", "plant.readings", "--where",
                      "device = 'd1' AND ts >= %d AND ts <= %d" % (lo, hi))
        self.assertIn("erased", out.stdout)
        self.assertIn("derived plant.readings_1m: buckets of the erased rows recomputed",
                      out.stdout)
        after = {(r[0], r[1]): r for r in n.query(agg, time_format="ns")["rows"]}
        touched = {("d1", lo), ("d1", hi)}
        self.assertNotIn(("d1", lo), after)  # emptied: its row goes
        self.assertEqual(after[("d1", hi)][2], 2)  # rows: 3 - 1
        for k, r in before.items():
            if k not in touched:
                self.assertEqual(after.get(k), r, k)  # untouched, old history included
        self.assertEqual(len(after), 47)
        # the recent range equals a fresh GROUP BY over the source
        oracle = (ORACLE.replace("factory.", "plant.")
                  .replace("GROUP BY", "WHERE ts >= %d GROUP BY" % new_t)) % {"w": MIN}
        want = n.rows(oracle)
        got = [r for r in n.query(agg, time_format="ns")["rows"] if r[1] >= new_t]
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g[:5], w[:5])
            for a, b in zip(g[5:], w[5:]):
                if a is None or b is None:
                    self.assertEqual(a, b)
                else:
                    self.assertAlmostEqual(float(a), float(b), places=6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
