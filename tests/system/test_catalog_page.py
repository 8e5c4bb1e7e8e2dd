#!/usr/bin/python3
"""A product's catalog page on a real meshd (docs/api.md "Catalog", `meshctl product show`):
contract, quality, freshness, lineage (upstream, downstream, what the caller may not see),
classifications (the contract's and the approved) and policies (retention, legal hold,
residency, egress); and search and browse by owner, tag, classification and quality
(`meshctl catalog`)."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node  # noqa: E402

SOURCE = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:icu:vitals
version: 1.2.0
status: active
domain: icu
tags: [clinical]
slaProperties:
  - property: latency
    value: 1
    unit: d
schema:
  - name: vitals
    description: bedside vitals per patient
    customProperties:
      - property: egress
        value: aggregates-only
      - property: privacyUnit
        value: patient_id
      - property: minGroupSize
        value: 5
    properties:
      - name: patient_id
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
        classification: restricted
        tags: [PHI]
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: hr
        logicalType: integer
        classification: confidential
        quality:
          - metric: nullValues
            mustBeLessThan: 1
      - name: note
        logicalType: string
"""


def meshctl(node, *args, token=None):
    out = subprocess.run([meshlib.MESHCTL, "--url", node.url, "--token", token or node.token] +
                         list(args), capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("meshctl %s -> %d: %s %s" % (args, out.returncode, out.stdout,
                                                          out.stderr))
    return out.stdout


class CatalogPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = n = Node(tls=False).start()
        n.json("POST", "/v1/domains", {"name": "icu", "owners": ["ward@hospital.example"]},
               expect=201)
        n.json("POST", "/v1/domains", {"name": "plant", "owners": ["ops@plant.example"]},
               expect=201)
        n.apply(SOURCE, expect=201)
        n.apply(meshlib.contract(domain="plant"), expect=201)
        now = time.time_ns()
        rows = [{"patient_id": "p-%d" % (i % 7), "ts": now - i * 10**9, "hr": 60 + i,
                 "note": "n"} for i in range(50)]
        st, doc = n.post_rows("icu", "vitals", rows)
        assert st == 200, doc
        meshctl(n, "product", "derive", "icu.vitals_1h", "--source", "vitals", "--bucket", "1h",
                "--column", "hr")
        n.json("POST", "/v1/products/icu/vitals/quality/run", {}, expect=200)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def page(self, product, token=None):
        st, _, body = self.n.request("GET", "/v1/products/icu/%s" % product, token=token)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def test_1_page(self):
        n = self.n
        n.json("PUT", "/v1/governance/icu/vitals", {"retention": "90d", "residency": "local"},
               expect=200)
        n.json("PUT", "/v1/governance/icu", {"legal_hold": True, "reason": "audit 2026"},
               expect=200)
        p = self.page("vitals")
        self.assertEqual(p["contract"]["id"], "urn:test:icu:vitals")
        self.assertEqual(p["contract"]["version"], "1.2.0")
        self.assertEqual(p["owners"], ["ward@hospital.example"])
        # quality and freshness
        self.assertIsNotNone(p["quality"]["score"])
        self.assertEqual(p["quality"]["rules_failed"], 0)
        self.assertIn("freshness", p["quality"])
        self.assertIn("latency_ok", p["quality"]["freshness"])
        # lineage
        self.assertEqual(p["lineage"]["derived"], False)
        self.assertEqual(p["lineage"]["upstream"], [])
        self.assertEqual(p["lineage"]["downstream"], ["icu.vitals_1h"])
        # classifications
        c = p["classifications"]
        self.assertEqual(c["classification"], "restricted")
        self.assertIn("PHI", c["tags"])
        cols = {x["name"]: x for x in c["columns"]}
        self.assertEqual(cols["patient_id"]["classification"], "restricted")
        self.assertEqual(cols["hr"]["classification"], "confidential")
        self.assertNotIn("note", cols)
        # policies: the effective retention, hold, residency and the contract's egress
        pol = p["policies"]
        self.assertEqual(pol["retention_s"], 90 * 86400)
        self.assertEqual(pol["legal_hold"], True)
        self.assertEqual(pol["held_on"], "domain icu")
        self.assertEqual(pol["hold_reason"], "audit 2026")
        self.assertEqual(pol["residency"], "local")
        self.assertEqual(pol["egress"], "aggregates-only")
        self.assertEqual(pol["min_group_size"], 5)
        self.assertEqual(pol["privacy_unit"], "patient_id")
        # the aggregate's page: upstream, its own policies
        a = self.page("vitals_1h")
        self.assertEqual(a["lineage"]["derived"], True)
        self.assertEqual(a["lineage"]["kind"], "aggregate")
        self.assertEqual(a["lineage"]["upstream"], ["icu.vitals"])
        self.assertEqual(a["lineage"]["downstream"], [])
        self.assertIsNone(a["policies"]["retention_s"])
        self.assertEqual(a["policies"]["egress"], "any")
        # the same page from meshctl
        out = meshctl(n, "product", "show", "icu.vitals")
        for want in ("downstream      icu.vitals_1h", "classification  restricted (tags: PHI)",
                     "retention       90d", "legal hold      HELD on domain icu: audit 2026",
                     "residency       local", "egress          aggregates-only (groups of at "
                     "least 5 distinct patient_id)", "restricted [PHI]", "quality "):
            self.assertIn(want, out)
        out = meshctl(n, "product", "show", "icu.vitals_1h")
        self.assertIn("upstream        icu.vitals", out)
        self.assertIn("derived         aggregate", out)
        n.json("PUT", "/v1/governance/icu", {"legal_hold": False}, expect=200)

    def test_2_hidden_lineage(self):
        """A caller that may read the aggregate only sees its page, its source counted as
        hidden, never named."""
        n = self.n
        n.json("POST", "/v1/roles", {"name": "viewer"}, expect=201)
        n.json("POST", "/v1/principals", {"name": "dash", "kind": "service",
                                          "roles": ["viewer"]}, expect=201)
        tok = n.json("POST", "/v1/tokens", {"principal": "dash"}, expect=201)[1]["token"]
        n.json("POST", "/v1/grants", {"role": "viewer", "action": "read", "domain": "icu",
                                      "product": "vitals_1h"}, expect=201)
        a = self.page("vitals_1h", token=tok)
        self.assertEqual(a["lineage"]["upstream"], [])
        self.assertEqual(a["lineage"]["hidden"], 1)
        st, _, _ = n.request("GET", "/v1/products/icu/vitals", token=tok)
        self.assertEqual(st, 403)
        out = meshctl(n, "product", "show", "icu.vitals_1h", token=tok)
        self.assertIn("1 products you may not read", out)
        self.assertNotIn("icu.vitals ", out.replace("icu.vitals_1h", ""))

    def test_3_search_and_browse(self):
        n = self.n

        def names(q):
            st, doc = n.json("GET", "/v1/catalog" + q, expect=200)
            return sorted(p["sql_name"] for p in doc["products"])

        self.assertEqual(names(""), ["icu.vitals", "icu.vitals_1h", "plant.readings"])
        self.assertEqual(names("?owner=ward@hospital.example"), ["icu.vitals", "icu.vitals_1h"])
        self.assertEqual(names("?owner=ops@plant.example"), ["plant.readings"])
        # the aggregate's patient_id inherited PHI and restricted along lineage (identity)
        self.assertEqual(names("?tag=PHI"), ["icu.vitals", "icu.vitals_1h"])
        self.assertEqual(names("?tag=clinical"), ["icu.vitals"])
        self.assertEqual(names("?classification=restricted"), ["icu.vitals", "icu.vitals_1h"])
        self.assertEqual(names("?classification=internal"), [])
        self.assertEqual(names("?q=phi"), ["icu.vitals", "icu.vitals_1h"])  # a column's tag
        measured = names("?min_quality=50")  # plant.readings was never measured
        self.assertIn("icu.vitals", measured)
        self.assertNotIn("plant.readings", measured)
        self.assertEqual(names("?min_quality=100.0&owner=ops@plant.example"), [])
        st, doc = n.json("GET", "/v1/catalog?q=vitals", expect=200)
        by = {p["sql_name"]: p for p in doc["products"]}
        self.assertEqual(by["icu.vitals"]["classifications"]["classification"], "restricted")
        self.assertIsNotNone(by["icu.vitals"]["quality_score"])
        # meshctl: browse, and the filters
        out = meshctl(n, "catalog")
        for want in ("icu.vitals", "icu.vitals_1h", "plant.readings", "QUALITY", "CLASS"):
            self.assertIn(want, out)
        out = meshctl(n, "catalog", "--min-quality", "50")
        self.assertIn("icu.vitals ", out)
        self.assertNotIn("plant.readings", out)
        out = meshctl(n, "catalog", "--owner", "ops@plant.example", "--format", "csv")
        self.assertEqual(out.splitlines()[0],
                         "product,rows,last_write,columns,quality,classification,description")
        self.assertIn("plant.readings", out)
        out = meshctl(n, "catalog", "--tag", "PHI", "--classification", "restricted")
        self.assertIn("icu.vitals", out)
        self.assertNotIn("plant.readings", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
