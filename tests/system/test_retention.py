"""Retention, legal holds and erasure against a real meshd (docs/governance.md).

- retention deletes expired rows of a row-layout product and of a time series in bounded
  batches (each a log record, each audited) and gives the space back (the file shrinks);
- a legal hold on the domain or the product stops retention and refuses erasure;
- `meshctl erase --where` removes exactly the matching rows (counts, audit record) and refuses
  a condition that is not one expression;
- kill -9 after an acknowledged erasure (rows still buffered in memory) and during a
  retention pass: after restart the state is consistent and erased rows stay erased.
"""
import json
import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node  # noqa: E402

HOUR = 3600 * 10**9
DAY = 24 * HOUR


def contract(retention="1h"):
    return """apiVersion: v3.1.0
kind: DataContract
id: urn:test:icu
version: 1.0.0
status: active
domain: icu
schema:
  - name: vitals
    customProperties:
      - property: retention
        value: %(r)s
    properties:
      - name: patient_id
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: hr
        logicalType: integer
  - name: notes
    customProperties:
      - property: retention
        value: %(r)s
    properties:
      - name: id
        logicalType: integer
        primaryKey: true
      - name: patient_id
        logicalType: string
      - name: ts
        logicalType: timestamp
      - name: text
        logicalType: string
""" % {"r": retention}


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + "Z"


