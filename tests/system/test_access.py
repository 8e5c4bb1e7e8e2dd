#!/usr/bin/env python3
"""Access control end to end on a real meshd: principals, passwords and login (with its
limits), tokens (expiry, revocation), the authorisation matrix (role x endpoint x product),
visibility in the catalog, column grants, denies, masks on every output format, and row
filters as a barrier against the attacks that break leaky views."""
import csv
import io
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, MESHD, Node  # noqa: E402

T0 = 1767225600 * 10**9  # 2026-01-01T00:00:00Z
SEC = 10**9

ICU = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:icu
version: 1.0.0
status: active
domain: icu
name: vitals
schema:
  - name: vitals
    logicalType: object
    properties:
      - name: patient_id
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
        classification: restricted
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: ward
        logicalType: string
      - name: name
        logicalType: string
        tags: [PII]
      - name: phone
        logicalType: string
      - name: born
        logicalType: date
      - name: hr
        logicalType: integer
      - name: spo2
        logicalType: number
  - name: admissions
    logicalType: object
    properties:
      - name: patient_id
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: bed
        logicalType: string
"""

FACTORY = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:factory
version: 1.0.0
status: active
domain: factory
name: telemetry
schema:
  - name: telemetry
    logicalType: object
    properties:
      - name: machine
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

PATIENTS = [
    # id, ward, name, phone, born
    ("P001", "A", "Alice Martin", "+33 6 12 34 56 78", "1950-03-14"),
    ("P002", "A", "Bruno Keller", "+41 79 555 01 02", "1962-11-02"),
    ("P003", "B", "Chloe Dubois", "+33 7 98 76 54 32", "1977-07-07"),
    ("P004", "B", "Dmitri Ivanov", "+7 915 000 11 22", "1988-01-30"),
]
CLEAR = [p[0] for p in PATIENTS] + [p[2] for p in PATIENTS] + [p[3] for p in PATIENTS] + \
    ["03-14", "11-02"]


def populate(cls):
    """The two domains, three products, their rows, the roles and principals (one token each
    in cls.tokens), the grants and row filters that the tests of this file share."""
    n = cls.n

    def grant(g):
        n.json("POST", "/v1/grants", g, expect=201)
    n.create_domain("icu", owners=["irene"])
    n.create_domain("factory", owners=["olga"])
    n.apply(ICU, expect=201)
    n.apply(FACTORY, expect=201)
    rows = []
    for k, (pid, ward, name, phone, born) in enumerate(PATIENTS):
        for i in range(5):
            rows.append({"patient_id": pid, "ts": T0 + i * 60 * SEC, "ward": ward,
                         "name": name, "phone": phone, "born": born, "hr": 60 + 10 * k + i,
                         "spo2": 90.5 + k})
    st, doc = n.post_rows("icu", "vitals", rows)
    assert st == 200, doc
    st, doc = n.post_rows("icu", "admissions",
                          [{"patient_id": p[0], "bed": "bed-%d" % i}
                           for i, p in enumerate(PATIENTS)])
    assert st == 200, doc
    st, h, _ = n.write_lp("factory", "telemetry,machine=M1 temp=20.5 %d" % T0)
    assert st == 204
    # roles and people
    for role in ("analyst", "device", "ward-a", "ward-b", "clerk", "nurse"):
        n.json("POST", "/v1/roles", {"name": role}, expect=201)
    cls.tokens = {}
    people = {
        "rita": ["reader"], "wendy": ["writer"], "nobody": [], "ann": ["analyst"],
        "dev": ["device"], "irene": [], "olga": [], "nurse-a": ["ward-a"],
        "nurse-ab": ["ward-a", "ward-b"], "clara": ["clerk"], "auditor1": ["auditor"],
    }
    for name, roles in people.items():
        n.json("POST", "/v1/principals", {"name": name, "kind": "service", "roles": roles},
               expect=201)
        st, doc = n.json("POST", "/v1/tokens", {"principal": name}, expect=201)
        cls.tokens[name] = doc["token"]
    grant({"role": "analyst", "action": "read", "domain": "icu", "product": "vitals"})
    grant({"role": "device", "action": "write", "domain": "factory",
               "product": "telemetry"})
    for role in ("ward-a", "ward-b"):
        grant({"role": role, "action": "read", "domain": "icu", "product": "vitals"})
    n.json("POST", "/v1/row-filters", {"role": "ward-a", "domain": "icu", "product": "vitals",
                                       "predicate": "ward = 'A'"}, expect=201)
    n.json("POST", "/v1/row-filters", {"role": "ward-b", "domain": "icu", "product": "vitals",
                                       "predicate": "ward = 'B'"}, expect=201)
    grant({"role": "clerk", "action": "read", "domain": "icu", "product": "vitals",
               "columns": ["patient_id", "ts", "ward", "hr"]})


class AccessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node()
        cls.n.start()
        populate(cls)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    @classmethod
    def grant(cls, g):
        return cls.n.json("POST", "/v1/grants", g, expect=201)[1]

    def as_(self, who, method, path, body=None, headers=None):
        st, h, data = self.n.request(method, path, body, headers=headers, token=self.tokens[who])
        return st, data

    def q(self, who, sql, **opts):
        body = {"sql": sql}
        body.update(opts)
        st, data = self.as_(who, "POST", "/v1/query", body)
        return st, (json.loads(data) if data.strip().startswith(b"{") else data)

    def test_no_token_no_entry(self):
        for path in ("/v1/domains", "/v1/products", "/v1/principals", "/v1/grants"):
            st, h, data = self.n.request("GET", path, token="")
            self.assertEqual(st, 401, path)
        st, h, data = self.n.request("GET", "/v1/domains", token="not-a-token-0123456789")
        self.assertEqual(st, 401)

    # ---- what a principal sees ----

    def test_catalog_shows_only_readable_products(self):
        st, data = self.as_("ann", "GET", "/v1/products")
        names = sorted("%s.%s" % (p["domain"], p["name"]) for p in json.loads(data)["products"])
        self.assertEqual(names, ["icu.vitals"])
        st, data = self.as_("ann", "GET", "/v1/domains")
        doms = json.loads(data)["domains"]
        self.assertEqual([d["name"] for d in doms], ["icu"])
        self.assertEqual(doms[0]["products"], ["vitals"])  # not admissions
        st, data = self.as_("ann", "GET", "/v1/catalog?q=telemetry")
        self.assertEqual(json.loads(data)["count"], 0)
        st, data = self.as_("nobody", "GET", "/v1/products")
        self.assertEqual(json.loads(data)["products"], [])
        # a product one may not read does not exist in SQL either: the same answer as none
        st, doc = self.q("ann", "SELECT * FROM icu.admissions")
        st2, doc2 = self.q("ann", "SELECT * FROM icu.nonexistent")
        self.assertEqual(st, 400)
        self.assertIn("no such table", doc["error"]["message"])
        self.assertIn("no such table", doc2["error"]["message"])
        st, doc = self.q("ann", "SELECT * FROM factory.telemetry")
        self.assertIn("no such table", doc["error"]["message"])
        # the write-only device sees nothing but may write
        st, doc = self.q("dev", "SELECT * FROM factory.telemetry")
        self.assertEqual(st, 400)
        # quarantine: administrators of the product only
        st, doc = self.q("ann", "SELECT count(*) FROM icu.vitals__quarantine")
        self.assertEqual(st, 400)
        st, doc = self.q("irene", "SELECT count(*) FROM icu.vitals__quarantine")
        self.assertEqual(st, 200, doc)

    def test_column_grants(self):
        st, doc = self.q("clara", "SELECT * FROM icu.vitals ORDER BY patient_id, ts LIMIT 1")
        self.assertEqual(st, 200, doc)
        self.assertEqual([c["name"] for c in doc["columns"]], ["patient_id", "ts", "ward", "hr"])
        st, doc = self.q("clara", "SELECT name FROM icu.vitals")
        self.assertEqual(st, 400)
        self.assertIn("no such column", doc["error"]["message"])
        # a predicate on a hidden column is not possible either
        st, doc = self.q("clara", "SELECT count(*) FROM icu.vitals WHERE spo2 > 0")
        self.assertEqual(st, 400)

    def test_deny_wins(self):
        self.n.json("POST", "/v1/roles", {"name": "temp-deny"}, expect=201)
        self.n.json("POST", "/v1/principals", {"name": "dora", "roles": ["reader", "temp-deny"]},
                    expect=201)
        tok = self.n.json("POST", "/v1/tokens", {"principal": "dora"}, expect=201)[1]["token"]
        g = self.grant({"role": "temp-deny", "action": "read", "domain": "icu", "deny": True})
        st, h, data = self.n.request("POST", "/v1/query", {"sql": "SELECT 1 FROM icu.vitals"},
                                     token=tok)
        self.assertEqual(st, 400)
        self.assertIn(b"no such table", data)
        st, h, data = self.n.request("GET", "/v1/products/icu/vitals", token=tok)
        self.assertEqual(st, 403)
        st, h, data = self.n.request("GET", "/v1/products/factory/telemetry", token=tok)
        self.assertEqual(st, 200)
        # a deny of some columns hides only them
        self.n.json("DELETE", "/v1/grants/%d" % g["id"], expect=204)
        self.grant({"role": "temp-deny", "action": "read", "domain": "icu", "product": "vitals",
                    "columns": ["name", "phone"], "deny": True})
        st, h, data = self.n.request(
            "POST", "/v1/query", {"sql": "SELECT * FROM icu.vitals LIMIT 1"}, token=tok)
        cols = [c["name"] for c in json.loads(data)["columns"]]
        self.assertNotIn("name", cols)
        self.assertNotIn("phone", cols)
        self.assertIn("hr", cols)

    # ---- masks ----

    def test_masks_on_every_output(self):
        self.n.json("POST", "/v1/roles", {"name": "masked"}, expect=201)
        self.n.json("POST", "/v1/principals", {"name": "mia", "roles": ["masked"]}, expect=201)
        tok = self.n.json("POST", "/v1/tokens", {"principal": "mia"}, expect=201)[1]["token"]
        self.tokens["mia"] = tok
        self.grant({"role": "masked", "action": "read", "domain": "icu"})
        masks = [
            {"domain": "icu", "product": "vitals", "column": "patient_id", "type": "MASK_HASH",
             "roles": ["masked"]},
            {"domain": "icu", "tag": "PII", "type": "MASK", "roles": ["masked"]},
            {"domain": "icu", "product": "vitals", "column": "phone", "type": "MASK_SHOW_LAST_4",
             "roles": ["masked"]},
            {"domain": "icu", "product": "vitals", "column": "born",
             "type": "MASK_DATE_SHOW_YEAR", "roles": ["masked"]},
            {"domain": "icu", "product": "vitals", "column": "spo2", "type": "CUSTOM",
             "expr": "round({col} / 10) * 10", "roles": ["masked"]},
            {"domain": "icu", "product": "admissions", "column": "patient_id",
             "type": "MASK_HASH", "roles": ["masked"]},
            {"domain": "icu", "product": "admissions", "column": "bed", "type": "MASK_NULL",
             "roles": ["*"], "except": ["nurse"]},
        ]
        for m in masks:
            self.n.json("POST", "/v1/masks", m, expect=201)
        sql = "SELECT * FROM icu.vitals ORDER BY ts"
        st, doc = self.q("mia", sql)
        self.assertEqual(st, 200, doc)
        cols = [c["name"] for c in doc["columns"]]
        r0 = dict(zip(cols, doc["rows"][0]))
        self.assertEqual(len(r0["patient_id"]), 64)  # hex HMAC
        self.assertRegex(r0["name"], r"^X[x]+ X[x]+$")
        self.assertRegex(r0["phone"], r"^x+\d\d \d\d$|^x+\d{4}$|^x+.{4}$")
        self.assertTrue(r0["phone"].startswith("xxxx"))
        self.assertEqual(r0["born"][:5], r0["born"][:4] + "-")
        self.assertTrue(r0["born"].endswith("-01-01"))
        self.assertIn(r0["spo2"], (90.0, 100.0))
        self.assertEqual(r0["hr"], 60)  # not masked
        # no clear value anywhere, in any format
        outputs = [json.dumps(doc).encode()]
        for fmt in ("ndjson", "csv"):
            st, data = self.as_("mia", "POST", "/v1/query", {"sql": sql, "format": fmt})
            self.assertEqual(st, 200)
            outputs.append(data)
        st, data = self.as_("mia", "GET", "/v1/query?sql=" +
                            "SELECT%20*%20FROM%20icu.vitals&format=csv")
        outputs.append(data)
        for out in outputs:
            for clear in CLEAR:
                self.assertNotIn(clear.encode(), out, "clear value %r leaked" % clear)
        rows = list(csv.reader(io.StringIO(outputs[2].decode())))
        self.assertEqual(len(rows), 21)  # header + 20
        # a predicate on a masked column sees the masked value
        st, doc = self.q("mia", "SELECT count(*) FROM icu.vitals WHERE name = 'Alice Martin'")
        self.assertEqual(doc["rows"][0][0], 0)
        st, doc = self.q("mia", "SELECT count(*) FROM icu.vitals WHERE name = 'Xxxxx Xxxxxx'")
        self.assertEqual(doc["rows"][0][0], 15)  # Alice Martin, Bruno Keller, Chloe Dubois
        st, doc = self.q("mia", "SELECT count(*) FROM icu.vitals WHERE patient_id = 'P001'")
        self.assertEqual(doc["rows"][0][0], 0)
        # the order of a masked column is the masked order, not the clear one
        st, doc = self.q("mia", "SELECT DISTINCT name FROM icu.vitals WHERE name NOT NULL "
                                "ORDER BY name")
        self.assertEqual(doc["rows"], sorted(doc["rows"]))
        # hashed ids still join across products
        st, doc = self.q("mia", "SELECT count(*) FROM icu.vitals v JOIN icu.admissions a "
                                "ON a.patient_id = v.patient_id")
        self.assertEqual(doc["rows"][0][0], 20)
        st, doc = self.q("mia", "SELECT bed FROM icu.admissions LIMIT 1")
        self.assertIsNone(doc["rows"][0][0])
        # the unmasked see clear values; "*" applies to the admin too, except the excepted
        st, doc = self.q("rita", "SELECT patient_id FROM icu.vitals ORDER BY patient_id LIMIT 1")
        self.assertEqual(doc["rows"][0][0], "P001")
        st, doc = self.q("admin" if "admin" in self.tokens else "rita",
                         "SELECT bed FROM icu.admissions LIMIT 1")
        self.assertIsNone(doc["rows"][0][0])

    def test_rollup_view_under_policies(self):
        """icu.vitals__agg counts rows below masks and row filters: it answers as GROUP BY does
        for a caller without either, loses the aggregates of a masked or ungranted column, and
        refuses (clearly, with no rows) a caller under a row filter or a masked series
        column."""
        view = ("SELECT patient_id, bucket, rows, hr_count, hr_avg, hr_max, spo2_min "
                "FROM icu.vitals__agg('1h') ORDER BY 1, 2")
        oracle = ("SELECT patient_id, bucket, count(*), count(hr), avg(hr), max(hr), min(spo2) "
                  "FROM icu.vitals('1h') GROUP BY 1, 2 ORDER BY 1, 2")
        st, a = self.q("ann", view)
        self.assertEqual(st, 200, a)
        st, b = self.q("ann", oracle)
        self.assertEqual(a["rows"], b["rows"])
        self.assertEqual(sum(r[2] for r in a["rows"]), 20)
        # a column grant without spo2: its aggregates do not exist
        st, doc = self.q("clara", "SELECT * FROM icu.vitals__agg('1h')")
        self.assertEqual(st, 200, doc)
        cols = [c["name"] for c in doc["columns"]]
        self.assertIn("hr_avg", cols)
        self.assertFalse([c for c in cols if c.startswith("spo2")], cols)
        # masks: a masked value column loses its aggregates, a masked series column the view
        for role, column in (("agg-mv", "spo2"), ("agg-mk", "patient_id")):
            self.n.json("POST", "/v1/roles", {"name": role}, expect=201)
            self.n.json("POST", "/v1/principals", {"name": role + "-u", "roles": [role]},
                        expect=201)
            tok = self.n.json("POST", "/v1/tokens", {"principal": role + "-u"},
                              expect=201)[1]["token"]
            self.tokens[role + "-u"] = tok
            self.grant({"role": role, "action": "read", "domain": "icu", "product": "vitals"})
            self.n.json("POST", "/v1/masks", {"domain": "icu", "product": "vitals",
                                              "column": column, "type": "MASK_NULL",
                                              "roles": [role]}, expect=201)
        st, doc = self.q("agg-mv-u", "SELECT * FROM icu.vitals__agg('1h')")
        self.assertEqual(st, 200, doc)
        cols = [c["name"] for c in doc["columns"]]
        self.assertIn("hr_max", cols)
        self.assertFalse([c for c in cols if c.startswith("spo2")], cols)
        self.assertEqual(sum(r[cols.index("rows")] for r in doc["rows"]), 20)
        for who, why in (("agg-mk-u", "masked"), ("nurse-a", "row filter")):
            st, doc = self.q(who, "SELECT patient_id, rows FROM icu.vitals__agg('1h')")
            self.assertEqual(st, 400, (who, doc))
            self.assertIn(why, doc["error"]["message"])
            self.assertNotIn("rows", doc)
        # the same caller's GROUP BY goes through its row filter as ever
        st, doc = self.q("nurse-a", "SELECT count(*) FROM icu.vitals('1h') GROUP BY bucket")
        self.assertEqual((st, sum(r[0] for r in doc["rows"])), (200, 10))

    def test_mask_show_first_4_table_errors_and_audit(self):
        """MASK_SHOW_FIRST_4 end to end, and the outputs beyond the query formats: meshctl's
        table, an error raised by a function on a masked value, and the query's audit event
        naming the masks and the row filter applied."""
        n = self.n
        n.json("POST", "/v1/roles", {"name": "first4"}, expect=201)
        n.json("POST", "/v1/principals", {"name": "finn", "roles": ["first4"]}, expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "finn"}, expect=201)[1]["token"]
        self.tokens["finn"] = tok
        self.grant({"role": "first4", "action": "read", "domain": "icu", "product": "vitals"})
        m_phone = n.json("POST", "/v1/masks", {"domain": "icu", "product": "vitals",
                                               "column": "phone", "type": "MASK_SHOW_FIRST_4",
                                               "roles": ["first4"]}, expect=201)[1]["id"]
        m_name = n.json("POST", "/v1/masks", {"domain": "icu", "product": "vitals",
                                              "column": "name", "type": "MASK",
                                              "roles": ["first4"]}, expect=201)[1]["id"]
        f_id = n.json("POST", "/v1/row-filters", {"role": "first4", "domain": "icu",
                                                  "product": "vitals",
                                                  "predicate": "ward = 'A'"},
                      expect=201)[1]["id"]
        clear = [p[2] for p in PATIENTS] + [p[3] for p in PATIENTS]
        first4 = {p[0]: p[3][:4] + "x" * (len(p[3]) - 4) for p in PATIENTS}
        sql = "SELECT patient_id, name, phone FROM icu.vitals ORDER BY patient_id, ts"
        st, h, data = n.request("POST", "/v1/query", {"sql": sql}, token=tok)
        self.assertEqual(st, 200, data)
        doc = json.loads(data)
        self.assertEqual(len(doc["rows"]), 10)  # ward A only
        for pid, name, phone in doc["rows"]:
            self.assertEqual(phone, first4[pid])
            self.assertRegex(name, r"^X[x]+ X[x]+$")
        self.assertEqual(first4["P001"], "+33 xxxxxxxxxxxxx")
        ok_rid = h["x-request-id"]
        # meshctl's table: the masked form, never a clear value
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
        env.update(XDG_CONFIG_HOME="/nonexistent", MESH_URL=n.url, MESH_TOKEN=tok)
        if n.scheme == "https":
            env["MESH_CACERT"] = n.cafile
        out = subprocess.run([MESHCTL, "query", "--format", "table", sql], capture_output=True,
                             text=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("+33 xxxxxxxxxxxxx", out.stdout)
        self.assertIn("Xxxxx Xxxxxx", out.stdout)
        for c in clear:
            self.assertNotIn(c, out.stdout + out.stderr, "clear value %r in the table" % c)
        # a function failing on a masked value names the masked value, not the clear one
        bad = "SELECT ts(phone) FROM icu.vitals WHERE patient_id = 'P001'"
        st, h, data = n.request("POST", "/v1/query", {"sql": bad}, token=tok)
        self.assertEqual(st, 400, data)
        msg = json.loads(data)["error"]["message"]
        self.assertIn("'+33 xxxxxxxxxxxxx' is not an ISO 8601 time", msg)
        err_rid = h["x-request-id"]
        st, doc = self.q("finn", "SELECT ts(name) FROM icu.vitals")
        self.assertEqual(st, 400, doc)
        self.assertIn("'Xxxxx Xxxxxx' is not", doc["error"]["message"])
        out = subprocess.run([MESHCTL, "query", "--format", "table", bad], capture_output=True,
                             text=True, env=env, timeout=60)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("+33 xxxxxxxxxxxxx", out.stderr)
        for text in (data.decode(), json.dumps(doc), out.stdout + out.stderr):
            for c in clear:
                self.assertNotIn(c, text, "clear value %r in an error" % c)
        # the probe is real: the unmasked reader gets the clear value in the same error
        st, doc = self.q("rita", bad)
        self.assertEqual(st, 400, doc)
        self.assertIn("'+33 6 12 34 56 78' is not", doc["error"]["message"])
        # the audit events of both queries name the masks and the row filter applied, and the
        # failed one's error carries only the masked value; read through system.audit
        st, adoc = self.q("auditor1", "SELECT request_id, details FROM system.audit WHERE "
                          "action = 'query' AND request_id IN ('%s', '%s')" % (ok_rid, err_rid))
        self.assertEqual(st, 200, adoc)
        events = {rid: json.loads(d) for rid, d in adoc["rows"]}
        self.assertEqual(sorted(events), sorted([ok_rid, err_rid]))
        for rid, det in events.items():
            self.assertEqual(sorted(det["masks"]),
                             sorted(["icu.vitals.phone: MASK_SHOW_FIRST_4 (mask %d)" % m_phone,
                                     "icu.vitals.name: MASK (mask %d)" % m_name]), det)
            self.assertEqual(det["filters"], ["icu.vitals (row filter %d)" % f_id], det)
            for c in clear:
                self.assertNotIn(c, json.dumps(det))
        self.assertEqual(events[ok_rid]["rows"], 10)
        self.assertIn("+33 xxxxxxxxxxxxx", events[err_rid]["error"])

    def test_policy_validation(self):
        bad = [
            ("/v1/row-filters", {"role": "ward-a", "domain": "icu", "product": "vitals",
                                 "predicate": "ward = "}),
            ("/v1/row-filters", {"role": "ward-a", "domain": "icu", "product": "vitals",
                                 "predicate": "nosuchcolumn = 1"}),
            ("/v1/row-filters", {"role": "ward-a", "domain": "icu", "product": "vitals",
                                 "predicate": "1; DELETE FROM x"}),
            ("/v1/row-filters", {"role": "nosuchrole", "domain": "icu", "product": "vitals",
                                 "predicate": "1"}),
            ("/v1/row-filters", {"role": "ward-a", "domain": "icu", "product": "nope",
                                 "predicate": "1"}),
            ("/v1/masks", {"domain": "icu", "product": "vitals", "column": "name",
                           "type": "MASK_SOMETIMES", "roles": ["*"]}),
            ("/v1/masks", {"domain": "icu", "product": "vitals", "column": "name",
                           "type": "CUSTOM", "expr": "upper(", "roles": ["*"]}),
            ("/v1/masks", {"domain": "icu", "product": "vitals", "column": "name",
                           "type": "MASK", "roles": ["*"], "extra": 1}),
            ("/v1/masks", {"domain": "icu", "column": "name", "tag": "PII", "type": "MASK",
                           "roles": ["*"]}),
            ("/v1/grants", {"role": "analyst", "action": "fly"}),
            ("/v1/grants", {"role": "analyst", "action": "write", "domain": "icu",
                            "product": "vitals", "columns": ["hr"]}),
            ("/v1/grants", {"role": "Bad Role", "action": "read"}),
            ("/v1/principals", {"name": "-x"}),
            ("/v1/principals", {"name": "shorty", "password": "short"}),
            ("/v1/roles", {"name": "admin"}),
        ]
        for path, body in bad:
            st, doc = self.n.json("POST", path, body)
            self.assertIn(st, (400, 404, 409), "%s %s -> %d %s" % (path, body, st, doc))
            self.assertIn("error", doc)

    # ---- row filters ----

    def test_row_filter_barrier(self):
        def one(who, sql):
            st, doc = self.q(who, sql)
            self.assertEqual(st, 200, "%s: %s -> %s" % (who, sql, doc))
            return doc
        self.assertEqual(one("nurse-a", "SELECT count(*) FROM icu.vitals")["rows"], [[10]])
        self.assertEqual(one("nurse-ab", "SELECT count(*) FROM icu.vitals")["rows"], [[20]])
        self.assertEqual(one("ann", "SELECT count(*) FROM icu.vitals")["rows"], [[20]])
        doc = one("nurse-a", "SELECT DISTINCT ward FROM icu.vitals")
        self.assertEqual(doc["rows"], [["A"]])
        # rows_scanned counts only what the caller may see
        self.assertLessEqual(one("nurse-a", "SELECT * FROM icu.vitals")["rows_scanned"], 10)
        attacks = [
            # an error raised only by a hidden row
            "SELECT count(*) FROM icu.vitals WHERE CASE WHEN ward = 'B' THEN "
            "abs(-9223372036854775807 - 1) ELSE 1 END",
            "SELECT count(*) FROM icu.vitals WHERE CASE WHEN ward = 'B' THEN json('not json') "
            "ELSE 1 END",
            "SELECT count(*) FROM icu.vitals WHERE CASE WHEN ward = 'B' THEN "
            "length(zeroblob(2000000000)) ELSE 1 END",
            "SELECT count(*) FROM icu.vitals WHERE CASE WHEN patient_id = 'P003' THEN 1 / 0 "
            "ELSE 1 END",
            # probes by order and limit
            "SELECT patient_id FROM icu.vitals ORDER BY hr DESC LIMIT 1",
            "SELECT patient_id FROM icu.vitals ORDER BY patient_id DESC LIMIT 1 OFFSET 0",
            "SELECT max(hr), min(spo2), count(DISTINCT patient_id) FROM icu.vitals",
            "SELECT patient_id FROM icu.vitals__last ORDER BY patient_id DESC",
            "SELECT patient_id FROM icu.vitals WHERE patient_id > 'P002' ORDER BY ts DESC LIMIT 3",
            "SELECT count(*) FROM icu.vitals a JOIN icu.vitals b ON a.patient_id = b.patient_id "
            "WHERE b.ward = 'B'",
        ]
        for sql in attacks:
            doc = one("nurse-a", sql)
            text = json.dumps(doc["rows"])
            for hidden in ("P003", "P004", '"B"'):
                self.assertNotIn(hidden, text, sql)
        self.assertEqual(one("nurse-a", attacks[0])["rows"], [[10]])
        self.assertEqual(one("nurse-a", attacks[3])["rows"], [[10]])
        self.assertEqual(one("nurse-a", attacks[4])["rows"], [["P002"]])
        self.assertEqual(one("nurse-a", attacks[6])["rows"], [[74, 90.5, 2]])
        self.assertEqual(one("nurse-a", attacks[9])["rows"], [[0]])
        # and the same errors do surface for rows one may see (the probes are real)
        st, doc = self.q("nurse-a", "SELECT count(*) FROM icu.vitals WHERE CASE WHEN ward = 'A' "
                                    "THEN json('not json') ELSE 1 END")
        self.assertEqual(st, 400)
        # a slow function only for hidden rows: the query ends with the visible rows' answer,
        # the hidden rows never reach the caller's predicate. No timing is asserted: the
        # answer, its counts and the absence of an error reveal nothing; the same probe on
        # visible rows is real, and ends at the time limit with a clear error
        heavy = ("(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                 "WHERE x < 1000000000) SELECT count(*) FROM c)")
        slow = ("SELECT count(*), max(hr) FROM icu.vitals WHERE CASE WHEN %s THEN "
                + heavy + " > 0 ELSE 1 END")
        for cond in ("ward = 'B'", "patient_id IN ('P003', 'P004')", "hr > 200"):
            st, doc = self.q("nurse-a", slow % cond, timeout_ms=2000)
            self.assertEqual(st, 200, "%s: %s" % (cond, doc))
            self.assertEqual(doc["rows"], [[10, 74]], cond)
            self.assertLessEqual(doc["rows_scanned"], 10)
        st, doc = self.q("nurse-a", slow % "ward = 'A'", timeout_ms=2000)
        self.assertIn(st, (408, 503), doc)
        self.assertIn("time limit", json.dumps(doc))
        for hidden in ("P003", "P004", '"B"'):
            self.assertNotIn(hidden, json.dumps(doc))

    # ---- passwords, login, tokens ----

    def test_login_and_limits(self):
        n = self.n
        n.json("POST", "/v1/principals", {"name": "lena", "kind": "user", "roles": ["reader"],
                                          "password": "correct horse battery"}, expect=201)
        st, doc = n.json("POST", "/v1/login", {"user": "lena", "password": "correct horse battery"},
                         token="")
        self.assertEqual(st, 200, doc)
        tok = doc["token"]
        st, h, data = n.request("GET", "/v1/whoami", token=tok)
        self.assertEqual(json.loads(data)["principal"], "lena")
        # the same answer for a wrong password and an unknown user
        st1, d1 = n.json("POST", "/v1/login", {"user": "lena", "password": "wrong password"},
                         token="")
        st2, d2 = n.json("POST", "/v1/login", {"user": "nobody-here", "password": "whatever1"},
                         token="")
        self.assertEqual((st1, st2), (401, 401))
        self.assertEqual(d1["error"]["message"], d2["error"]["message"])
        # repeated failures: the user is held back, even with the right password
        for _ in range(6):
            n.json("POST", "/v1/login", {"user": "lena", "password": "wrong password"}, token="")
        st, h, data = n.request("POST", "/v1/login",
                                {"user": "lena", "password": "correct horse battery"}, token="")
        self.assertEqual(st, 429, data)
        self.assertIn("retry-after", h)
        # the token from before still works; a self-service password change needs the old one
        st, h, data = n.request("PUT", "/v1/principals/lena", {"password": "a new password!"},
                                token=tok)
        self.assertEqual(st, 403)
        st, h, data = n.request("PUT", "/v1/principals/lena",
                                {"password": "a new password!",
                                 "current_password": "correct horse battery"}, token=tok)
        self.assertEqual(st, 200, data)
        st, h, data = n.request("PUT", "/v1/principals/lena", {"roles": ["admin"]}, token=tok)
        self.assertEqual(st, 403)
        # a short-lived login token
        n.json("POST", "/v1/principals", {"name": "tim", "roles": ["reader"],
                                          "password": "timothy-secret"}, expect=201)
        st, doc = n.json("POST", "/v1/login", {"user": "tim", "password": "timothy-secret",
                                               "ttl": "1s"}, token="")
        self.assertEqual(st, 200)
        time.sleep(1.2)
        st, h, data = n.request("GET", "/v1/whoami", token=doc["token"])
        self.assertEqual(st, 401)
        # no password or token in the log
        log = "\n".join(n.log)
        for secret in ("correct horse battery", "a new password!", "timothy-secret", tok):
            self.assertNotIn(secret, log)

    def test_tokens_revoke_disable(self):
        n = self.n
        n.json("POST", "/v1/principals", {"name": "svc", "roles": ["reader"]}, expect=201)
        st, doc = n.json("POST", "/v1/tokens", {"principal": "svc", "expires_in": "30d",
                                                "note": "ci"}, expect=201)
        tok, tid = doc["token"], doc["id"]
        self.assertTrue(doc["expires"])
        self.assertEqual(n.request("GET", "/v1/whoami", token=tok)[0], 200)
        # the token list never shows a token or its hash
        st, lst = n.json("GET", "/v1/tokens?principal=svc", expect=200)
        self.assertNotIn(tok, json.dumps(lst))
        self.assertEqual([t["id"] for t in lst["tokens"]], [tid])
        n.json("DELETE", "/v1/tokens/" + tid, expect=204)
        self.assertEqual(n.request("GET", "/v1/whoami", token=tok)[0], 401)  # at once
        tok2 = n.json("POST", "/v1/tokens", {"principal": "svc"}, expect=201)[1]["token"]
        n.json("PUT", "/v1/principals/svc", {"disabled": True}, expect=200)
        self.assertEqual(n.request("GET", "/v1/whoami", token=tok2)[0], 401)
        n.json("PUT", "/v1/principals/svc", {"disabled": False}, expect=200)
        self.assertEqual(n.request("GET", "/v1/whoami", token=tok2)[0], 200)
        # roles change at once
        n.json("PUT", "/v1/principals/svc", {"roles": []}, expect=200)
        st, h, data = n.request("GET", "/v1/products/icu/vitals", token=tok2)
        self.assertEqual(st, 403)
        n.json("DELETE", "/v1/principals/svc", expect=204)
        self.assertEqual(n.request("GET", "/v1/whoami", token=tok2)[0], 401)

    def test_zz_address_limit(self):
        """Failures for many names from one address hold the address back, and a successful
        login in between does not reset the count (one valid account must not buy an
        attacker unlimited guesses). A node of its own: the count starts at zero."""
        n = Node()
        n.start()
        try:
            n.json("POST", "/v1/principals", {"name": "valid", "password": "valid password 1"},
                   expect=201)

            def login(user, pw):
                return n.json("POST", "/v1/login", {"user": user, "password": pw}, token="")[0]
            codes = [login("ghost%d" % i, "guess-guess") for i in range(12)]
            self.assertEqual(login("valid", "valid password 1"), 200)
            codes += [login("ghost%d" % i, "guess-guess") for i in range(12, 25)]
            self.assertEqual(codes.count(401), 20, codes)
            self.assertEqual(codes[20:], [429] * 5, codes)
            # now even the right password is held back from this address
            self.assertEqual(login("valid", "valid password 1"), 429)
        finally:
            n.destroy()


# ---- the authorisation matrix ----

# Who the matrix asks as, and what the documented policy (docs/security.md, Access control)
# gives each: the four built-in roles, a custom role with a read grant on one product (ann,
# analyst: icu.vitals), a principal with no grants, and a domain owner (irene owns icu). The
# administrator comes last so that what it deletes or changes was there for everyone before.
MATRIX_WHO = ["nobody", "ann", "auditor1", "rita", "wendy", "irene", "admin"]
PRODUCTS = [("icu", "vitals"), ("icu", "admissions"), ("factory", "telemetry")]
DOMAINS = ["icu", "factory"]
ALERTS = "alerts"  # every domain's system product of alerts (docs/rules.md)


def may(who, right, domain=None, product=None):
    """The decision the policy must make: built-in roles by their right anywhere, the owner
    of a domain everything but the audit log there, the analyst reading icu.vitals only."""
    if who == "admin":
        return True
    if who == "rita":
        return right == "read"
    if who == "wendy":
        return right in ("read", "write")
    if who == "auditor1":
        return right == "audit"
    if who == "ann":
        return right == "read" and (domain, product) == ("icu", "vitals")
    if who == "irene":
        return domain == "icu" and right != "audit"
    return False


def contract_of(domain):
    return ICU if domain == "icu" else FACTORY


ROW_OF = {
    ("icu", "vitals"): [{"patient_id": "P9", "ts": T0, "ward": "Z", "hr": 1}],
    ("icu", "admissions"): [{"patient_id": "P9", "bed": "bed-9"}],
    ("factory", "telemetry"): [{"machine": "M9", "ts": T0, "temp": 1}],
}
LP_OF = {
    ("icu", "vitals"): "vitals,patient_id=P9,ward=Z hr=1i %d" % T0,
    ("icu", "admissions"): "admissions,patient_id=P9 bed=\"bed-9\"",  # no time column
    ("factory", "telemetry"): "telemetry,machine=M9 temp=1 %d" % T0,
}
MASK_COL = {"icu": ("vitals", "phone"), "factory": ("telemetry", "temp")}
ANY = "any status but 401, 403 and 5xx"

# Every (method, route) of the server, classified. kind:
#   public   no token needed (the liveness probes and the login itself)
#   caller   any authenticated principal, no policy decision: listings that show only what
#            the caller may see (docs/security.md: "Listings ... show only what the caller may
#            read"), one's own identity and tokens, the node's metrics
#   decide   one policy decision (right on scope) before anything else: 403 and authz.deny
#            when refused, authz.allow when allowed
#   query    SQL: a product one may not read does not exist ("no such table", 400) and the
#            query event carries the error: no authz.deny, the product tables decide
# For decide: scope node / domain / product (each of DOMAINS or PRODUCTS in turn); path and
# body may be functions of (who, domain, product, prep) where prep is what prep() made first
# as the administrator; allow overrides may(); ok are the statuses of an allowed request
# (ANY where the answer depends on the object, e.g. 404 for a ghost that lets the test
# delete nothing the matrix needs).
R = {
    ("GET", "/healthz"): dict(kind="public"),
    ("HEAD", "/healthz"): dict(kind="public"),
    ("GET", "/readyz"): dict(kind="public"),
    ("HEAD", "/readyz"): dict(kind="public"),
    ("GET", "/ping"): dict(kind="public", ok=(204, 200)),
    ("HEAD", "/ping"): dict(kind="public", ok=(204, 200)),
    ("POST", "/v1/login"): dict(kind="public", body={"user": "nobody", "password": "not-it"},
                                ok=(401,)),
    ("GET", "/metrics"): dict(kind="caller"),
    ("GET", "/v1/status"): dict(kind="caller"),
    ("GET", "/v1/domains"): dict(kind="caller"),
    ("GET", "/v1/products"): dict(kind="caller"),
    ("GET", "/v1/catalog"): dict(kind="caller"),
    ("GET", "/v1/whoami"): dict(kind="caller"),
    ("GET", "/v1/tokens"): dict(kind="caller"),  # one's own; all for an administrator
    ("GET", "/v1/roles"): dict(kind="caller"),
    ("GET", "/v1/grants"): dict(kind="caller"),  # those of the scopes one administers
    ("GET", "/v1/masks"): dict(kind="caller"),
    ("GET", "/v1/row-filters"): dict(kind="caller"),
    ("GET", "/v1/mesh/nodes"): dict(kind="caller", ok=(200, 503)),  # 503: not in a mesh
    ("GET", "/v1/mesh/domains"): dict(kind="caller", ok=(200, 503)),  # 503: not in a mesh
    ("GET", "/v1/mesh/products"): dict(kind="caller", ok=(200, 503)),  # 503: not in a mesh
    ("GET", "/v1/rules"): dict(kind="caller"),
    ("GET", "/v1/alerts"): dict(kind="caller"),
    ("GET", "/v1/mqtt/mappings"): dict(kind="caller"),
    ("GET", "/v1/query"): dict(kind="query"),
    ("POST", "/v1/query"): dict(kind="query"),
    # the node
    ("POST", "/v1/domains"): dict(kind="decide", right="admin", scope="node",
                                  body=lambda w, d, p, x: {"name": "m-" + w}, ok=(201,)),
    ("GET", "/v1/principals"): dict(kind="decide", right="admin", scope="node"),
    ("POST", "/v1/principals"): dict(kind="decide", right="admin", scope="node",
                                     body=lambda w, d, p, x: {"name": "made-by-" + w},
                                     ok=(201,)),
    ("GET", "/v1/principals/{}"): dict(kind="decide", right="admin", scope="node",
                                       path="/v1/principals/token-target"),
    ("PUT", "/v1/principals/{}"): dict(kind="decide", right="admin", scope="node",
                                       path="/v1/principals/target-p",
                                       body={"disabled": False}),
    ("DELETE", "/v1/principals/{}"): dict(kind="decide", right="admin", scope="node",
                                          path="/v1/principals/target-p", ok=(204,)),
    ("POST", "/v1/tokens"): dict(kind="decide", right="admin", scope="node",
                                 body={"principal": "token-target"}, ok=(201,)),
    ("DELETE", "/v1/tokens/{}"): dict(kind="decide", right="admin", scope="node",
                                      prep=lambda n, w, d, p: n.json(
                                          "POST", "/v1/tokens", {"principal": "token-target"},
                                          expect=201)[1]["id"],
                                      path=lambda w, d, p, x: "/v1/tokens/" + x, ok=(204,)),
    ("POST", "/v1/roles"): dict(kind="decide", right="admin", scope="node",
                                body=lambda w, d, p, x: {"name": "role-by-" + w}, ok=(201,)),
    ("DELETE", "/v1/roles/{}"): dict(kind="decide", right="admin", scope="node",
                                     path="/v1/roles/scratch-gone", ok=(204,)),
    ("GET", "/v1/audit"): dict(kind="decide", right="audit", scope="node",
                               path="/v1/audit?limit=1"),
    ("GET", "/v1/audit/verify"): dict(kind="decide", right="audit", scope="node"),
    ("POST", "/v1/audit/verify"): dict(kind="decide", right="audit", scope="node"),
    ("GET", "/v1/keys"): dict(kind="decide", right="admin", scope="node"),
    # a field it does not know: refused after the decision, nothing rotated
    ("POST", "/v1/keys/rotate"): dict(kind="decide", right="admin", scope="node",
                                      body={"bogus": 1}, ok=(400,)),
    ("GET", "/v1/backups"): dict(kind="decide", right="admin", scope="node", ok=ANY),
    ("POST", "/v1/backups"): dict(kind="decide", right="admin", scope="node",
                                  body={"domains": ["no-such-domain"]}, ok=ANY),
    ("GET", "/v1/backups/{}"): dict(kind="decide", right="admin", scope="node",
                                    path="/v1/backups/ghost", ok=ANY),
    ("DELETE", "/v1/backups/{}"): dict(kind="decide", right="admin", scope="node",
                                       path="/v1/backups/ghost", ok=ANY),
    ("POST", "/v1/backups/{}/verify"): dict(kind="decide", right="admin", scope="node",
                                            path="/v1/backups/ghost/verify", ok=ANY),
    ("GET", "/v1/mqtt/status"): dict(kind="decide", right="admin", scope="node"),
    # whether a mapping exists is for those who could administer one to learn
    ("GET", "/v1/mqtt/mappings/{}"): dict(kind="decide", right="admin", scope="node",
                                          path="/v1/mqtt/mappings/ghost", ok=(404,)),
    ("DELETE", "/v1/mqtt/mappings/{}"): dict(kind="decide", right="admin", scope="node",
                                             path="/v1/mqtt/mappings/ghost", ok=(404,)),
    # a domain
    ("GET", "/v1/domains/{}"): dict(kind="decide", right="read", scope="domain",
                                    path="/v1/domains/{d}"),
    # the same hosts and mode again (none, no hosts): an allowed caller changes nothing
    ("PUT", "/v1/domains/{}"): dict(kind="decide", right="admin", scope="domain",
                                    path="/v1/domains/{d}", body={"replication": "none"},
                                    ok=(200,)),
    ("DELETE", "/v1/domains/{}"): dict(kind="decide", right="admin", scope="domain",
                                       path="/v1/domains/del-{w}-{d}", ok=(204,),
                                       # a domain of its own each time, owned by irene or not
                                       prep=lambda n, w, d, p: n.create_domain(
                                           "del-%s-%s" % (w, d),
                                           owners=["irene"] if d == "icu" else []),
                                       allow=lambda w, d, p: w == "admin"
                                       or w == "irene" and d == "icu"),
    ("POST", "/v1/contracts"): dict(kind="decide", right="admin", scope="domain",
                                    body=lambda w, d, p, x: contract_of(d), ok=(200, 201),
                                    headers={"Content-Type": "application/yaml"}),
    ("PUT", "/v1/contracts"): dict(kind="decide", right="admin", scope="domain",
                                   body=lambda w, d, p, x: contract_of(d), ok=(200, 201),
                                   headers={"Content-Type": "application/yaml"}),
    ("POST", "/v1/grants"): dict(kind="decide", right="admin", scope="domain",
                                 body=lambda w, d, p, x: {"role": "scratch", "action": "read",
                                                          "domain": d}, ok=(201,)),
    ("DELETE", "/v1/grants/{}"): dict(kind="decide", right="admin", scope="domain",
                                      prep=lambda n, w, d, p: n.json(
                                          "POST", "/v1/grants", {"role": "scratch",
                                                                 "action": "write",
                                                                 "domain": d},
                                          expect=201)[1]["id"],
                                      path=lambda w, d, p, x: "/v1/grants/%d" % x, ok=(204,)),
    ("POST", "/v1/masks"): dict(kind="decide", right="admin", scope="domain",
                                body=lambda w, d, p, x: {"domain": d, "product": MASK_COL[d][0],
                                                         "column": MASK_COL[d][1],
                                                         "type": "MASK_NULL",
                                                         "roles": ["scratch"]}, ok=(201,)),
    ("DELETE", "/v1/masks/{}"): dict(kind="decide", right="admin", scope="domain",
                                     prep=lambda n, w, d, p: n.json(
                                         "POST", "/v1/masks", {"domain": d,
                                                               "product": MASK_COL[d][0],
                                                               "column": MASK_COL[d][1],
                                                               "type": "MASK",
                                                               "roles": ["scratch"]},
                                         expect=201)[1]["id"],
                                     path=lambda w, d, p, x: "/v1/masks/%d" % x, ok=(204,)),
    ("POST", "/v1/row-filters"): dict(kind="decide", right="admin", scope="domain",
                                      body=lambda w, d, p, x: {"role": "scratch", "domain": d,
                                                               "product": MASK_COL[d][0],
                                                               "predicate": "1"}, ok=(201,)),
    ("DELETE", "/v1/row-filters/{}"): dict(kind="decide", right="admin", scope="domain",
                                           prep=lambda n, w, d, p: n.json(
                                               "POST", "/v1/row-filters",
                                               {"role": "scratch", "domain": d,
                                                "product": MASK_COL[d][0], "predicate": "0"},
                                               expect=201)[1]["id"],
                                           path=lambda w, d, p, x: "/v1/row-filters/%d" % x,
                                           ok=(204,)),
    ("POST", "/v1/rules"): dict(kind="decide", right="admin", scope="domain",
                                body=lambda w, d, p, x: "name: r-%s\ndomain: %s\nproduct: %s\n"
                                "kind: absence\nafter: 1h\n" % (w, d, MASK_COL[d][0]),
                                headers={"Content-Type": "application/yaml"}, ok=(200, 201)),
    ("GET", "/v1/rules/{}/{}"): dict(kind="decide", right="read", scope="domain",
                                     path="/v1/rules/{d}/ghost", ok=(404,)),
    ("DELETE", "/v1/rules/{}/{}"): dict(kind="decide", right="admin", scope="domain",
                                        path="/v1/rules/{d}/ghost", ok=(404,)),
    ("GET", "/v1/alerts/{}"): dict(kind="decide", right="read", scope="domain",
                                   path="/v1/alerts/{d}:999999", product=ALERTS, ok=(404,)),
    ("POST", "/v1/alerts/{}/{}"): dict(kind="decide", right="write", scope="domain",
                                       path="/v1/alerts/{d}:999999/ack", product=ALERTS,
                                       ok=(404,)),
    ("POST", "/v1/mqtt/mappings"): dict(kind="decide", right="admin", scope="domain",
                                        body=lambda w, d, p, x: {
                                            "name": "mm-%s-%s" % (w, d),
                                            "topic": "t/%s/%s/{x}" % (w, d),
                                            "domain": d, "product": MASK_COL[d][0],
                                            "principal": "rita"}, ok=ANY),
    ("POST", "/v1/derive/{}/{}"): dict(kind="decide", right="admin", scope="domain",
                                       path="/v1/derive/{d}/agg", ok=ANY,
                                       body={"aggregate": {"source": "nope", "bucket": "1m"}}),
    # a product
    ("GET", "/v1/products/{}/{}"): dict(kind="decide", right="read", scope="product"),
    ("DELETE", "/v1/products/{}/{}"): dict(kind="decide", right="admin", scope="product",
                                           path="/v1/products/{d}/ghost", product="ghost",
                                           ok=(404,)),
    ("GET", "/v1/products/{}/{}/contract"): dict(kind="decide", right="read", scope="product"),
    ("GET", "/v1/products/{}/{}/history"): dict(kind="decide", right="read", scope="product"),
    ("GET", "/v1/products/{}/{}/diff"): dict(kind="decide", right="read", scope="product",
                                             ok=ANY),
    ("GET", "/v1/products/{}/{}/quality"): dict(kind="decide", right="read", scope="product"),
    ("POST", "/v1/products/{}/{}/quality/run"): dict(kind="decide", right="admin",
                                                     scope="product", ok=ANY),
    ("POST", "/v1/products/{}/{}/rows"): dict(kind="decide", right="write", scope="product",
                                              body=lambda w, d, p, x: ROW_OF[(d, p)]),
    ("GET", "/v1/products/{}/{}/quarantine"): dict(kind="decide", right="admin",
                                                   scope="product"),
    ("POST", "/v1/products/{}/{}/quarantine/drop"): dict(kind="decide", right="admin",
                                                         scope="product", body={}, ok=ANY),
    ("DELETE", "/v1/products/{}/{}/quarantine/{}"): dict(
        kind="decide", right="admin", scope="product",
        path="/v1/products/{d}/{p}/quarantine/999999", ok=(404,)),
    # needs both: administering the product and writing it
    ("POST", "/v1/products/{}/{}/quarantine/{}/resubmit"): dict(
        kind="decide", right="admin", scope="product", also="write",
        path="/v1/products/{d}/{p}/quarantine/999999/resubmit", body={}, ok=(404,)),
    ("POST", "/v1/products/{}/{}/discover"): dict(kind="decide", right="admin",
                                                  scope="product", body={}, ok=ANY),
    ("GET", "/v1/products/{}/{}/classifications"): dict(kind="decide", right="read",
                                                        scope="product"),
    ("POST", "/v1/products/{}/{}/classifications/{}"): dict(
        kind="decide", right="admin", scope="product",
        path="/v1/products/{d}/{p}/classifications/reject", body={"columns": ["ts"]}, ok=ANY),
    ("GET", "/v1/lineage/{}/{}"): dict(kind="decide", right="read", scope="product",
                                       path="/v1/lineage/{d}/{p}"),
    ("POST", "/v1/rules/test"): dict(kind="decide", right="read", scope="product",
                                     body=lambda w, d, p, x: {
                                         "rule": "name: t\ndomain: %s\nproduct: %s\n"
                                                 "kind: absence\nafter: 1h\n" % (d, p),
                                         "rows": []}, ok=ANY),
    # governance: retention, legal holds, residency; retention passes; erasure
    ("GET", "/v1/governance/{}"): dict(kind="decide", right="read", scope="domain",
                                       path="/v1/governance/{d}"),
    ("PUT", "/v1/governance/{}"): dict(kind="decide", right="admin", scope="domain",
                                       path="/v1/governance/{d}", body={"retention": "contract"}),
    ("GET", "/v1/governance/{}/{}"): dict(kind="decide", right="read", scope="product"),
    ("PUT", "/v1/governance/{}/{}"): dict(kind="decide", right="admin", scope="product",
                                          body={"retention": "contract"}),
    ("POST", "/v1/retention/run"): dict(kind="decide", right="admin", scope="node", ok=ANY),
    ("POST", "/v1/products/{}/{}/erase"): dict(kind="decide", right="admin", scope="product",
                                               body={"where": "1 = 0"}, ok=ANY),
    ("POST", "/write"): dict(kind="decide", right="write", scope="product",
                             path="/write?db={d}", body=lambda w, d, p, x: LP_OF[(d, p)],
                             ok=(204,)),
    ("POST", "/api/v2/write"): dict(kind="decide", right="write", scope="product",
                                    path="/api/v2/write?bucket={d}",
                                    body=lambda w, d, p, x: LP_OF[(d, p)], ok=(204,)),
}


def server_routes():
    """The route table as meshd prints it (`meshd --help`, "Endpoints:"), each route with
    the methods it answers: a method no route takes gets 405 and the route's Allow header."""
    out = subprocess.run([MESHD, "--help"], capture_output=True, text=True)
    lines = (out.stdout + out.stderr).splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Endpoints"))
    patterns = []
    for line in lines[start + 1:]:
        words = line.split()
        if not words or not all(w.startswith("/") for w in words):
            break
        patterns += words
    return patterns


