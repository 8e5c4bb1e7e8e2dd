"""System tests of meshd's HTTP API: domains, contracts, writes in every format, negative
inputs with their status and message, atomicity, idempotency, quarantine, catalog, metrics."""
import gzip
import http.client
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node, contract  # noqa: E402


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(args=["--max-body", "1MiB", "--max-errors", "5"]).start()
        cls.n.create_domain("factory", description="Plant A", owners=["ops@plant-a"])
        cls.n.apply(contract(), expect=201)

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()
        cls.n.destroy()

    def count(self, where="1=1"):
        return self.n.scalar("SELECT count(*) FROM factory.readings WHERE " + where)

    # ---- authentication and routing ----

    def test_auth_required(self):
        st, doc = self.n.json("GET", "/v1/domains", token="")
        self.assertEqual(st, 401)
        self.assertEqual(doc["error"]["code"], "UNAUTHENTICATED")
        st, h, _ = self.n.request("GET", "/v1/domains", token="")
        self.assertIn("Bearer", h.get("www-authenticate", ""))
        st, doc = self.n.json("GET", "/v1/domains", token="wrong-token-0123456789")
        self.assertEqual(st, 401)
        self.assertIn("invalid", doc["error"]["message"])
        # health endpoints are open
        self.assertEqual(self.n.request("GET", "/healthz", token="")[0], 200)
        self.assertEqual(self.n.request("GET", "/readyz", token="")[0], 200)

    def test_unknown_endpoint_and_method(self):
        st, doc = self.n.json("GET", "/v1/nope")
        self.assertEqual(st, 404)
        st, h, _ = self.n.request("DELETE", "/v1/query")
        self.assertEqual(st, 405)
        self.assertIn("POST", h["allow"])

    def test_security_headers(self):
        # an answer, a refusal before authentication, and a streamed (chunked) result all
        # carry every security header; TLS is on here, so HSTS too
        big = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
               "SELECT x, printf('%0100d', x) FROM c")
        answers = [self.n.request("GET", "/v1/status"),
                   self.n.request("GET", "/v1/domains", token=""),
                   self.n.request("POST", "/v1/query", {"sql": big})]
        self.assertEqual([a[0] for a in answers], [200, 401, 200])
        self.assertEqual(answers[2][1].get("transfer-encoding"), "chunked", "a streamed result")
        for st, h, _ in answers:
            self.assertEqual(h["x-content-type-options"], "nosniff", st)
            self.assertEqual(h["x-frame-options"], "DENY", st)
            self.assertEqual(h["content-security-policy"], "default-src 'none'", st)
            self.assertEqual(h["referrer-policy"], "no-referrer", st)
            self.assertEqual(h["cache-control"], "no-store", st)
            self.assertEqual(h["strict-transport-security"], "max-age=31536000", st)
            self.assertIn("x-request-id", h)
        # without TLS, no HSTS (it would be ignored, and wrong behind a TLS proxy)
        plain = Node(tls=False).start()
        try:
            st, h, _ = plain.request("GET", "/v1/domains", token="")
            self.assertEqual(st, 401)
            self.assertNotIn("strict-transport-security", h)
            self.assertEqual(h["x-frame-options"], "DENY")
        finally:
            plain.stop()
            plain.destroy()

    def test_limits_before_authentication(self):
        # an oversized body without a token: 413, never processed
        st, data = self.n.curl("POST", "/v1/products/factory/readings/rows",
                               "[" + "1," * (600 << 10) + "1]",
                               headers={"Content-Type": "application/json"}, token="")
        self.assertEqual(st, 413, data)
        # a header block beyond 64 KiB without a token: refused (an error status, or the
        # connection closed), and the node still answers afterwards
        try:
            st = self.n.request("GET", "/v1/status", token="",
                                headers={"X-Big": "a" * (80 << 10)})[0]
        except (ConnectionError, OSError, http.client.HTTPException):
            st = None
        self.assertTrue(st is None or 400 <= st < 500 and st != 401, st)
        self.assertEqual(self.n.request("GET", "/readyz", token="")[0], 200)

    # ---- domains ----

    def test_domain_lifecycle(self):
        d = self.n.create_domain("home-42", description="A home hub", owners=["me@home"])
        self.assertEqual(d["name"], "home-42")
        self.assertEqual(d["owners"], ["me@home"])
        st, doc = self.n.json("POST", "/v1/domains", {"name": "home-42"})
        self.assertEqual(st, 409)
        st, doc = self.n.json("POST", "/v1/domains", {"name": "Bad Name"})
        self.assertEqual(st, 400)
        self.assertIn("invalid domain name", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/domains", {"name": "x", "color": "red"})
        self.assertEqual(st, 400)
        self.assertIn("unknown field", doc["error"]["message"])
        st, doc = self.n.json("GET", "/v1/domains")
        self.assertIn("home-42", [x["name"] for x in doc["domains"]])
        st, doc = self.n.json("GET", "/v1/domains/home-42", expect=200)
        self.assertEqual(doc["description"], "A home hub")
        # a domain with products needs force
        self.n.apply(contract(domain="home-42", product="climate"), expect=201)
        st, doc = self.n.json("DELETE", "/v1/domains/home-42")
        self.assertEqual(st, 409)
        self.assertIn("force", doc["error"]["message"])
        self.assertEqual(self.n.request("DELETE", "/v1/domains/home-42?force=true")[0], 204)
        self.assertEqual(self.n.json("GET", "/v1/domains/home-42")[0], 404)
        self.assertEqual(self.n.json("DELETE", "/v1/domains/home-42")[0], 404)

    # ---- contracts ----

    def test_contract_rules(self):
        self.n.create_domain("lab")
        c1 = contract(domain="lab", product="m")
        st, doc = self.n.apply(c1, expect=201)
        self.assertEqual(doc["products"], ["lab.m"])
        # same text again: unchanged
        st, doc = self.n.apply(c1, expect=200)
        self.assertEqual(doc["outcome"], "unchanged")
        # same version, different text: refused
        c1b = c1.replace("Test readings.", "Other words.")
        st, doc = self.n.apply(c1b)
        self.assertEqual(st, 409)
        self.assertIn("higher version", doc["error"]["message"])
        # additive change: a new optional column, minor version
        extra = "      - name: humidity\n        logicalType: number\n"
        c2 = contract(domain="lab", product="m", version="1.1.0", extra_props=extra)
        st, doc = self.n.apply(c2, expect=200)
        self.assertEqual(doc["outcome"], "updated")
        self.assertTrue(any("humidity" in c for c in doc["changes"]), doc)
        st, r = self.n.post_rows("lab", "m", [{"device": "a", "ts": 1, "temp": 1, "humidity": 40.5}])
        self.assertEqual(st, 200, r)
        # breaking: drop a column without a major version
        c3 = contract(domain="lab", product="m", version="1.2.0")
        st, doc = self.n.apply(c3)
        self.assertEqual(st, 409)
        self.assertEqual(doc["error"]["code"], "BREAKING")
        self.assertIn("2.0.0", doc["error"]["message"])
        self.assertTrue(any("humidity" in d and "breaking" in d for d in doc["error"]["details"]))
        # older version refused
        st, doc = self.n.apply(contract(domain="lab", product="m", version="0.9.0"))
        self.assertEqual(st, 409)
        # with a major version the drop applies, and the rows stay
        st, doc = self.n.apply(contract(domain="lab", product="m", version="2.0.0"), expect=200)
        self.assertEqual(self.n.scalar("SELECT count(*) FROM lab.m"), 1)
        cols = [c["name"] for c in self.n.query("SELECT * FROM lab.m")["columns"]]
        self.assertNotIn("humidity", cols)
        # a new required column that existing rows lack is refused even with a major version
        req = "      - name: site\n        logicalType: string\n        required: true\n"
        st, doc = self.n.apply(contract(domain="lab", product="m", version="3.0.0",
                                        extra_props=req))
        self.assertEqual(st, 409)
        self.assertIn("do not fit", doc["error"]["message"])
        # a product belongs to one contract
        st, doc = self.n.apply(contract(domain="lab", product="m", cid="urn:other"))
        self.assertEqual(st, 409)
        self.assertIn("one contract", doc["error"]["message"])
        # the contract names a domain that does not exist
        st, doc = self.n.apply(contract(domain="nowhere"))
        self.assertEqual(st, 404)
        self.assertIn("create it first", doc["error"]["message"])

    def test_bad_contracts(self):
        cases = [
            ("not: [valid", "PARSE", "line"),
            (contract().replace("v3.1.0", "v9.9.9"), "INVALID", "apiVersion"),
            (contract().replace("logicalType: number", "logicalType: float"), "INVALID",
             "float"),
            (contract().replace("  purpose:", "  porpoise:"), "INVALID", "porpoise"),
            (contract() + "unknownTop: 1\n", "INVALID", "unknownTop"),
        ]
        for text, code, needle in cases:
            st, doc = self.n.apply(text)
            self.assertEqual(st, 400, text)
            self.assertEqual(doc["error"]["code"], code, doc)
            self.assertIn(needle, doc["error"]["message"])
        # too large
        st, data = self.n.curl("POST", "/v1/contracts", "x" * (2 << 20))
        self.assertEqual(st, 413)

    def test_export_contract(self):
        st, h, data = self.n.request("GET", "/v1/products/factory/readings/contract")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("application/yaml"))
        text = data.decode()
        self.assertIn("apiVersion: v3.1.0", text)
        self.assertIn("name: readings", text)
        self.assertIn("celsius", text)
        # the export applies again as the same contract
        st, doc = self.n.apply(text)
        self.assertEqual((st, doc["outcome"]), (200, "unchanged"), doc)

    def test_contract_history_and_diff(self):
        n = self.n
        n.create_domain("hist")
        note = "      - name: note\n        logicalType: string\n"
        hum = "      - name: humidity\n        logicalType: number\n"
        n.apply(contract(domain="hist", extra_props=note), expect=201)
        n.apply(contract(domain="hist", version="1.1.0", extra_props=note + hum), expect=200)
        n.apply(contract(domain="hist", version="2.0.0"), expect=200)
        # a dry run says what would happen and changes nothing
        st, h, data = n.request("POST", "/v1/contracts?dry_run=true",
                                contract(domain="hist", version="3.0.0", extra_props=note),
                                headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 200, data)
        d = json.loads(data)
        self.assertTrue(d["dry_run"])
        self.assertEqual(d["outcome"], "updated")
        self.assertIn("column note: added (optional)", d["changes"])
        st, h, data = n.request("POST", "/v1/contracts?dry_run=true",
                                contract(domain="hist", version="2.1.0",
                                         extra_props=note + "        required: true\n"),
                                headers={"Content-Type": "application/yaml"})
        self.assertEqual(st, 409, data)
        self.assertEqual(n.request("POST", "/v1/contracts?dry_run=maybe",
                                   contract(domain="hist", version="3.0.0"),
                                   headers={"Content-Type": "application/yaml"})[0], 400)
        st, doc = n.json("GET", "/v1/products/hist/readings/history", expect=200)
        self.assertEqual([v["version"] for v in doc["versions"]], ["1.0.0", "1.1.0", "2.0.0"])
        self.assertEqual(doc["current"], "2.0.0")
        self.assertTrue(all(v["applied"] for v in doc["versions"]))
        # an additive change does not break consumers; dropping columns does
        st, d = n.json("GET", "/v1/products/hist/readings/diff?from=1.0.0&to=1.1.0", expect=200)
        self.assertFalse(d["breaking"])
        self.assertEqual([c["change"] for c in d["changes"]],
                         ["column humidity: added (optional)"])
        st, d = n.json("GET", "/v1/products/hist/readings/diff?from=1.1.0", expect=200)
        self.assertTrue(d["breaking"])
        self.assertEqual(d["to"], "2.0.0")
        self.assertEqual(sorted(c["change"] for c in d["changes"] if c["breaking"]),
                         ["column humidity: dropped", "column note: dropped"])
        # an earlier version, exported
        st, h, data = n.request("GET", "/v1/products/hist/readings/contract?version=1.1.0")
        self.assertEqual(st, 200)
        self.assertIn(b"version: \"1.1.0\"", data)
        self.assertIn(b"humidity", data)
        st, h, data = n.request("GET", "/v1/products/hist/readings/contract")
        self.assertNotIn(b"humidity", data)
        # unknown versions, missing parameters
        self.assertEqual(n.request("GET", "/v1/products/hist/readings/diff?from=9.9.9")[0], 404)
        self.assertEqual(n.request("GET", "/v1/products/hist/readings/diff")[0], 400)
        self.assertEqual(
            n.request("GET", "/v1/products/hist/readings/contract?version=0.0.1")[0], 404)
        self.assertEqual(n.request("GET", "/v1/products/hist/nope/history")[0], 404)

    # ---- writes ----

    def test_write_formats(self):
        self.n.create_domain("fmt")
        self.n.apply(contract(domain="fmt"), expect=201)
        st, r = self.n.post_rows("fmt", "readings", [
            {"device": "j1", "ts": "2026-01-01T00:00:00Z", "temp": 20.5, "status": "ok"},
            {"device": "j2", "ts": 1767225600000, "temp": 21, "status": None}])
        self.assertEqual(st, 200, r)
        self.assertEqual(r["accepted"], 2)
        nd = '{"device":"n1","ts":"2026-01-01T00:00:01Z","temp":1.5}\n\n' \
             '{"device":"n2","ts":"2026-01-01T00:00:02Z"}\n'
        st, r = self.n.post_rows("fmt", "readings", nd, "application/x-ndjson")
        self.assertEqual(st, 200, r)
        csv = 'device,ts,temp,status\r\nc1,2026-01-01T00:00:03Z,3.5,warn\r\n' \
              '"c,2",2026-01-01T00:00:04Z,,\r\n'
        st, r = self.n.post_rows("fmt", "readings", csv, "text/csv")
        self.assertEqual(st, 200, r)
        lp = 'readings,device=l1 temp=4.5,status="fail" 1767225605000000000\n'
        st, r = self.n.post_rows("fmt", "readings", lp, "text/plain")
        self.assertEqual(st, 200, r)
        st, h, _ = self.n.write_lp("fmt", 'readings,device=l2 temp=5.5 1767225606', "s")
        self.assertEqual(st, 204)
        st, h, _ = self.n.request("POST", "/api/v2/write?bucket=fmt&precision=ms",
                                  'readings,device=l3 temp=6.5 1767225607000',
                                  headers={"Authorization": "Token " + meshlib.TOKEN})
        self.assertEqual(st, 204)
        gz = gzip.compress(b'readings,device=g1 temp=7.5 1767225608000000000\n')
        st, h, _ = self.n.request("POST", "/write?db=fmt", gz, headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 204)
        rows = self.n.rows("SELECT device, iso(ts), temp, status FROM fmt.readings ORDER BY ts")
        self.assertEqual([r[0] for r in rows], ["j1", "j2", "n1", "n2", "c1", "c,2", "l1", "l2",
                                                "l3", "g1"])
        self.assertEqual(rows[1][1], "2026-01-01T00:00:00Z")  # ms epoch auto-detected
        self.assertEqual(rows[5][2], None)  # empty CSV field is NULL
        self.assertEqual(rows[7][1], "2026-01-01T00:00:06Z")  # precision=s
        # the query shows ISO time; ns on request
        doc = self.n.query("SELECT ts FROM fmt.readings WHERE device = 'l1'", time_format="ns")
        self.assertEqual(doc["rows"][0][0], 1767225605000000000)

    def test_negative_writes(self):
        cases = [
            ("application/json", '[{"device": "x", "ts": 1, "temp": "hot"}]', 400, "VALIDATION",
             "expected a number"),
            ("application/json", '[{"device": "x", "ts": 1', 400, None, "JSON"),
            ("application/json", '[{"device": "x", "ts": 1, "colour": 1}]', 400, "VALIDATION",
             "colour"),
            ("application/json", '[{"device": "x", "ts": 1, "temp": 999}]', 400, "VALIDATION",
             "maximum"),
            ("application/json", '[{"device": "x", "ts": 1, "status": "meh"}]', 400, "VALIDATION",
             "meh"),
            ("application/json", '[{"ts": 1, "temp": 1}]', 400, "VALIDATION", "device"),
            ("text/csv", 'device,ts,nope\nx,1,2\n', 400, None, "nope"),
            ("text/csv", 'device,ts,temp\nx,1,2,3\n', 400, "VALIDATION", "fields"),
            ("text/csv", 'device,ts,temp\n"x,1,2\n', 400, "PARSE",
             "line 2, col 1: quoted field is never closed"),
            ("text/plain", 'readings,device=x temp= 1\n', 400, "VALIDATION", "line 1"),
            ("text/plain", 'other,device=x temp=1 1\n', 400, "VALIDATION", "other"),
            ("application/xml", '<a/>', 415, "UNSUPPORTED", "Content-Type"),
        ]
        before = self.count()
        for ctype, body, code, ecode, needle in cases:
            st, r = self.n.post_rows("factory", "readings", body, ctype)
            self.assertEqual(st, code, (body, r))
            if ecode:
                self.assertEqual(r["error"]["code"], ecode, (body, r))
            text = json.dumps(r)
            self.assertIn(needle, text, (body, r))
        self.assertEqual(self.count(), before)
        # the unclosed quote is the one reason given: not also a missing column of the row
        # it cut short
        st, r = self.n.post_rows("factory", "readings", 'device,ts,temp\n"x,1,2\n', "text/csv")
        self.assertEqual([d["reason"] for d in r["error"]["details"]],
                         ["line 2, col 1: quoted field is never closed"], r)
        # unknown product / domain
        st, r = self.n.post_rows("factory", "nope", "[]")
        self.assertEqual(st, 404)
        self.assertEqual(r["error"], {"code": "NOT_FOUND", "message": "no product factory.nope"})
        st, h, data = self.n.write_lp("nowhere", "readings temp=1")
        self.assertEqual(st, 404)
        self.assertIn(b"database not found", data)
        # body too large: 413 before anything else
        st, data = self.n.curl("POST", "/v1/products/factory/readings/rows",
                               "[" + "1," * (600 << 10) + "1]",
                               headers={"Content-Type": "application/json"})
        self.assertEqual(st, 413)
        # libevent 2.1 (Debian 12) answers this itself, before meshd sees the request: from
        # the Content-Length when curl sends Expect: 100-continue, or once the body passes the
        # limit. Its answer is a fixed page (2.1 has no hook for the error body).
        self.assertIn(b"Request Entity Too Large", data)
        # a gzip bomb is cut at max_body after inflating
        bomb = gzip.compress(b"readings,device=a temp=1 1\n" * 100000)
        st, h, data = self.n.request("POST", "/write?db=factory", bomb,
                                     headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 413, data)
        self.assertEqual(json.loads(data)["error"],
                         {"code": "TOO_LARGE",
                          "message": "the inflated body is larger than max_body (1048576 bytes)"})
        st, h, data = self.n.request("POST", "/write?db=factory", b"\x1f\x8bnot gzip",
                                     headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 400)
        # an overlong line protocol line
        st, h, data = self.n.write_lp("factory", "readings,device=" + "a" * 70000 + " temp=1 1")
        self.assertEqual(st, 400, data)
        self.assertIn(b"line", data)
        self.assertEqual(self.count(), before)

    def test_refused_batch_is_atomic(self):
        before = self.count()
        rows = [{"device": "atom%d" % i, "ts": i + 1, "temp": 20} for i in range(1000)]
        rows[500]["temp"] = 1e6
        rows[900]["status"] = "broken"
        st, r = self.n.post_rows("factory", "readings", rows)
        self.assertEqual(st, 400)
        self.assertEqual(r["error"]["code"], "VALIDATION")
        self.assertIn("2 of 1000 rows", r["error"]["message"])
        self.assertEqual([d["row"] for d in r["error"]["details"]], [501, 901])
        self.assertEqual(self.count(), before)
        self.assertEqual(self.count("device LIKE 'atom%'"), 0)
        # many bad rows: details capped at max_errors (5), the count is exact
        bad = [{"device": "b", "ts": i, "temp": 1e6} for i in range(50)]
        st, r = self.n.post_rows("factory", "readings", bad)
        self.assertIn("50 of 50", r["error"]["message"])
        self.assertEqual(len(r["error"]["details"]), 5)

    def test_idempotency(self):
        body = [{"device": "idem", "ts": 100 + i, "temp": 1} for i in range(10)]
        h = {"Idempotency-Key": "batch-0001"}
        st, r1 = self.n.post_rows("factory", "readings", body, headers=h)
        self.assertEqual(st, 200)
        self.assertFalse(r1["duplicate"])
        st, r2 = self.n.post_rows("factory", "readings", body, headers=h)
        self.assertEqual(st, 200)
        self.assertTrue(r2["duplicate"])
        self.assertEqual(r2["seq"], r1["seq"])
        self.assertEqual(self.count("device = 'idem'"), 10)
        st, r = self.n.post_rows("factory", "readings", body, headers={"Idempotency-Key": "a b"})
        self.assertEqual(st, 400)

    def test_merge_on_primary_key(self):
        self.n.post_rows("factory", "readings", [{"device": "m", "ts": 5, "temp": 1,
                                                   "status": "ok"}])
        self.n.post_rows("factory", "readings", [{"device": "m", "ts": 5, "temp": 2}])
        rows = self.n.rows("SELECT temp, status FROM factory.readings WHERE device = 'm'")
        self.assertEqual(rows, [[2.0, "ok"]])

    def test_quarantine(self):
        self.n.create_domain("ward")
        qc = contract(domain="ward", product="vitals",
                      object_extra="    customProperties:\n      - property: onInvalid\n"
                                   "        value: quarantine\n")
        self.n.apply(qc, expect=201)
        st, r = self.n.post_rows("ward", "vitals", [
            {"device": "p1", "ts": 1, "temp": 37},
            {"device": "p1", "ts": 2, "temp": 400},
            {"device": "p1", "ts": 3, "temp": 36.5}])
        self.assertEqual(st, 200, r)
        self.assertEqual(r["accepted"], 2)
        self.assertEqual(r["quarantined"], 1)
        self.assertEqual(r["quarantine"][0]["row"], 2)
        q = self.n.rows("SELECT source_row, reason, raw FROM ward.vitals__quarantine")
        self.assertEqual(len(q), 1)
        self.assertIn("maximum", q[0][1])
        self.assertIn("400", q[0][2])
        st, doc = self.n.json("GET", "/v1/products/ward/vitals/quarantine", expect=200)
        self.assertEqual(doc["rows"][0]["source_row"], 2)
        self.assertEqual(self.n.scalar("SELECT count(*) FROM ward.vitals"), 2)

    def test_retired_product_refuses_writes(self):
        self.n.create_domain("old")
        self.n.apply(contract(domain="old", status="retired"), expect=201)
        st, r = self.n.post_rows("old", "readings", [{"device": "a", "ts": 1}])
        self.assertEqual(st, 409)
        self.assertIn("retired", r["error"]["message"])

    # ---- reading the catalog ----

    def test_catalog_and_products(self):
        self.n.post_rows("factory", "readings", [{"device": "cat", "ts": 1700000000000000000,
                                                   "temp": 1}])
        st, doc = self.n.json("GET", "/v1/catalog?q=readings", expect=200)
        names = [p["sql_name"] for p in doc["products"]]
        self.assertIn("factory.readings", names)
        p = [p for p in doc["products"] if p["sql_name"] == "factory.readings"][0]
        self.assertEqual(p["time_column"], "ts")
        self.assertEqual(p["primary_key"], ["device", "ts"])
        self.assertGreaterEqual(p["rows"], 1)
        self.assertIsNotNone(p["last_write"])
        temp = [c for c in p["columns"] if c["name"] == "temp"][0]
        self.assertEqual(temp["unit"], "celsius")
        self.assertEqual(temp["maximum"], 200)
        st, doc = self.n.json("GET", "/v1/catalog?owner=ops@plant-a", expect=200)
        self.assertIn("factory.readings", [p["sql_name"] for p in doc["products"]])
        st, doc = self.n.json("GET", "/v1/catalog?owner=nobody", expect=200)
        self.assertEqual(doc["count"], 0)
        st, doc = self.n.json("GET", "/v1/catalog?q=device+id", expect=200)
        self.assertIn("factory.readings", [p["sql_name"] for p in doc["products"]])
        st, doc = self.n.json("GET", "/v1/products/factory/readings", expect=200)
        self.assertEqual(doc["contract"]["version"], "1.0.0")
        self.assertEqual(self.n.json("GET", "/v1/products/factory/none")[0], 404)

    def test_metrics(self):
        self.n.post_rows("factory", "readings", [{"device": "met", "ts": 1, "temp": 1}])
        self.n.post_rows("factory", "readings", [{"device": "met", "ts": 1, "temp": 1e9}])
        st, h, data = self.n.request("GET", "/metrics")
        self.assertEqual(st, 200)
        text = data.decode()
        self.assertIn('meshd_ingest_rows_total{domain="factory",product="readings"}', text)
        self.assertIn('meshd_ingest_rows_refused_total{domain="factory",product="readings"}', text)
        self.assertIn('meshd_http_request_duration_seconds_bucket{endpoint="rows",le="+Inf"}', text)
        self.assertIn('meshd_http_requests_total{endpoint="rows",code="400"}', text)
        self.assertIn('meshd_domain_db_bytes{domain="factory"}', text)
        # the process: memory, CPU and file descriptors, the standard names, sane values
        vals = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
                if l.startswith("process_")}
        with open("/proc/%d/status" % self.n.proc.pid) as f:
            rss_kb = int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
        self.assertGreater(vals["process_resident_memory_bytes"], 1 << 20)
        self.assertLess(abs(vals["process_resident_memory_bytes"] / 1024 - rss_kb), rss_kb / 2)
        self.assertGreater(vals["process_cpu_seconds_total"], 0)
        self.assertGreater(vals["process_open_fds"], 3)
        self.assertLessEqual(vals["process_open_fds"], len(os.listdir("/proc/%d/fd" %
                                                                      self.n.proc.pid)) + 8)
        self.assertGreater(vals["process_max_fds"], vals["process_open_fds"])
        self.assertIn("process_virtual_memory_bytes", vals)
        self.assertEqual(self.n.request("GET", "/metrics", token="")[0], 401)

    def accepted(self):
        st, h, data = self.n.request("GET", "/metrics")
        self.assertEqual(st, 200)
        return {l.split('"')[1]: int(l.split()[1]) for l in data.decode().splitlines()
                if l.startswith("meshd_http_connections_accepted_total{")}

    def test_connections_spread_over_workers(self):
        """A burst of connections (a client opening its kept-alive connections at once) is
        taken by several HTTP workers, not all by the first to wake: each connection's
        requests run on its worker, so one worker holding them all serialises the client."""
        before = self.accepted()
        self.assertEqual(len(before), 4)  # http_threads defaults to 4
        socks = [socket.create_connection((self.n.host, self.n.port)) for _ in range(32)]
        try:
            time.sleep(0.5)
            after = self.accepted()
        finally:
            for s in socks:
                s.close()
        taken = {w: after[w] - before[w] for w in after}
        self.assertGreaterEqual(sum(taken.values()), 33, taken)  # the burst, the metrics request
        self.assertLessEqual(max(taken.values()), 13, taken)


if __name__ == "__main__":
    unittest.main(verbosity=2)