class Retention(unittest.TestCase):
    def start(self, **kw):
        args = ["--retention-interval", "0", "--retention-batch", "100",
                "--checkpoint-interval", "1s"]
        n = Node(args=args, **kw).start()
        self.addCleanup(n.destroy)
        return n

    def setup_domain(self, n):
        n.create_domain("icu")
        n.apply(contract(), expect=201)

    def load(self, n, old_per_patient=300, new_per_patient=50, patients=6, pad=0):
        now = time.time_ns()
        vit, notes, nid = [], [], 0
        for p in range(patients):
            for i in range(old_per_patient):
                t = now - 2 * DAY + (p * 100000 + i) * 10**6
                vit.append({"patient_id": "p-%d" % p, "ts": t, "hr": 60 + i % 40})
                nid += 1
                notes.append({"id": nid, "patient_id": "p-%d" % p, "ts": t,
                              "text": "x" * pad})
            for i in range(new_per_patient):
                t = now - 10 * 60 * 10**9 + (p * 1000 + i) * 10**6
                vit.append({"patient_id": "p-%d" % p, "ts": t, "hr": 70})
                nid += 1
                notes.append({"id": nid, "patient_id": "p-%d" % p, "ts": t, "text": "new"})
        for prod, rows in (("vitals", vit), ("notes", notes)):
            for k in range(0, len(rows), 2000):
                st, doc = n.post_rows("icu", prod, rows[k:k + 2000])
                self.assertEqual(st, 200, doc)
        return now

    def count(self, n, prod, where="1"):
        return n.scalar("SELECT count(*) FROM icu.%s WHERE %s" % (prod, where))

    def audit(self, n, action):
        st, doc = n.json("GET", "/v1/audit?" + urllib.parse.urlencode(
            {"action": action, "limit": "10000", "order": "asc"}))
        self.assertEqual(st, 200, doc)
        return doc["records"]

    def meshctl(self, n, *args, expect=0):
        env = dict(os.environ, MESH_TOKEN=n.token, MESH_URL=n.url,
                   MESH_CACERT=n.cafile)
        out = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=env)
        self.assertEqual(out.returncode, expect, out.stdout + out.stderr)
        return out.stdout

    def test_retention_batches_hold_and_space(self):
        n = self.start()
        self.setup_domain(n)
        self.load(n, pad=2000)
        self.assertEqual(self.count(n, "vitals"), 6 * 350)
        self.assertEqual(self.count(n, "notes"), 6 * 350)
        # a hold on the domain: nothing goes
        n.json("PUT", "/v1/governance/icu", {"legal_hold": True, "reason": "case 17"}, expect=200)
        rep = n.json("POST", "/v1/retention/run", {}, expect=200)[1]["products"]
        self.assertTrue(all(p["held"] and p["deleted"] == 0 for p in rep), rep)
        self.assertEqual(self.count(n, "vitals"), 6 * 350)
        # erasure is refused under the hold too, with the reason
        st, doc = n.json("POST", "/v1/products/icu/vitals/erase", {"where": "patient_id = 'p-1'"})
        self.assertEqual(st, 409, doc)
        self.assertIn("legal hold", doc["error"]["message"])
        self.assertIn("case 17", doc["error"]["message"])
        # released: retention deletes in batches of 100 (retention_batch) and audits each
        self.meshctl(n, "governance", "icu", "--release")
        db = os.path.join(n.data_dir, "domains", "icu", "data.db")
        before = os.path.getsize(db)
        rep = n.json("POST", "/v1/retention/run", {}, expect=200)[1]["products"]
        by = {p["product"]: p for p in rep}
        self.assertEqual(by["notes"]["deleted"], 6 * 300)
        self.assertGreaterEqual(by["notes"]["batches"], 18)
        self.assertEqual(by["vitals"]["deleted"], 6 * 300)
        self.assertEqual(self.count(n, "vitals"), 6 * 50)
        self.assertEqual(self.count(n, "notes"), 6 * 50)
        cutoff = time.time_ns() - HOUR - 60 * 10**9
        self.assertEqual(self.count(n, "vitals", "ts < %d" % cutoff), 0)
        recs = self.audit(n, "dispose.retention")
        notes = [r for r in recs if r.get("product") == "notes"]
        self.assertGreaterEqual(len(notes), 18)
        det = notes[0]["details"]
        det = json.loads(det) if isinstance(det, str) else det
        self.assertEqual(det["why"], "retention")
        self.assertLessEqual(det["rows"], 100)
        self.assertEqual(sum((json.loads(r["details"]) if isinstance(r["details"], str)
                              else r["details"])["rows"] for r in notes), 6 * 300)
        # the space comes back: the file shrinks once the WAL is checkpointed
        n.stop()
        after = os.path.getsize(db)
        self.assertLess(after, before * 0.6, (before, after))
        print("database file: %d bytes before retention, %d after" % (before, after))
        # and a second pass finds nothing
        n.start()
        rep = n.json("POST", "/v1/retention/run", {}, expect=200)[1]["products"]
        self.assertTrue(all(p["deleted"] == 0 for p in rep), rep)

    def test_product_policy_overrides_contract(self):
        n = self.start()
        self.setup_domain(n)
        self.load(n, old_per_patient=10, new_per_patient=5, patients=2)
        # kept forever by the product policy; held product-level for notes
        self.meshctl(n, "governance", "icu.vitals", "--retention", "forever")
        self.meshctl(n, "governance", "icu.notes", "--hold", "audit 2026")
        out = self.meshctl(n, "governance", "icu.notes")
        self.assertIn("legal hold: on: audit 2026", out)
        out = self.meshctl(n, "retention", "run")
        self.assertIn("icu.notes: held", out)
        self.assertEqual(self.count(n, "vitals"), 30)
        self.assertEqual(self.count(n, "notes"), 30)
        self.assertEqual(len(self.audit(n, "admin.governance")), 2)
        # a hold needs a reason; unknown fields are refused
        st, _ = n.json("PUT", "/v1/governance/icu", {"legal_hold": True})
        self.assertEqual(st, 400)
        st, _ = n.json("PUT", "/v1/governance/icu", {"retention": "soon"})
        self.assertEqual(st, 400)

    def test_erase(self):
        n = self.start()
        self.setup_domain(n)
        self.load(n, old_per_patient=20, new_per_patient=10, patients=4)
        out = self.meshctl(n, "erase", "icu.vitals", "--where", "patient_id = 'p-2'")
        self.assertIn("30 rows matched, 30 erased", out)
        self.assertEqual(self.count(n, "vitals", "patient_id = 'p-2'"), 0)
        self.assertEqual(self.count(n, "vitals"), 90)
        st, doc = n.json("POST", "/v1/products/icu/notes/erase",
                         {"where": "patient_id = 'p-1' AND text = 'new'"}, expect=200)
        self.assertEqual((doc["matched"], doc["deleted"]), (10, 10))
        self.assertEqual(self.count(n, "notes"), 110)
        recs = self.audit(n, "dispose.erasure")
        self.assertEqual(len(recs), 2)
        det = recs[0]["details"]
        det = json.loads(det) if isinstance(det, str) else det
        self.assertEqual((det["why"], det["rows"], det["where"]),
                         ("erasure", 30, "patient_id = 'p-2'"))
        # untrusted SQL: one expression only, never a statement tail
        for bad in ["1); DELETE FROM x; --", "1 UNION SELECT 1", "patient_id = 'p-1') OR (1"]:
            st, doc = n.json("POST", "/v1/products/icu/notes/erase", {"where": bad})
            self.assertEqual(st, 400, (bad, doc))
        self.assertEqual(self.count(n, "notes"), 110)
        # bounded input
        st, _ = n.json("POST", "/v1/products/icu/notes/erase", {"where": "1=1" + " " * 5000})
        self.assertEqual(st, 400)
        st, _ = n.json("POST", "/v1/products/icu/notes/erase", {"where": "1", "x": 1})
        self.assertEqual(st, 400)
        # needs admin on the product
        n.json("POST", "/v1/principals", {"name": "reader", "kind": "user", "roles": ["viewer"]})
        tok = n.json("POST", "/v1/tokens", {"principal": "reader"})[1]
        if tok and "token" in tok:
            st, _ = n.json("POST", "/v1/products/icu/notes/erase", {"where": "1"},
                           token=tok["token"])
            self.assertIn(st, (403, 404))
        self.assertEqual(self.count(n, "notes"), 110)

    def test_kill9_after_erase_and_during_retention(self):
        n = self.start()
        self.setup_domain(n)
        self.load(n, old_per_patient=400, new_per_patient=30, patients=5)
        # the recent rows of the time series are still buffered in memory: erase some, then
        # kill -9 before any checkpoint could write the buffers out
        st, doc = n.json("POST", "/v1/products/icu/vitals/erase",
                         {"where": "patient_id = 'p-3' OR hr = 70 AND patient_id = 'p-4'"},
                         expect=200)
        # p-3's 430 rows, p-4's 30 recent ones and its 10 old ones with hr 70
        self.assertEqual(doc["deleted"], 430 + 30 + 10)
        n.kill()
        n.start()
        self.assertEqual(self.count(n, "vitals", "patient_id = 'p-3'"), 0)
        self.assertEqual(self.count(n, "vitals", "patient_id = 'p-4'"), 390)
        self.assertEqual(self.count(n, "vitals"), 5 * 430 - 470)
        # kill -9 while a retention pass runs (each batch is atomic and in the log)
        def run():
            try:
                n.request("POST", "/v1/retention/run", {})
            except OSError:
                pass  # killed under it
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.05)
        n.kill()
        t.join()
        n.start()
        left = self.count(n, "notes")
        self.assertEqual((left - 5 * 30) % 100 if left > 5 * 30 else 0, 0,
                         "a partial batch is visible: %d rows" % left)
        n.json("POST", "/v1/retention/run", {}, expect=200)
        self.assertEqual(self.count(n, "notes"), 5 * 30)
        self.assertEqual(self.count(n, "vitals"), 4 * 30 - 30)
        ok = n.rows("SELECT count(*) FROM icu.vitals WHERE patient_id = 'p-0' AND hr = 70")
        self.assertEqual(ok[0][0], 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