class AuthorisationMatrixTest(unittest.TestCase):
    """Every route x every kind of principal x every product or domain of the test: allowed or
    403, and the decision in the audit log under the answer's X-Request-Id. A node of its
    own: the matrix changes grants, writes rows and deletes things."""

    @classmethod
    def setUpClass(cls):
        cls.n = Node()
        cls.n.start()
        populate(cls)
        cls.tokens["admin"] = cls.n.token
        n = cls.n
        for role in ("scratch", "scratch-gone"):
            n.json("POST", "/v1/roles", {"name": role}, expect=201)
        for name in ("target-p", "token-target"):
            n.json("POST", "/v1/principals", {"name": name, "kind": "service"}, expect=201)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def methods_of(self, pattern):
        """A method the route does not take is refused before authentication with 405 and
        an Allow header; one it takes, without a token, with 401 (and does nothing)."""
        path = pattern.replace("{}", "x1")
        for m in ("DELETE", "PUT", "POST", "GET"):
            st, h, _ = self.n.request(m, path, token="")
            if st == 405:
                return [a.strip() for a in h["allow"].split(",")]
        self.fail("%s takes every method" % pattern)

    def test_authorisation_matrix(self):
        n = self.n
        routes = [(m, p) for p in server_routes() for m in self.methods_of(p)]
        self.assertGreater(len(routes), 80)
        unclassified = [r for r in routes if r not in R]
        self.assertEqual(unclassified, [], "routes the matrix does not classify: add them to R")
        stale = [r for r in R if r not in routes]
        self.assertEqual(stale, [], "R classifies routes the server no longer has")
        first = n.json("GET", "/v1/audit?limit=1", expect=200)[1]["records"][0]["seq"]
        failures = []
        expect = []  # (request id, what, action wanted or None, rights wanted)
        asked = 0

        def check(what, who, method, path, body, headers, spec, allowed, rights):
            nonlocal asked
            st, h, data = n.request(method, path, body, headers=headers,
                                    token=self.tokens[who] if spec["kind"] != "public" else "")
            asked += 1
            rid = h.get("x-request-id")
            ok = spec.get("ok", (200,))
            line = "%s %s by %s -> %d %s" % (method, path, who, st, data[:160])
            if not rid:
                failures.append("no X-Request-Id: " + line)
            if allowed:
                good = (st not in (401, 403) and st < 500) if ok == ANY else st in ok
                if not good:
                    failures.append("allowed, wanted %s: %s" % (ok, line))
            elif st != 403:
                failures.append("denied, wanted 403: " + line)
            expect.append((rid, line, allowed, rights))

        for (method, pattern) in routes:
            spec = R[(method, pattern)]
            kind = spec["kind"]
            if kind in ("public", "caller"):
                for who in MATRIX_WHO if kind == "caller" else ["nobody"]:
                    check(pattern, who, method, pattern, spec.get("body"), None, spec, True, None)
                continue
            if kind == "query":
                continue  # below
            scope = spec["scope"]
            targets = [(None, None)] if scope == "node" else \
                [(d, None) for d in DOMAINS] if scope == "domain" else PRODUCTS
            for d, p in targets:
                for who in MATRIX_WHO:
                    x = spec["prep"](n, who, d, p) if "prep" in spec else None
                    path = spec.get("path", pattern.replace("{}", "{d}", 1).replace("{}", "{p}"))
                    path = path(who, d, p, x) if callable(path) else \
                        path.format(d=d, p=p, w=who)
                    body = spec.get("body")
                    body = body(who, d, p, x) if callable(body) else body
                    dom = spec["domain"](who, d) if "domain" in spec else d
                    prod = spec.get("product", p)
                    if "allow" in spec:
                        allowed = spec["allow"](who, d, p)
                    else:
                        allowed = may(who, spec["right"], dom, prod) and \
                            ("also" not in spec or may(who, spec["also"], dom, prod))
                    rights = [spec["right"]] + ([spec["also"]] if "also" in spec and allowed
                                                else [])
                    check(pattern, who, method, path, body, spec.get("headers"), spec, allowed,
                          rights)
        # SQL: a product one may not read does not exist for one
        queries = []
        for method in ("GET", "POST"):
            for d, p in PRODUCTS:
                for who in MATRIX_WHO:
                    sql = "SELECT count(*) FROM %s.%s" % (d, p)
                    if method == "GET":
                        st, h, data = n.request("GET", "/v1/query?sql=" +
                                                urllib.parse.quote(sql), token=self.tokens[who])
                    else:
                        st, h, data = n.request("POST", "/v1/query", {"sql": sql},
                                                token=self.tokens[who])
                    asked += 1
                    allowed = may(who, "read", d, p)
                    line = "%s query %s.%s by %s -> %d %s" % (method, d, p, who, st, data[:160])
                    if allowed and st != 200 or not allowed and \
                            (st != 400 or b"no such table" not in data):
                        failures.append(line)
                    queries.append((h.get("x-request-id"), line, allowed))
        # the audit log, read in pages after the matrix: every decision is there
        by_rid = {}
        after = first
        while True:
            doc = n.json("GET", "/v1/audit?order=asc&limit=10000&after_seq=%d" % after,
                         expect=200)[1]
            for rec in doc["records"]:
                by_rid.setdefault(rec.get("request_id"), []).append(rec)
            if not doc["more"]:
                break
            after = doc["next"]["after_seq"]

        def details(rec):
            dt = rec.get("details")
            return json.loads(dt) if isinstance(dt, str) else (dt or {})

        for rid, line, allowed, rights in expect:
            recs = by_rid.get(rid, [])
            authz = [(r["action"], details(r).get("right")) for r in recs
                     if r["action"].startswith("authz.")]
            if rights is None:  # no decision to record; above all no denial
                if any(a == "authz.deny" for a, _ in authz):
                    failures.append("a denial recorded for an allowed call: " + line)
                continue
            if allowed:
                want = [("authz.allow", r) for r in rights]
                if [a for a in authz if a[0] == "authz.allow"] != want or \
                        any(a == "authz.deny" for a, _ in authz):
                    failures.append("audit %s, wanted %s: %s" % (authz, want, line))
            elif ("authz.deny", rights[0]) not in authz:
                failures.append("audit %s, wanted authz.deny %s: %s" % (authz, rights[0], line))
        for rid, line, allowed in queries:
            recs = [r for r in by_rid.get(rid, []) if r["action"] == "query"]
            if len(recs) != 1:
                failures.append("no query event: " + line)
                continue
            err = details(recs[0]).get("error")
            if allowed == bool(err):
                failures.append("query event error %r: %s" % (err, line))
        self.maxDiff = None
        self.assertEqual(failures, [], "%d of %d requests" % (len(failures), asked))


if __name__ == "__main__":
    unittest.main(verbosity=2)
