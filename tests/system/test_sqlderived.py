#!/usr/bin/python3
"""Derived products defined by SQL on a real meshd (docs/derived.md, decision 0031):
materialisation equal to the query run directly, lineage (API, text tree, DOT),
classification along lineage, refresh after writes, kill -9 during refreshes, a revoked
definer, erasure upstream, and refused definitions.
"""
import json
import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node  # noqa: E402

SEC = 10**9
K = 100  # rows of factory.big per reading: a refresh that takes a while
T0 = 1700000000 * SEC

CONTRACTS = """apiVersion: v3.0.2
kind: DataContract
id: urn:test:factory:base
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
        classification: confidential
        tags: [PII]
      - name: load
        logicalType: integer
  - name: devices
    logicalType: object
    properties:
      - name: device
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: site
        logicalType: string
      - name: owner_email
        logicalType: string
        classification: restricted
        tags: [PII, email]
"""

STATS = ("SELECT d.site AS site, count(*) AS n, avg(r.temp) AS temp_avg, max(r.temp) AS temp_max "
         "FROM factory.readings r JOIN factory.devices d ON d.device = r.device "
         "WHERE r.load > 0 GROUP BY d.site")
PASS = ("SELECT r.device AS device, r.ts AS ts, r.temp AS temp, d.owner_email AS owner_email, "
        "mask_hash(d.owner_email) AS owner_hash FROM factory.readings r "
        "JOIN factory.devices d ON d.device = r.device")


def ts_ns(v):
    """A timestamp of a query result (ISO text or ns) in ns."""
    if isinstance(v, int):
        return v
    import datetime
    frac = 0
    if "." in v:
        v, f = v.rstrip("Z").split(".")
        frac = int((f + "000000000")[:9])
        v += "Z"
    dt = datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * SEC + frac


