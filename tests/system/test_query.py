"""System tests of /v1/query: formats, joins, pushdown to the store, streaming, time
functions, errors before and after the first row, and the sandbox that refuses everything but
SELECT over data products."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node, contract  # noqa: E402

T0 = 1767225600 * 10**9  # 2026-01-01T00:00:00Z
SEC = 10**9


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class QueryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(args=["--query-timeout", "120s"]).start()
        n = cls.n
        n.create_domain("factory")
        n.create_domain("plant-b")
        n.apply(contract(), expect=201)
        n.apply(contract(domain="plant-b", product="machines", cid="urn:test:machines"),
                expect=201)
        # 50 devices x 1200 readings at 10 s (200 minutes)
        lines = []
        for d in range(50):
            for i in range(1200):
                lines.append("readings,device=d%02d temp=%.1f,status=\"%s\" %d" %
                             (d, 20 + d + (i % 10) / 10.0, "ok" if i % 100 else "warn",
                              T0 + i * 10 * SEC))
        for k in range(0, len(lines), 20000):
            st, h, data = n.write_lp("factory", "\n".join(lines[k:k + 20000]))
            assert st == 204, data
        n.write_lp("plant-b", "machines,device=d01 temp=1 %d\nmachines,device=d02 temp=2 %d" %
                   (T0, T0))

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()
        cls.n.destroy()

    def test_formats(self):
        sql = "SELECT device, ts, temp FROM factory.readings WHERE device = 'd03' ORDER BY ts LIMIT 2"
        doc = self.n.query(sql)
        self.assertEqual(doc["columns"], [{"name": "device", "type": "TEXT"},
                                          {"name": "ts", "type": "TIMESTAMP"},
                                          {"name": "temp", "type": "REAL"}])
        self.assertEqual(doc["rows"], [["d03", "2026-01-01T00:00:00Z", 23.0],
                                       ["d03", "2026-01-01T00:00:10Z", 23.1]])
        st, h, data = self.n.request("POST", "/v1/query", {"sql": sql, "format": "ndjson"})
        self.assertEqual(h["content-type"], "application/x-ndjson")
        lines = [json.loads(x) for x in data.decode().splitlines()]
        self.assertEqual(lines[1], {"device": "d03", "ts": "2026-01-01T00:00:10Z", "temp": 23.1})
        st, h, data = self.n.request("POST", "/v1/query", {"sql": sql},
                                     headers={"Accept": "text/csv"})
        self.assertTrue(h["content-type"].startswith("text/csv"))
        self.assertEqual(data.decode(), "device,ts,temp\r\nd03,2026-01-01T00:00:00Z,23.0\r\n"
                                        "d03,2026-01-01T00:00:10Z,23.1\r\n")
        # GET and a raw SQL body
        st, h, data = self.n.request("GET", "/v1/query?sql=SELECT%201%20AS%20one&format=csv")
        self.assertEqual(data, b"one\r\n1\r\n")
        st, h, data = self.n.request("POST", "/v1/query", "SELECT 2 AS two",
                                     headers={"Content-Type": "application/sql"})
        self.assertEqual(json.loads(data)["rows"], [[2]])

    def test_join_across_domains(self):
        rows = self.n.rows(
            'SELECT m.device, count(*) FROM "plant-b".machines m JOIN factory.readings r '
            "ON r.device = m.device GROUP BY m.device ORDER BY m.device")
        self.assertEqual(rows, [["d01", 1200], ["d02", 1200]])

    def test_pushdown_uses_indexes(self):
        # one device's last hour: the store reads that hour of that device only
        doc = self.n.query(
            "SELECT count(*) FROM factory.readings WHERE device = 'd07' AND ts > %d" %
            (T0 + (1200 - 360) * 10 * SEC))
        self.assertEqual(doc["rows"][0][0], 359)
        self.assertEqual(doc["rows_scanned"], 359)
        # the last reading of a device
        doc = self.n.query("SELECT iso(ts), temp FROM factory.readings WHERE device = 'd07' "
                           "ORDER BY ts DESC LIMIT 1")
        self.assertEqual(doc["rows"], [["2026-01-01T03:19:50Z", 27.9]])
        self.assertEqual(doc["rows_scanned"], 1)
        # a time range over all devices uses the time index
        doc = self.n.query("SELECT count(*) FROM factory.readings WHERE ts >= %d AND ts < %d" %
                           (T0, T0 + 60 * SEC))
        self.assertEqual(doc["rows"][0][0], 300)
        self.assertEqual(doc["rows_scanned"], 300)
        # IN lists become one scan per value
        doc = self.n.query("SELECT count(*) FROM factory.readings WHERE device IN ('d01','d02') "
                           "AND ts < %d" % (T0 + 100 * SEC))
        self.assertEqual(doc["rows"][0][0], 20)
        self.assertEqual(doc["rows_scanned"], 20)
        # LIMIT with OFFSET stays correct
        rows = self.n.rows("SELECT temp FROM factory.readings WHERE device = 'd00' "
                           "ORDER BY ts LIMIT 3 OFFSET 2")
        self.assertEqual(rows, [[20.2], [20.3], [20.4]])

    def test_or_across_columns(self):
        # SQLite may answer an OR over different columns with one scan per branch, merging
        # them by row identity: every row must come once (scans number rows from 1, so the
        # identity is the product's key, declared to SQLite)
        cut = T0 + 30 * SEC
        for where in ("device = 'd00' OR ts < %d" % cut,
                      "device IN ('d01','d02') OR (device = 'd03' AND ts < %d)" % cut,
                      "ts < %d OR device = 'd04' OR device = 'd00'" % cut):
            want = self.n.scalar("SELECT sum(CASE WHEN %s THEN 1 ELSE 0 END) "
                                 "FROM factory.readings" % where)
            got = self.n.scalar("SELECT count(*) FROM factory.readings WHERE %s" % where)
            self.assertEqual(got, want, where)
            rows = self.n.rows("SELECT device, ts FROM factory.readings WHERE %s" % where)
            self.assertEqual(len(rows), want, where)
            self.assertEqual(len(set(map(tuple, rows))), want, where)
        self.assertGreater(want, 0)

    def test_regexp(self):
        # ECMA-262 patterns, the dialect of contracts: a function and the REGEXP operator
        self.assertEqual(self.n.rows("SELECT regexp('^d0[0-2]$', 'd01'), 'd13' REGEXP '^d0', "
                                     "regexp('\\d+', 'x7'), regexp('a', NULL)"),
                         [[1, 0, 1, None]])
        self.assertEqual(self.n.scalar("SELECT count(DISTINCT device) FROM factory.readings "
                                       "WHERE device REGEXP '^d0[0-4]$'"), 5)
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT regexp('(a', 'a')"})
        self.assertEqual(st, 400, doc)
        self.assertIn("regexp: the pattern", doc["error"]["message"])

    def test_time_functions(self):
        r = self.n.rows("SELECT ts('2026-01-01T00:00:10Z'), iso(%d), duration('90s'), "
                        "time_bucket('1h', ts('2026-01-01T03:19:50Z'))" % (T0 + 5 * SEC))
        self.assertEqual(r, [[T0 + 10 * SEC, "2026-01-01T00:00:05Z", 90 * SEC, T0 + 3 * 3600 * SEC]])
        rows = self.n.rows("SELECT iso(time_bucket('1h', ts)) AS h, round(avg(temp), 2) "
                           "FROM factory.readings WHERE device = 'd00' GROUP BY h ORDER BY h")
        self.assertEqual(len(rows), 4)
        self.assertEqual(rows[0][0], "2026-01-01T00:00:00Z")
        self.assertEqual(self.n.scalar("SELECT count(*) FROM factory.readings WHERE ts > ago('1h')"),
                         0)
        self.assertGreater(self.n.scalar("SELECT now()"), T0)
        # comparing the time column with text is refused with a hint, not silently wrong
        st, doc = self.n.json("POST", "/v1/query", {
            "sql": "SELECT count(*) FROM factory.readings WHERE ts > '2026-01-01'"})
        self.assertEqual(st, 400)
        self.assertIn("ts('2026-01-01')", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT ts('yesterday')"})
        self.assertEqual(st, 400)
        self.assertIn("ISO 8601", doc["error"]["message"])

    def test_streaming_large_result(self):
        # 60k rows x ~4 columns: several chunks; chunked transfer, all rows arrive
        st, h, data = self.n.request("POST", "/v1/query", {
            "sql": "SELECT * FROM factory.readings", "format": "csv"})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("transfer-encoding"), "chunked")
        self.assertEqual(data.count(b"\r\n"), 60001)
        doc = self.n.query("SELECT * FROM factory.readings")
        self.assertEqual(doc["row_count"], 60000)
        self.assertEqual(len(doc["rows"]), 60000)

    def test_streaming_does_not_buffer(self):
        # a result far larger than the memory it may use: a recursive CTE over the product
        before = vm_hwm_kib(self.n.proc.pid)
        sanitized = os.environ.get("ASAN_OPTIONS") is not None
        sql = ("WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < %d) "
               % (8 if sanitized else 60) +
               "SELECT k.i, r.device, r.ts, r.temp, r.status FROM k, factory.readings r")
        out = subprocess.run(
            ["curl", "-sS"] + self.n.curl_tls_args() +
            ["-H", "Authorization: Bearer " + self.n.token, "-d",
             json.dumps({"sql": sql, "format": "csv"}), self.n.url + "/v1/query"],
            capture_output=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        size = len(out.stdout)
        if sanitized:
            return  # AddressSanitizer keeps freed memory in quarantine: no bound to check
        self.assertGreater(size, 100 << 20)  # over 100 MiB of CSV
        grown = vm_hwm_kib(self.n.proc.pid) - before
        self.assertLess(grown * 1024, size / 4, "peak memory grew by %d KiB for %d bytes" %
                        (grown, size))

    def test_errors(self):
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELEC 1"})
        self.assertEqual((st, doc["error"]["code"]), (400, "PARSE"))
        self.assertIn("syntax error", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT * FROM factory.nope"})
        self.assertEqual(st, 400)
        self.assertIn("no such table", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": ""})
        self.assertEqual(st, 400)
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT 1", "colour": 1})
        self.assertEqual(st, 400)
        self.assertIn("colour", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT 1", "format": "xml"})
        self.assertEqual(st, 400)
        st, h, data = self.n.request("POST", "/v1/query", "{not json")
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(data)["error"],
                         {"code": "PARSE", "message": "malformed JSON at line 1, column 4: "
                                                      "string or '}' expected near 'not'"})
        st, h, data = self.n.request("POST", "/v1/query", '{"sql": "SELECT 1",\n "format": csv}')
        self.assertEqual(st, 400)
        self.assertIn("line 2, column 14: invalid token near 'csv'",
                      json.loads(data)["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT 1; SELECT 2"})
        self.assertEqual(st, 400)
        self.assertIn("one statement", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT 1", "max_rows": 1})
        self.assertEqual(st, 200)

    def test_error_after_rows(self):
        # abs(min int64) overflows at row 50001: rows were already sent
        sql = ("SELECT temp, CASE WHEN rowid_ > 50000 THEN abs(-9223372036854775807 - 1) END "
               "FROM (SELECT temp, row_number() OVER () AS rowid_ FROM factory.readings)")
        doc = self.n.query(sql)
        self.assertEqual(doc["error"]["code"], "INVALID")
        self.assertIn("overflow", doc["error"]["message"])
        self.assertGreater(doc["row_count"], 0)
        st, h, data = self.n.request("POST", "/v1/query", {"sql": sql, "format": "ndjson"})
        last = json.loads(data.decode().splitlines()[-1])
        self.assertIn("overflow", last["error"]["message"])
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null"] + self.n.curl_tls_args() +
            ["-H", "Authorization: Bearer " + self.n.token,
             "-d", json.dumps({"sql": sql, "format": "csv"}), self.n.url + "/v1/query"],
            capture_output=True, timeout=60)
        self.assertNotEqual(out.returncode, 0, "a failed CSV result must not look complete")
        # failing within the first chunk: the stream ends inside the handler (once a
        # use-after-free of the request in the server)
        sql = "SELECT 1 AS x UNION ALL SELECT abs(-9223372036854775807 - 1)"
        for _ in range(3):
            out = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-H", "Authorization: Bearer " + self.n.token,
                 "-d", json.dumps({"sql": sql, "format": "csv"}),
                 "http://%s/v1/query" % self.n.addr], capture_output=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
        self.assertEqual(self.n.json("GET", "/v1/status")[0], 200)

    def test_max_rows(self):
        doc = self.n.query("SELECT * FROM factory.readings", max_rows=10)
        self.assertEqual(doc["row_count"], 10)
        self.assertEqual(doc["error"]["code"], "LIMIT")


class SandboxTest(unittest.TestCase):
    """Everything but SELECT over data products is refused."""

    @classmethod
    def setUpClass(cls):
        cls.tmp_marker = None
        cls.n = Node(args=["--query-timeout", "2s"]).start()
        cls.n.create_domain("factory")
        cls.n.apply(contract(), expect=201)
        cls.n.write_lp("factory", "readings,device=a temp=1 1")

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()
        cls.n.destroy()

    def refused(self, sql, codes=("FORBIDDEN", "PARSE")):
        st, doc = self.n.json("POST", "/v1/query", {"sql": sql})
        self.assertIn(st, (400, 403, 408, 413, 422), (sql[:200], str(doc)[:500]))
        self.assertIn(doc["error"]["code"], codes, (sql[:200], str(doc)[:500]))
        return doc["error"]["message"]

    def test_escapes(self):
        target = os.path.join(self.n.tmp, "evil.db")
        self.refused("ATTACH DATABASE '%s' AS evil" % target)
        self.assertFalse(os.path.exists(target), "ATTACH created a file")
        self.refused("SELECT * FROM pragma_table_info('readings')")
        self.refused("PRAGMA table_info(readings)")
        self.refused("PRAGMA writable_schema = 1")
        self.refused("SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')")
        msg = self.refused("SELECT fts3_tokenizer('simple')")
        self.assertNotRegex(msg, r"0x[0-9a-f]{8}")
        self.refused("SELECT hex(fts3_tokenizer('simple'))")
        self.refused("INSERT INTO factory.readings(device, ts) VALUES ('x', 1)")
        self.refused("DELETE FROM factory.readings")
        self.refused("UPDATE factory.readings SET temp = 0")
        self.refused("DROP TABLE factory.readings")
        self.refused("CREATE TABLE t(x)")
        self.refused("CREATE TEMP VIEW v AS SELECT 1")
        self.refused("SELECT * FROM sqlite_master")
        self.refused("SELECT * FROM sqlite_schema")
        self.refused("SELECT * FROM factory.sqlite_master")
        self.refused("SELECT * FROM sqlite_temp_master")
        self.refused("SELECT * FROM dbstat")
        self.refused("SELECT * FROM sqlite_stmt")
        self.refused("SELECT * FROM _meta")
        self.refused("SELECT * FROM factory._meta")
        self.refused("SELECT * FROM p_readings")
        self.refused("BEGIN")
        self.refused("VACUUM INTO '%s'" % target)
        self.assertFalse(os.path.exists(target))
        self.refused("DETACH factory")
        self.refused("SELECT 1; ATTACH ':memory:' AS x", ("INVALID",))

    def test_runaway_queries_stop(self):
        msg = self.refused("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                           "SELECT count(*) FROM c", ("TIMEOUT",))
        self.assertIn("time limit", msg)
        st, doc = self.n.json("POST", "/v1/query", {
            "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                   "SELECT count(*) FROM c", "timeout_ms": 100})
        self.assertEqual(st, 408)
        self.refused("SELECT zeroblob(1000000000)", ("LIMIT", "INVALID"))
        # printf cannot be interrupted, but its output stops at the 16 MiB length limit
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT printf('%.*c', 1000000000, 'x')"})
        self.assertTrue(st != 200 or doc["rows"] == [[None]], doc)
        self.refused("SELECT " + "(" * 500 + "1" + ")" * 500, ("PARSE", "LIMIT"))
        self.refused("SELECT " + "x" * (200 * 1024), ("TOO_LARGE", "LIMIT"))
        # the node still answers afterwards
        self.assertEqual(self.n.scalar("SELECT count(*) FROM factory.readings"), 1)

    def test_allowed_sql(self):
        self.assertEqual(self.n.scalar("SELECT json_extract('{\"a\": 2}', '$.a')"), 2)
        self.assertEqual(self.n.scalar("SELECT count(*) FROM json_each('[1,2,3]')"), 3)
        self.assertEqual(self.n.scalar(
            "WITH x(v) AS (SELECT temp FROM factory.readings) SELECT sum(v) FROM x"), 1.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
