#!/usr/bin/env python3
"""Classification discovery end to end on a real meshd (TLS on): a product with sensitive and
ordinary columns, realistic values (with Luhn-invalid card-like numbers and IBANs with a wrong
check that must not be flagged), discovery by the domain's owner (the expected suggestions and
confidences; no sampled value in any answer, in the audit log or in meshd's log), refusals for
others, approval that makes a mask targeting a tag apply at once to a reader whose query
session is already open, rejection that sticks, removal, audit records, and meshctl's
discover and classify commands in every format."""
import csv
import io
import json
import os
import random
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node  # noqa: E402

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:clinic
version: 1.0.0
status: active
domain: clinic
name: patients
schema:
  - name: patients
    logicalType: object
    properties:
      - name: id
        logicalType: integer
        primaryKey: true
        primaryKeyPosition: 1
      - name: email
        logicalType: string
      - name: phone
        logicalType: string
      - name: card
        logicalType: string
      - name: order_ref
        logicalType: string
      - name: iban
        logicalType: string
      - name: account_ref
        logicalType: string
      - name: client_ip
        logicalType: string
      - name: mac
        logicalType: string
      - name: ssn
        logicalType: string
      - name: patient_name
        logicalType: string
      - name: dob
        logicalType: date
      - name: mrn
        logicalType: string
      - name: lat
        logicalType: number
      - name: lon
        logicalType: number
      - name: temp
        logicalType: number
      - name: status
        logicalType: string
      - name: ward
        logicalType: string
        classification: internal
      - name: device
        logicalType: string
        tags: [asset]
"""

FIRST = ["Alice", "Bruno", "Chloe", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Karin", "Liam", "Mona", "Nils", "Olga", "Pavel", "Quentin", "Rosa", "Sven", "Tara"]
LAST = ["Martin", "Keller", "Dubois", "Ivanov", "Rossi", "Haddad", "Berg", "Moreau", "Silva",
        "Weber", "Novak", "Larsen", "Costa", "Fischer", "Petit", "Horvat", "Lambert", "Meyer"]


def luhn_digit(body):
    """The check digit that makes body + digit pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def iban(cc, bban, good=True):
    rearranged = bban + cc + "00"
    num = int("".join(str(int(ch, 36)) for ch in rearranged))
    check = 98 - num % 97
    if not good:
        check = (check % 97) + 1  # any other check fails mod 97
    return "%s%02d%s" % (cc, check, bban)


def make_rows(n=40, seed=7):
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        prefix = rnd.choice(["4", "51", "52", "55", "37", "6011"])
        length = 15 if prefix == "37" else 16
        body = prefix + "".join(rnd.choice("0123456789") for _ in range(length - len(prefix) - 1))
        card = body + luhn_digit(body)
        bad = body + str((int(luhn_digit(body)) + 1 + rnd.randrange(8)) % 10)
        cc, blen = rnd.choice([("DE", 18), ("FR", 23), ("GB", 18), ("NL", 14)])
        if cc == "GB":
            bban = "WEST" + "".join(rnd.choice("0123456789") for _ in range(14))
        elif cc == "NL":
            bban = "ABNA" + "".join(rnd.choice("0123456789") for _ in range(10))
        else:
            bban = "".join(rnd.choice("0123456789") for _ in range(blen))
        phones = ["+33 6 %02d %02d %02d %02d" % tuple(rnd.randrange(100) for _ in range(4)),
                  "+1 (555) %03d-%04d" % (rnd.randrange(200, 999), rnd.randrange(10000)),
                  "0%d %02d %02d %02d %02d" % ((rnd.randrange(1, 8),) +
                                               tuple(rnd.randrange(100) for _ in range(4))),
                  "+4179%07d" % rnd.randrange(10**7)]
        ip = ("10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
              if i % 4 else "2001:db8:%x::%x" % (rnd.randrange(65536), rnd.randrange(1, 65536)))
        rows.append({
            "id": i + 1,
            "email": "%s.%s%d@example.org" % (first.lower(), last.lower(), i),
            "phone": phones[i % 4],
            "card": card if i % 3 else " ".join(card[k:k + 4] for k in range(0, len(card), 4)),
            "order_ref": bad,
            "iban": iban(cc, bban),
            "account_ref": iban(cc, bban, good=False),
            "client_ip": ip,
            "mac": ":".join("%02x" % rnd.randrange(1, 256) for _ in range(6)),
            "ssn": "%03d-%02d-%04d" % (rnd.randrange(1, 665), rnd.randrange(1, 99),
                                       rnd.randrange(1, 9999)),
            "patient_name": "%s %s" % (first, last),
            "dob": "%04d-%02d-%02d" % (rnd.randrange(1930, 2006), rnd.randrange(1, 13),
                                       rnd.randrange(1, 29)),
            "mrn": "MRN-%07d" % rnd.randrange(10**7),
            "lat": round(rnd.uniform(43.0, 51.0), 6),
            "lon": round(rnd.uniform(-1.5, 7.5), 6),
            "temp": round(rnd.uniform(35.5, 39.5), 1),
            "status": rnd.choice(["ok", "warn", "fail"]),
            "ward": rnd.choice(["A", "B", "C"]),
            "device": "dev-%02d" % rnd.randrange(1, 12),
        })
    return rows