def meshctl(node, *args, check=True, token=None):
    tok = token or node.token
    env = dict(os.environ, MESHCTL_URL=node.url, MESHCTL_TOKEN=tok)
    out = subprocess.run([meshlib.MESHCTL, "--url", node.url, "--token", tok] + list(args),
                         capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise AssertionError("meshctl %s -> %d: %s %s" % (args, out.returncode, out.stdout,
                                                          out.stderr))
    return out


class SqlDerived(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(tls=False)
        cls.n.start()
        cls.n.create_domain("factory")
        cls.n.apply(CONTRACTS, expect=201)
        cls.rng = random.Random(11)
        st, doc = cls.n.post_rows("factory", "devices", [
            {"device": "d%d" % i, "site": "s%d" % (i % 2), "owner_email": "o%d@x.org" % i}
            for i in range(4)])
        assert st == 200, doc
        cls.t = T0
        cls.write(cls, 200)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def write(self, count):
        lines = []
        for _ in range(count):
            self.t += self.rng.randrange(1, 5) * SEC
            lines.append("readings,device=d%d temp=%r,load=%di %d" % (
                self.rng.randrange(4), round(self.rng.uniform(-5, 80), 2),
                self.rng.randrange(-20, 100), self.t))
        st, _, body = self.n.write_lp("factory", "\n".join(lines))
        assert st == 204, body

    def same(self, derived, sql, order):
        got = self.n.query("SELECT * FROM factory.%s ORDER BY %s" % (derived, order),
                           time_format="ns")["rows"]
        want = self.n.query("SELECT * FROM (%s) ORDER BY %s" % (sql, order),
                            time_format="ns")["rows"]
        return got == want, got, want

    def lineage(self, product):
        return self.n.json("GET", "/v1/lineage/factory/" + product, expect=200)[1]

    def test_1_join_aggregate_materialised(self):
        out = meshctl(self.n, "product", "derive", "factory.site_stats", "--sql", STATS,
                      "--refresh", "1s")
        self.assertIn("derived by SQL", out.stdout)
        ok, got, want = self.same("site_stats", STATS, "site")
        self.assertTrue(ok, (got, want))
        self.assertEqual(len(got), 2)
        # types from the query: count integer, avg number, site string
        st, _, y = self.n.request("GET", "/v1/products/factory/site_stats/contract")
        self.assertEqual(st, 200)
        y = y.decode() if isinstance(y, bytes) else y
        for col, typ in (("site", "string"), ("n", "integer"), ("temp_avg", "number"),
                         ("temp_max", "number")):
            self.assertRegex(y, r'name: "?%s"?\n\s+logicalType: %s\n' % (col, typ))
        self.assertRegex(y, r'definer: "?admin"?\n')
        self.assertIn("sql: ", y)
        # refresh after writes
        self.write(50)
        self.assertTrue(meshlib.wait_for(lambda: self.same("site_stats", STATS, "site")[0],
                                         timeout=10))
        # its inputs cannot be dropped under it
        st, doc = self.n.json("DELETE", "/v1/products/factory/devices")
        self.assertEqual(st, 409, doc)
        self.assertIn("site_stats", doc["error"]["message"])
        # nobody writes it but meshd
        st, _ = self.n.post_rows("factory", "site_stats", [{"site": "x", "n": 1}])
        self.assertEqual(st, 403)

    def test_2_lineage_and_classification(self):
        out = meshctl(self.n, "product", "derive", "factory.passthru", "--sql", PASS)
        ok, got, want = self.same("passthru", PASS, "device, ts")
        self.assertTrue(ok)
        if not self.lineage("site_stats").get("columns"):
            meshctl(self.n, "product", "derive", "factory.site_stats", "--sql", STATS,
                    "--refresh", "1s")
        doc = self.lineage("site_stats")
        self.assertEqual(sorted(doc["upstream"]), ["factory.devices", "factory.readings"])
        self.assertTrue(doc["column_level"])
        cols = {c["name"]: c for c in doc["columns"]}
        self.assertEqual(cols["site"]["transformation"], "identity")
        self.assertEqual(cols["site"]["inputs"], ["factory.devices.site"])
        self.assertEqual(cols["n"]["transformation"], "aggregation")
        self.assertEqual(cols["temp_avg"]["transformation"], "aggregation")
        self.assertEqual(cols["temp_avg"]["inputs"], ["factory.readings.temp"])
        self.assertEqual(cols["temp_max"]["transformation"], "transformation")
        self.assertEqual(cols["temp_max"]["inputs"], ["factory.readings.temp"])
        # a value-preserving column inherits; aggregates do not
        self.assertEqual(cols["temp_max"]["tags"], ["PII"])
        self.assertEqual(cols["temp_max"]["classification"], "confidential")
        self.assertEqual(cols["temp_avg"]["tags"], [])
        self.assertIsNone(cols["temp_avg"]["classification"])
        self.assertEqual(cols["n"]["tags"], [])
        self.assertEqual(doc["definition"]["definer"], "admin")
        # pass-through: PII stays PII, the hashed copy is not
        cols = {c["name"]: c for c in self.lineage("passthru")["columns"]}
        self.assertEqual(cols["owner_email"]["transformation"], "identity")
        self.assertEqual(sorted(cols["owner_email"]["tags"]), ["PII", "email"])
        self.assertEqual(cols["owner_email"]["classification"], "restricted")
        self.assertEqual(cols["temp"]["tags"], ["PII"])
        self.assertEqual(cols["owner_hash"]["transformation"], "masking")
        self.assertEqual(cols["owner_hash"]["tags"], [])
        self.assertEqual(cols["owner_hash"]["inputs"], ["factory.devices.owner_email"])
        # over a rollup view: its columns lead to the product's, min and max keep what they
        # show, averages and counts do not
        hourly = ("SELECT device, bucket, rows, temp_avg, temp_max FROM "
                  "factory.readings__agg('1h')")
        meshctl(self.n, "product", "derive", "factory.hourly", "--sql", hourly)
        ok, got, want = self.same("hourly", hourly, "device, bucket")
        self.assertTrue(ok and got, (got, want))
        doc = self.lineage("hourly")
        self.assertEqual(doc["upstream"], ["factory.readings"])
        cols = {c["name"]: c for c in doc["columns"]}
        self.assertEqual(cols["device"]["inputs"], ["factory.readings.device"])
        self.assertEqual(cols["bucket"]["inputs"], ["factory.readings.ts"])
        self.assertEqual(cols["rows"]["transformation"], "aggregation")
        self.assertEqual(cols["temp_avg"]["inputs"], ["factory.readings.temp"])
        self.assertEqual(cols["temp_avg"]["transformation"], "aggregation")
        self.assertEqual(cols["temp_avg"]["tags"], [])
        self.assertEqual(cols["temp_max"]["inputs"], ["factory.readings.temp"])
        self.assertEqual(cols["temp_max"]["transformation"], "transformation")
        self.assertEqual(cols["temp_max"]["tags"], ["PII"])
        self.assertEqual(cols["temp_max"]["classification"], "confidential")
        # downstream of a source
        doc = self.lineage("readings")
        self.assertIn("factory.site_stats", doc["downstream"])
        self.assertIn("factory.passthru", doc["downstream"])
        self.assertIn("factory.hourly", doc["downstream"])
        # the CLI: tree and DOT
        out = meshctl(self.n, "lineage", "factory.site_stats").stdout
        self.assertIn("factory.site_stats (derived)", out)
        self.assertIn("factory.devices", out)
        self.assertRegex(out, r"temp_max\s+transformation\s+<- factory\.readings\.temp\s+"
                              r"\[inherits confidential, PII\]")
        self.assertRegex(out, r"temp_avg\s+aggregation\s+<- factory\.readings\.temp\n")
        self.assertIn("definition (SQL, definer admin)", out)
        dot = meshctl(self.n, "lineage", "factory.site_stats", "--dot").stdout
        self.assertIn('"factory.readings" -> "factory.site_stats";', dot)
        self.assertIn('"factory.devices" -> "factory.site_stats";', dot)
        self.assertTrue(dot.startswith("digraph lineage {"))

    def test_3_refused_definitions(self):
        n = self.n
        bad = {
            "DELETE FROM factory.readings": (400, 403),
            "ATTACH 'x.db' AS x": (400, 403),
            "SELECT * FROM factory.readings; DELETE FROM factory.readings": (400, 403),
            "SELEC device FROM factory.readings": (400,),
            "SELECT * FROM factory.readings__quarantine": (400, 403),
            "SELECT device, device FROM factory.readings": (400,),
            "SELECT 1 AS x" + " " * 20000: (400, 413),
            "SELECT * FROM factory.nope": (400,),
            "SELECT '\uffff' AS x FROM factory.readings": (400,),  # YAML cannot carry it
        }
        for sql, codes in bad.items():
            st, doc = n.json("POST", "/v1/derive/factory/bad", {"sql": sql})
            self.assertIn(st, codes, (sql[:60], st, doc))
            self.assertTrue(doc and doc.get("error"), doc)
        st, doc = n.json("POST", "/v1/derive/factory/bad", {"sql": "SELECT 1 AS x",
                                                             "refresh": "1ms"})
        self.assertEqual(st, 400)
        # a definer that is not the one applying it
        st, doc = n.json("POST", "/v1/derive/factory/mine", {"sql": "SELECT device FROM "
                                                             "factory.devices"}, expect=200)
        y = doc["contract"].replace('definer: "admin"', 'definer: "someone"')
        st, doc = n.apply(y)
        self.assertEqual(st, 403, doc)
        # declared columns that the query does not give
        st, doc = n.json("POST", "/v1/derive/factory/mine", {"sql": "SELECT device FROM "
                                                             "factory.devices"}, expect=200)
        st, doc = n.apply(doc["contract"].replace('name: "device"', 'name: "dev"'))
        self.assertEqual(st, 400, doc)
        # a hand-written contract must declare what its columns inherit (here PII of temp)
        st, doc = n.json("POST", "/v1/derive/factory/temps", {"sql": "SELECT device, temp FROM "
                                                              "factory.readings"}, expect=200)
        y = doc["contract"]
        self.assertIn('tags: ["PII"]', y)
        st, doc = n.apply(y.replace('        tags: ["PII"]\n', ""))
        self.assertEqual(st, 400, doc)
        self.assertIn("PII", doc["error"]["message"])
        # a cycle: cyc_b reads cyc_a; redefining cyc_a to read cyc_b is refused
        st, doc = n.json("POST", "/v1/derive/factory/cyc_a", {
            "sql": "SELECT device, count(*) AS n FROM factory.readings GROUP BY device"},
            expect=200)
        n.apply(doc["contract"], expect=201)
        st, doc = n.json("POST", "/v1/derive/factory/cyc_b", {
            "sql": "SELECT device, n FROM factory.cyc_a"}, expect=200)
        n.apply(doc["contract"], expect=201)
        st, doc = n.json("POST", "/v1/derive/factory/cyc_a", {
            "sql": "SELECT device, n FROM factory.cyc_b"})
        if st == 200:
            st, doc = n.apply(doc["contract"])
        self.assertEqual(st, 400, doc)
        self.assertIn("cycle", doc["error"]["message"])
        self.assertIn("factory.cyc_b", doc["error"]["message"])
        # a product the definer may not read: a principal administering another domain only
        n.create_domain("lab")
        n.json("POST", "/v1/roles", {"name": "lab-admin"}, expect=201)
        n.json("POST", "/v1/grants", {"role": "lab-admin", "action": "admin", "domain": "lab"},
               expect=201)
        n.json("POST", "/v1/principals", {"name": "lou", "kind": "user",
                                          "roles": ["lab-admin"]}, expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "lou"}, expect=201)[1]["token"]
        st, doc = n.json("POST", "/v1/derive/lab/copy",
                         {"sql": "SELECT device, temp FROM factory.readings"}, token=tok)
        self.assertIn(st, (400, 403), doc)
        out = meshctl(n, "product", "derive", "lab.copy", "--sql",
                      "SELECT device, temp FROM factory.readings", token=tok, check=False)
        self.assertNotEqual(out.returncode, 0)

    def test_4_revoked_definer(self):
        n = self.n
        n.json("POST", "/v1/roles", {"name": "deriver"}, expect=201)
        g = n.json("POST", "/v1/grants", {"role": "deriver", "action": "admin",
                                          "domain": "factory"}, expect=201)[1]
        n.json("POST", "/v1/principals", {"name": "ana", "kind": "user", "roles": ["deriver"]},
               expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "ana"}, expect=201)[1]["token"]
        sql = "SELECT device, count(*) AS n FROM factory.readings GROUP BY device"
        meshctl(n, "product", "derive", "factory.ana_counts", "--sql", sql, "--refresh", "1s",
                token=tok)
        before = n.rows("SELECT * FROM factory.ana_counts ORDER BY device")
        self.assertTrue(before)
        self.assertEqual(self.lineage("ana_counts")["definition"]["definer"], "ana")
        n.json("DELETE", "/v1/grants/%d" % g["id"], expect=204)
        self.write(20)

        def failed():
            d = self.lineage("ana_counts").get("definition", {})
            e = (d.get("refresh") or {}).get("error")
            return e and "ana" in e
        self.assertTrue(meshlib.wait_for(failed, timeout=10))
        # nothing changed: the old content stays, the error is said
        self.assertEqual(n.rows("SELECT * FROM factory.ana_counts ORDER BY device"), before)
        out = meshctl(n, "lineage", "factory.ana_counts").stdout
        self.assertIn("last refresh FAILED", out)
        # audited
        st, doc = n.json("GET", "/v1/audit?action=derive.refresh&limit=1000")
        if st == 200:
            self.assertIn("ana_counts", json.dumps(doc))

    def test_5_erasure_reaches_it(self):
        n = self.n
        meshctl(n, "product", "derive", "factory.passthru2", "--sql", PASS, "--refresh", "1h")
        self.assertGreater(n.scalar("SELECT count(*) FROM factory.passthru2 WHERE device = 'd1'"),
                           0)
        st, doc = n.json("POST", "/v1/products/factory/readings/erase",
                         {"where": "device = 'd1'"}, expect=200)
        derived = {d["product"]: d for d in doc["derived"]}
        self.assertTrue(derived["passthru2"]["refreshed"], doc)
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.passthru2 WHERE device = 'd1'"), 0)
        self.assertTrue(self.same("passthru2", PASS, "device, ts")[0])

    def test_7_incremental(self):
        n = self.n
        inc = ("SELECT device, ts, temp * 2 AS t2, load FROM factory.readings "
               "WHERE load > 0")
        meshctl(n, "product", "derive", "factory.inc", "--sql", inc, "--refresh", "1s")
        agg = "SELECT device, count(*) AS c FROM factory.readings GROUP BY device"
        meshctl(n, "product", "derive", "factory.notinc", "--sql", agg, "--refresh", "1s")
        bkt = ("SELECT device, time_bucket('1m', ts) AS minute, count(*) AS n, avg(temp) AS t "
               "FROM factory.readings WHERE load > 0 GROUP BY device, minute")
        meshctl(n, "product", "derive", "factory.buckets", "--sql", bkt, "--refresh", "1s")

        def runs(product):
            d = self.lineage(product).get("definition", {})
            return (d.get("refresh") or {}).get("runs", {})

        def caught_up():
            return (self.same("inc", inc, "device, ts")[0] and
                    self.same("notinc", agg, "device")[0] and
                    self.same("buckets", bkt, "device, minute")[0])

        for round_ in range(3):
            self.write(40)
            # late rows, and rows written again with other values
            lines = []
            for k in range(10):
                t = T0 + self.rng.randrange(0, self.t - T0)
                lines.append("readings,device=d%d temp=%r,load=%di %d" % (
                    self.rng.randrange(4), round(self.rng.uniform(-5, 80), 2),
                    self.rng.randrange(-20, 100), t))
            rows = n.rows("SELECT device, ts FROM factory.readings ORDER BY random() LIMIT 5")
            for dev, ts in rows:
                lines.append("readings,device=%s temp=1.5,load=7i %d" % (dev, ts_ns(ts)))
            st, _, body = n.write_lp("factory", "\n".join(lines))
            self.assertEqual(st, 204, body)
            if not meshlib.wait_for(caught_up, timeout=10):
                for name, q, o in (("inc", inc, "device, ts"), ("notinc", agg, "device"),
                                   ("buckets", bkt, "device, minute")):
                    ok, got, want = self.same(name, q, o)
                    if not ok:
                        diff = [(g, w) for g, w in zip(got, want) if g != w][:5]
                        self.fail("round %d: %s: %d vs %d rows, %s; %s" % (
                            round_, name, len(got), len(want), diff,
                            self.lineage(name).get("definition")))
        # (the last mode alone is racy: a tick that finds nothing written says "unchanged")
        self.assertGreater(runs("inc").get("incremental", 0), 0, runs("inc"))
        self.assertGreater(runs("buckets").get("incremental", 0), 0, runs("buckets"))
        self.assertEqual(runs("notinc").get("incremental"), 0, runs("notinc"))
        self.assertGreater(runs("notinc").get("full", 0), 1, runs("notinc"))
        # an erasure: recomputed, the erased rows gone
        out = meshctl(n, "erase", "factory.readings", "--where", "device = 'd2'").stdout
        self.assertRegex(out, r"derived factory\.inc: recomputed, \d+ rows")
        self.assertEqual(n.scalar("SELECT count(*) FROM factory.inc WHERE device = 'd2'"), 0)
        self.write(20)
        self.assertTrue(meshlib.wait_for(caught_up, timeout=10))

    def test_6_kill9_during_refresh(self):
        """Every refresh replaces the content in one log record: after kill -9 at any moment the
        product holds the content of one refresh, never a mix."""
        n = self.n
        big = ("SELECT r.device AS device, r.ts AS ts, r.temp AS temp, x.value AS k "
               "FROM factory.readings r, json_each('[%s]') x" % ",".join(map(str, range(K))))
        meshctl(n, "product", "derive", "factory.big", "--sql", big, "--refresh", "1s")
        for round_ in range(4):
            counts = set()
            src = n.scalar("SELECT count(*) FROM factory.readings")
            counts.add(src * K)
            self.write(100)
            counts.add((src + 100) * K)
            time.sleep(random.uniform(0.2, 1.5))
            n.kill()
            n.start()
            got = n.scalar("SELECT count(*) FROM factory.big")
            per = n.rows("SELECT count(*) FROM factory.big GROUP BY device, ts "
                         "HAVING count(*) <> %d" % K)
            self.assertEqual(per, [], "round %d: a partial refresh" % round_)
            self.assertIn(got, counts, "round %d" % round_)
            self.assertTrue(meshlib.wait_for(
                lambda: n.scalar("SELECT count(*) FROM factory.big") ==
                n.scalar("SELECT count(*) FROM factory.readings") * K, timeout=20))


if __name__ == "__main__":
    unittest.main()