SENSITIVE = ["email", "phone", "card", "order_ref", "iban", "account_ref", "client_ip", "mac",
             "ssn", "patient_name", "dob", "mrn"]

# column -> (info type, lowest confidence expected)
EXPECTED = {
    "email": ("email", 0.95),
    "phone": ("phone", 0.95),
    "card": ("card_number", 0.95),
    "iban": ("iban", 0.95),
    "client_ip": ("ip_address", 0.95),
    "mac": ("mac_address", 0.95),
    "ssn": ("national_id", 0.95),
    "patient_name": ("person_name", 0.95),
    "dob": ("date_of_birth", 0.85),
    "mrn": ("medical_record_number", 0.85),
    "lat": ("location", 0.95),
    "lon": ("location", 0.95),
}
NOT_FLAGGED = ["id", "order_ref", "account_ref", "temp", "status", "ward", "device"]


class DiscoverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node()
        n = cls.n.start()
        n.create_domain("clinic", owners=["olivia"])
        n.apply(CONTRACT, expect=201)
        cls.rows = make_rows()
        st, doc = n.post_rows("clinic", "patients", cls.rows)
        assert st == 200, doc
        # every distinctive sampled value: none may ever leave the node
        cls.values = set()
        for r in cls.rows:
            for c in SENSITIVE:
                cls.values.add(str(r[c]))
        n.json("POST", "/v1/roles", {"name": "analyst"}, expect=201)
        cls.tokens = {}
        for name, roles in {"olivia": [], "rita": ["reader"], "ana": ["analyst"],
                            "nobody": []}.items():
            n.json("POST", "/v1/principals", {"name": name, "kind": "service", "roles": roles},
                   expect=201)
            cls.tokens[name] = n.json("POST", "/v1/tokens", {"principal": name},
                                      expect=201)[1]["token"]
        cls.tokens["admin"] = n.token
        n.json("POST", "/v1/grants", {"role": "analyst", "action": "read", "domain": "clinic",
                                      "product": "patients"}, expect=201)
        # masks that target tags, made before anything is tagged (the domain's beats the mesh's)
        n.json("POST", "/v1/masks", {"domain": "clinic", "tag": "card_number",
                                     "type": "MASK_SHOW_LAST_4", "roles": ["analyst"]},
               expect=201)
        n.json("POST", "/v1/masks", {"tag": "PII", "type": "MASK", "roles": ["analyst"]},
               expect=201)
        cls.bodies = []  # every answer of the classification API, checked for values

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def call(self, who, method, path, body=None, expect=None):
        st, _, data = self.n.request(method, path, body, token=self.tokens[who])
        self.bodies.append(data.decode("utf-8", "replace"))
        if expect is not None and st != expect:
            self.fail("%s %s as %s -> %d (expected %d): %s" % (method, path, who, st, expect,
                                                               data[:1000]))
        return st, (json.loads(data) if data.strip() else None)

    def q(self, who, sql):
        st, doc = self.call(who, "POST", "/v1/query", {"sql": sql}, expect=200)
        return doc["rows"]

    def assert_no_values(self, text, where):
        found = [v for v in self.values if v in text]
        if found:
            self.fail("%s holds sampled values: %s" % (where, found[:5]))

    def meshctl(self, *args, token="olivia", expect=0):
        env = dict(os.environ)
        env.update({"MESH_URL": self.n.url, "MESH_TOKEN": self.tokens[token],
                    "MESH_CACERT": self.n.cafile})
        env.pop("MESH_PIN", None)
        p = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=env)
        self.bodies.append(p.stdout + p.stderr)
        if p.returncode != expect:
            self.fail("meshctl %s -> %d (expected %d)\n%s%s" % (" ".join(args), p.returncode,
                                                               expect, p.stdout, p.stderr))
        return p.stdout

    def discover(self, who="olivia", body=None, expect=200):
        return self.call(who, "POST", "/v1/products/clinic/patients/discover",
                         body if body is not None else {}, expect=expect)[1]

    def classifications(self, who="olivia"):
        doc = self.call(who, "GET", "/v1/products/clinic/patients/classifications",
                        expect=200)[1]
        return {c["name"]: c for c in doc["columns"]}, doc

    # The tests run in name order: t1 (discover) before t2 (approve) and so on.

    def test_t1_discover_suggests(self):
        doc = self.discover()
        self.assertEqual(doc["sampled"], len(self.rows))
        cols = {c["name"]: c for c in doc["columns"]}
        for col, (itype, low) in EXPECTED.items():
            sug = cols[col]["suggestions"]
            self.assertTrue(sug, "%s: no suggestion" % col)
            best = sug[0]
            self.assertEqual(best["info_type"], itype, "%s: %s" % (col, sug))
            self.assertGreaterEqual(best["confidence"], low, "%s: %s" % (col, best))
            self.assertLessEqual(best["confidence"], 1.0)
            self.assertEqual(best["status"], "pending")
            self.assertIn("PII", best["tags"])
            self.assertGreater(best["matched"], 0)
        # the checksums keep look-alikes out
        for col in NOT_FLAGGED:
            self.assertEqual(cols[col]["suggestions"], [], "%s: %s" % (col, cols[col]))
            self.assertIsNone(cols[col]["classification"])
        self.assertEqual(cols["card"]["classification"], "restricted")
        self.assertEqual(cols["email"]["classification"], "confidential")
        self.assertIn("PHI", cols["mrn"]["suggestions"][0]["tags"])
        self.assertEqual(cols["card"]["suggestions"][0]["matched"], len(self.rows))
        # a smaller sample reads fewer rows
        small = self.discover(body={"sample": 10})
        self.assertEqual(small["sampled"], 10)
        self.assert_no_values(json.dumps(doc), "the discovery answer")

    def test_t2_refusals(self):
        for who in ("rita", "ana", "nobody"):
            st, doc = self.call(who, "POST", "/v1/products/clinic/patients/discover", {})
            self.assertEqual(st, 403, (who, doc))
            st, doc = self.call(who, "POST", "/v1/products/clinic/patients/classifications/approve",
                                {"all": True})
            self.assertEqual(st, 403, (who, doc))
        # readers see the effective tags, not the suggestions
        cols, _ = self.classifications("rita")
        self.assertNotIn("pending", cols["email"])
        st, _ = self.call("nobody", "GET", "/v1/products/clinic/patients/classifications")
        self.assertEqual(st, 403)
        # strict bodies
        bad = [({"sample": 0}, "discover"), ({"sample": "10"}, "discover"),
               ({"rows": 10}, "discover"), ({}, "classifications/approve"),
               ({"all": True, "columns": ["email"]}, "classifications/approve"),
               ({"columns": ["nope"]}, "classifications/approve"),
               ({"columns": ["email"], "info_types": ["shoe_size"]}, "classifications/approve"),
               ({"all": True, "min_confidence": 2}, "classifications/reject"),
               ("[1,2]", "classifications/approve"), ("{", "discover"),
               ({"columns": "email"}, "classifications/remove")]
        for body, what in bad:
            st, doc = self.call("olivia", "POST", "/v1/products/clinic/patients/" + what, body)
            self.assertEqual(st, 400, (body, what, doc))
        st, _ = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/burn",
                          {"all": True})
        self.assertEqual(st, 404)
        st, _ = self.call("olivia", "POST", "/v1/products/clinic/nope/discover", {})
        self.assertIn(st, (403, 404))

    def test_t3_approve_masks_open_sessions(self):
        first = self.rows[0]
        # the analyst's session is open and sees clear values
        r = self.q("ana", "SELECT email, phone, card FROM clinic.patients WHERE id = 1")
        self.assertEqual(r[0], [first["email"], first["phone"], first["card"]])
        v0 = self.call("ana", "GET", "/v1/whoami", expect=200)[1]["policy_version"]
        doc = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/approve",
                        {"columns": ["email"]}, expect=200)[1]
        self.assertEqual(sorted(t["tag"] for t in doc["approved"]),
                         ["PII", "confidential", "email"])
        self.assertGreater(doc["policy_version"], v0)
        # at once, without a restart: the PII mask applies to email only
        r = self.q("ana", "SELECT email, phone FROM clinic.patients WHERE id = 1")
        self.assertNotEqual(r[0][0], first["email"])
        self.assertRegex(r[0][0], r"^[xn]+\.[xn]+@x+\.x+$")
        self.assertEqual(r[0][1], first["phone"])
        # the owner still sees clear values (the masks are for analysts)
        r = self.q("olivia", "SELECT email FROM clinic.patients WHERE id = 1")
        self.assertEqual(r[0][0], first["email"])
        # approve the rest that is confident enough, but reject the names first
        doc = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/reject",
                        {"columns": ["patient_name"]}, expect=200)[1]
        self.assertEqual(doc["rejected"], 1)
        doc = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/approve",
                        {"all": True, "min_confidence": 0.8}, expect=200)[1]
        tagged = {t["column"] for t in doc["approved"]}
        self.assertEqual(tagged, set(EXPECTED) - {"email", "patient_name"})
        r = self.q("ana", "SELECT phone, card, iban, ssn, mrn, patient_name, temp "
                          "FROM clinic.patients WHERE id = 1")
        phone, card, ib, ssn, mrn, name, temp = r[0]
        self.assertNotEqual(phone, first["phone"])
        # the domain's card_number mask beats the mesh's PII mask
        self.assertEqual(card[-4:], first["card"][-4:])
        self.assertTrue(set(card[:-4]) <= {"x"}, card)
        self.assertNotEqual(ib, first["iban"])
        self.assertNotEqual(ssn, first["ssn"])
        self.assertNotEqual(mrn, first["mrn"])
        self.assertEqual(name, first["patient_name"])  # rejected: untagged, clear
        self.assertEqual(temp, first["temp"])
        # every format carries the masked values
        st, _, data = self.n.request("POST", "/v1/query",
                                     {"sql": "SELECT email, card FROM clinic.patients",
                                      "format": "csv"}, token=self.tokens["ana"])
        self.assertEqual(st, 200)
        for row in list(csv.reader(io.StringIO(data.decode())))[1:]:
            self.assertNotIn("@example.org", row[0])
        # the effective tags
        cols, doc = self.classifications()
        self.assertEqual(cols["email"]["classification"], "confidential")
        self.assertEqual(cols["card"]["classification"], "restricted")
        self.assertEqual(cols["ward"]["classification"], "internal")
        self.assertEqual(cols["mrn"]["classification"], "restricted")
        src = {(t["tag"], t["source"]) for t in cols["ward"]["tags"] + cols["device"]["tags"]}
        self.assertEqual(src, {("internal", "contract"), ("asset", "contract")})
        email = {t["tag"]: t for t in cols["email"]["tags"]}
        self.assertEqual(email["PII"]["source"], "approved")
        self.assertEqual(email["PII"]["approved_by"], "olivia")
        self.assertEqual(cols["email"]["pending"], [])
        self.assertEqual([s["info_type"] for s in cols["patient_name"]["rejected"]],
                         ["person_name"])
        self.assertEqual(cols["patient_name"]["rejected"][0]["rejected_by"], "olivia")

    def test_t4_rejected_stays_rejected_and_remove(self):
        doc = self.discover()
        cols = {c["name"]: c for c in doc["columns"]}
        self.assertEqual(cols["patient_name"]["suggestions"][0]["status"], "rejected")
        # approving everything leaves a rejected suggestion alone
        self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/approve",
                  {"all": True}, expect=200)
        first = self.rows[0]
        r = self.q("ana", "SELECT patient_name FROM clinic.patients WHERE id = 1")
        self.assertEqual(r[0][0], first["patient_name"])
        # removing email's tags shows it in clear again
        doc = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/remove",
                        {"columns": ["email"]}, expect=200)[1]
        self.assertEqual(doc["removed"], 3)
        r = self.q("ana", "SELECT email FROM clinic.patients WHERE id = 1")
        self.assertEqual(r[0][0], first["email"])
        # a tag by name
        doc = self.call("olivia", "POST", "/v1/products/clinic/patients/classifications/remove",
                        {"columns": ["phone"], "tags": ["PII"]}, expect=200)[1]
        self.assertEqual(doc["removed"], 1)
        r = self.q("ana", "SELECT phone FROM clinic.patients WHERE id = 1")
        self.assertEqual(r[0][0], first["phone"])
        # the catalog finds products by approved tags
        st, doc = self.call("admin", "GET", "/v1/catalog?tag=card_number", expect=200)
        self.assertEqual([p["sql_name"] for p in doc["products"]], ["clinic.patients"])

    def test_t5_meshctl(self):
        out = self.meshctl("discover", "clinic.patients", "--sample", "25")
        self.assertIn("card_number", out)
        self.assertIn("restricted", out)
        out = self.meshctl("discover", "clinic.patients", "--format", "json")
        self.assertEqual(json.loads(out)["sampled"], len(self.rows))
        out = self.meshctl("discover", "clinic.patients", "--format", "csv")
        header = next(csv.reader(io.StringIO(out)))
        self.assertEqual(header[:3], ["column", "info_type", "confidence"])
        out = self.meshctl("discover", "clinic.patients", "--approve", "email")
        self.assertIn("email", out)
        r = self.q("ana", "SELECT email FROM clinic.patients WHERE id = 1")
        self.assertNotEqual(r[0][0], self.rows[0]["email"])
        out = self.meshctl("classify", "clinic.patients")
        self.assertIn("confidential", out)
        self.assertIn("approved", out)
        out = self.meshctl("classify", "clinic.patients", "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(out)))
        self.assertTrue(any(r["column"] == "ward" and r["source"] == "contract" for r in rows))
        out = self.meshctl("classify", "clinic.patients", "--format", "json")
        self.assertIn("columns", json.loads(out))
        # usage errors and refusals
        self.meshctl("discover", "clinic.patients", "--approve-all", "--approve", "email",
                     expect=2)
        self.meshctl("discover", "clinic.patients", "--min-confidence", "7", expect=2)
        self.meshctl("discover", "clinic", expect=2)
        self.meshctl("discover", "clinic.patients", token="rita", expect=4)
        self.meshctl("discover", "clinic.patients", "--approve-all", "--min-confidence", "0.9")

    def test_t6_audit_and_no_values_anywhere(self):
        st, doc = self.call("admin", "GET", "/v1/audit?action=admin.classify&limit=1000&order=asc",
                            expect=200)
        acts = [(e["action"], e.get("principal"), e.get("outcome")) for e in doc["records"]]
        self.assertIn(("admin.classify.discover", "olivia", "ok"), acts)
        self.assertIn(("admin.classify.approve", "olivia", "ok"), acts)
        self.assertIn(("admin.classify.reject", "olivia", "ok"), acts)
        self.assertIn(("admin.classify.remove", "olivia", "ok"), acts)
        disc = [e for e in doc["records"] if e["action"] == "admin.classify.discover"][0]
        self.assertEqual(disc["domain"], "clinic")
        self.assertEqual(disc["product"], "patients")
        self.assertIn("card", disc["columns"])
        appr = [e for e in doc["records"] if e["action"] == "admin.classify.approve"][0]
        self.assertEqual(appr["details"]["approved"][0]["column"], "email")
        st, deny = self.call("admin", "GET", "/v1/audit?action=authz.deny&limit=1000",
                             expect=200)
        self.assertTrue(any(e.get("principal") == "rita" and
                            e.get("details", {}).get("path", "").endswith("/discover")
                            for e in deny["records"]))
        self.assert_no_values(json.dumps(doc), "the audit log")
        # no answer of the classification API ever held a sampled value
        for i, body in enumerate(self.bodies):
            if '"rows"' in body:  # query results hold values by design
                continue
            self.assert_no_values(body, "answer %d" % i)
        self.assert_no_values("\n".join(self.n.log), "meshd's log")


if __name__ == "__main__":
    unittest.main(verbosity=2)
