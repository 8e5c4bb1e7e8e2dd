"""The audit log with a real meshd: every kind of event is recorded (authentication ok and
failed, authorisation allowed and denied, queries with their SQL and rows, writes with their
accepted and refused rows, admin changes); no token appears in the audit log, the files or
the server's log; search filters; the auditor role (the audit log and nothing else) and
system.audit in SQL; `meshctl audit verify` offline and through the API; files tampered
with on disk (a byte edited, a record deleted, two swapped, the tail cut) are found and the
first bad record named; kill -9 while writers hammer the API leaves a log that verifies,
holding every acknowledged write.

Principals, tokens, a password, a login and a mask are made through the access API, and each
of those changes must be in the audit log too, without the password.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
from meshlib import Node, contract  # noqa: E402

BAD_TOKEN = "bad-token-" + os.urandom(8).hex()
PASSWORD = "pw-" + os.urandom(8).hex()
SQL_MARKER = "marker-device-" + os.urandom(4).hex()
HDR = 20
MAC = 32


def add_principal(n, name, roles, password=None):
    """Makes a principal with one token through the access API; returns (token, token id)."""
    body = {"name": name, "kind": "user", "roles": roles}
    if password:
        body["password"] = password
    n.json("POST", "/v1/principals", body, expect=201)
    doc = n.json("POST", "/v1/tokens", {"principal": name, "note": "audit test"}, expect=201)[1]
    return doc["token"], doc["id"]


def meshctl(*args, node=None, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env["XDG_CONFIG_HOME"] = "/nonexistent"
    if node is not None:
        env["MESH_URL"] = node.url
        env["MESH_TOKEN"] = token or node.token
        if node.scheme == "https":
            env["MESH_CACERT"] = node.cafile
    p = subprocess.run([meshlib.MESHCTL] + list(args), capture_output=True, text=True, env=env,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def segments(data_dir):
    d = os.path.join(data_dir, "audit")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".alog"))


def records(path):
    """(offset, size, seq) of each whole record of a segment file (the format in audit.h)."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + HDR <= len(data):
        magic, plen, seq, _t, _f, _r = struct.unpack_from("<IIQBBH", data, off)
        size = HDR + plen + MAC
        if off + size > len(data):
            break
        out.append((off, size, seq))
        off += size
    return data, out


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global AUDITOR_TOKEN, READER_TOKEN
        cls.n = Node(args=["--audit-checkpoint-interval", "200ms"])
        cls.n.start()
        AUDITOR_TOKEN, cls.auditor_tid = add_principal(cls.n, "inspector", ["auditor"])
        READER_TOKEN, cls.reader_tid = add_principal(cls.n, "analyst", ["reader"], PASSWORD)
        cls.n.create_domain("factory")
        cls.n.apply(contract(), expect=201)
        cls.make_events(cls.n)

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()
        cls.n.destroy()

    @staticmethod
    def make_events(n):
        # authentication failures: a wrong token, and none at all
        assert n.request("GET", "/v1/status", token=BAD_TOKEN)[0] == 401
        assert n.request("GET", "/v1/domains", token="")[0] == 401
        # an authorisation refusal
        assert n.json("POST", "/v1/domains", {"name": "nope"}, token=READER_TOKEN)[0] == 403
        # writes: accepted, and refused (a value out of range)
        st, doc = n.post_rows("factory", "readings", [
            {"device": SQL_MARKER, "ts": "2026-01-01T00:00:00Z", "temp": 20.5, "status": "ok"},
            {"device": SQL_MARKER, "ts": "2026-01-01T00:01:00Z", "temp": 21.5, "status": "ok"}])
        assert st == 200, doc
        st, doc = n.post_rows("factory", "readings", [
            {"device": "d2", "ts": "2026-01-01T00:00:00Z", "temp": 500, "status": "ok"},
            {"device": "d2", "ts": "2026-01-01T00:01:00Z", "temp": 1, "status": "ok"},
            {"device": "d2", "ts": "2026-01-01T00:02:00Z", "temp": 2, "status": "ok"}])
        assert st == 400, doc
        # a query, by the reader
        st, doc = n.json("POST", "/v1/query", {
            "sql": "SELECT device, temp FROM factory.readings WHERE device = '%s'" % SQL_MARKER},
            token=READER_TOKEN)
        assert st == 200 and doc["row_count"] == 2, doc
        # admin changes
        n.create_domain("scratch")
        assert n.request("DELETE", "/v1/domains/scratch")[0] == 204
        # logins: a wrong password, then the right one
        assert n.json("POST", "/v1/login", {"user": "analyst", "password": "wrong-" + PASSWORD},
                      token="")[0] == 401
        assert n.json("POST", "/v1/login", {"user": "analyst", "password": PASSWORD},
                      token="")[0] == 200
        # access changes: a mask on the readings' device for readers, a query under it
        n.json("POST", "/v1/masks", {"domain": "factory", "product": "readings",
                                     "column": "device", "type": "MASK_HASH",
                                     "roles": ["reader"]}, expect=201)
        st, doc = n.json("POST", "/v1/query", {"sql": "SELECT device FROM factory.readings"},
                         token=READER_TOKEN)
        assert st == 200 and doc["row_count"] == 2, doc
        tok = n.json("POST", "/v1/tokens", {"principal": "analyst"}, expect=201)[1]
        assert n.request("DELETE", "/v1/tokens/" + tok["id"])[0] == 204

    def events(self, **params):
        params.setdefault("limit", "10000")
        params.setdefault("order", "asc")
        st, doc = self.n.json("GET", "/v1/audit?" + urllib.parse.urlencode(params),
                              token=AUDITOR_TOKEN)
        self.assertEqual(st, 200, doc)
        return doc["records"]

    def one(self, recs, **want):
        found = [r for r in recs if all(r.get(k) == v for k, v in want.items())]
        self.assertTrue(found, "no event with %s among %d" % (want, len(recs)))
        return found

    # ---- what is recorded ----

    def test_every_kind_of_event(self):
        recs = self.events()
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, sorted(seqs))
        # authentication
        ok = self.one(recs, action="auth.ok", principal="analyst")[0]
        self.assertEqual(ok["token_id"], self.reader_tid)
        self.assertEqual(ok["auth"], "bearer")
        self.assertTrue(ok["source"].startswith("127.0.0.1:"))
        self.assertTrue(ok["request_id"])
        fails = self.one(recs, action="auth.fail")
        # a failed token names nobody; a failed login names the user it tried; neither a token
        self.assertTrue(all("token_id" not in r for r in fails))
        self.assertTrue(all("principal" not in r for r in fails if r.get("auth") != "password"))
        self.assertIn("wrong name or password", [r["details"]["reason"] for r in fails])
        self.assertIn("invalid or expired token", [r["details"]["reason"] for r in fails])
        self.assertIn("no credential", [r["details"]["reason"] for r in fails])
        self.assertTrue(all(r["status"] == 401 and r["outcome"] == "denied" for r in fails))
        # authorisation, both ways
        deny = self.one(recs, action="authz.deny", principal="analyst")[0]
        self.assertEqual(deny["details"]["right"], "admin")
        self.assertEqual(deny["details"]["path"], "/v1/domains")
        self.assertEqual(deny["status"], 403)
        allow = self.one(recs, action="authz.allow", principal="admin", domain="factory",
                         product="readings")[0]
        self.assertEqual(allow["details"]["right"], "write")
        # the query: SQL text, products, rows
        q = [r for r in self.one(recs, action="query", principal="analyst")
             if SQL_MARKER in r["details"]["sql"]][0]
        self.assertEqual(q["details"]["products"], ["factory.readings"])
        self.assertEqual(q["details"]["rows"], 2)
        self.assertEqual(q["details"]["masks"], [])
        self.assertEqual(q["details"]["filters"], [])
        self.assertEqual(q["status"], 200)
        # writes: accepted, and refused
        w = self.one(recs, action="write", outcome="ok", domain="factory", product="readings")[0]
        self.assertEqual(w["details"]["accepted"], 2)
        self.assertEqual(w["details"]["refused"], 0)
        self.assertGreater(w["details"]["seq"], 0)
        bad = self.one(recs, action="write", outcome="failed")[0]
        self.assertEqual(bad["details"]["refused"], 3)
        self.assertEqual(bad["details"]["bad_rows"], 1)
        self.assertEqual(bad["details"]["accepted"], 0)
        self.assertEqual(bad["status"], 400)
        # admin changes
        self.one(recs, action="admin.domain.create", domain="scratch", outcome="ok")
        self.one(recs, action="admin.domain.delete", domain="scratch", outcome="ok")
        c = self.one(recs, action="admin.contract.apply", domain="factory")[0]
        self.assertEqual(c["details"]["outcome"], "created")
        self.assertEqual(c["details"]["products"], ["factory.readings"])
        self.one(recs, action="node.start")
        self.one(recs, action="admin.token.create", principal="meshd")
        # the access API: principals (a password named, never written), tokens, masks
        pc = self.one(recs, action="admin.principal.create", principal="admin", status=201)
        pa = [r for r in pc if r["details"]["request"]["name"] == "analyst"][0]
        self.assertEqual(pa["details"]["request"]["roles"], ["reader"])
        self.assertEqual(pa["details"]["secrets"], ["password"])
        tc = self.one(recs, action="admin.token.create", principal="admin", status=201)
        self.assertIn("inspector", [r["details"]["request"].get("principal") for r in tc])
        rv = self.one(recs, action="admin.token.revoke", status=204)[0]
        self.assertEqual(len(rv["details"]["target"]), 32)
        mk = self.one(recs, action="admin.mask.create", domain="factory", product="readings")[0]
        self.assertEqual(mk["details"]["request"]["type"], "MASK_HASH")
        # logins: the name given, the method, never the password
        lf = self.one(recs, action="auth.fail", principal="analyst", auth="password")[0]
        self.assertEqual(lf["status"], 401)
        self.one(recs, action="auth.ok", principal="analyst", auth="password", status=200)
        # the masked query names its mask; decisions carry the policy version and why
        mq = [r for r in self.one(recs, action="query", principal="analyst")
              if r["details"]["masks"]]
        self.assertTrue(mq, "no query event lists a mask")
        self.assertIn("factory.readings.device: MASK_HASH", mq[0]["details"]["masks"][0])
        self.assertGreater(mq[0]["policy_version"], q.get("policy_version", 0))
        self.assertEqual(deny["details"]["why"], "no grant")
        self.assertIn("policy_version", deny)

    def test_no_token_anywhere(self):
        st, _, raw = self.n.request("GET", "/v1/audit?limit=10000", token=AUDITOR_TOKEN)
        self.assertEqual(st, 200)
        tokens = [meshlib.TOKEN, AUDITOR_TOKEN, READER_TOKEN, BAD_TOKEN, PASSWORD]
        for t in tokens:
            self.assertNotIn(t.encode(), raw)
            for line in self.n.log + self.n.stdout:
                self.assertNotIn(t, line)
        # no file of the data directory holds a token; the audit files hold no SQL in clear
        for root, _, files in os.walk(self.n.data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                for t in tokens:
                    self.assertNotIn(t.encode(), data, f)
                if root.endswith("audit"):
                    self.assertNotIn(SQL_MARKER.encode(), data, f)
                    self.assertNotIn(b"analyst", data, f)
        # encryption at rest is on: the audit key is derived from the node's key (wrapped by
        # the KEK), never stored in clear beside the log
        self.assertFalse(os.path.exists(os.path.join(self.n.data_dir, "audit", "key")))

    # ---- search ----

    def test_search_filters(self):
        recs = self.events(principal="analyst")
        self.assertTrue(recs)
        self.assertTrue(all(r["principal"] == "analyst" for r in recs))
        recs = self.events(action="authz.deny")
        self.assertTrue(recs and all(r["action"] == "authz.deny" for r in recs))
        recs = self.events(action="admin")
        self.assertTrue(all(r["action"].startswith("admin.") for r in recs))
        self.assertIn("admin.domain.delete", [r["action"] for r in recs])
        recs = self.events(product="factory.readings")
        actions = {r["action"] for r in recs}
        self.assertTrue({"query", "write", "authz.allow"} <= actions, actions)
        recs = self.events(product="factory.readings", action="query")
        self.assertTrue(recs and all(r["action"] == "query" for r in recs))
        self.assertEqual(self.events(since="2200-01-01"), [])
        self.assertEqual(self.events(until="2001-01-01"), [])
        self.assertTrue(self.events(since="1h"))
        # newest first by default, with paging
        st, doc = self.n.json("GET", "/v1/audit?limit=3", token=AUDITOR_TOKEN)
        self.assertEqual(doc["order"], "desc")
        self.assertEqual(doc["count"], 3)
        self.assertTrue(doc["more"])
        seqs = [r["seq"] for r in doc["records"]]
        self.assertEqual(seqs, sorted(seqs, reverse=True))
        st, doc2 = self.n.json("GET", "/v1/audit?limit=3&before_seq=%d" %
                               doc["next"]["before_seq"], token=AUDITOR_TOKEN)
        self.assertLess(doc2["records"][0]["seq"], seqs[-1])
        # bad parameters
        for q in ("since=yesterday", "limit=0", "limit=x", "order=up", "after_seq=-1"):
            st, doc = self.n.json("GET", "/v1/audit?" + q, token=AUDITOR_TOKEN)
            self.assertEqual(st, 400, q)
        # the reads themselves are audited
        self.one(self.events(action="audit.read"), principal="inspector")
        # meshctl
        rc, out, err = meshctl("audit", "search", "--principal", "analyst", "--action", "query",
                               "--format", "json", node=self.n, token=AUDITOR_TOKEN)
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertTrue(doc["records"])
        self.assertTrue(all(r["principal"] == "analyst" for r in doc["records"]))
        rc, out, err = meshctl("audit", "search", "--action", "authz.deny", node=self.n,
                               token=AUDITOR_TOKEN)
        self.assertEqual(rc, 0, err)
        self.assertIn("authz.deny", out)
        self.assertIn("analyst", out)

    # ---- who may read it ----

    def test_roles(self):
        # the reader may not read the audit log, nor system.audit
        self.assertEqual(self.n.json("GET", "/v1/audit", token=READER_TOKEN)[0], 403)
        self.assertEqual(self.n.json("POST", "/v1/audit/verify", token=READER_TOKEN)[0], 403)
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT * FROM system.audit"},
                              token=READER_TOKEN)
        self.assertEqual(st, 403, doc)
        rc, _, err = meshctl("audit", "verify", node=self.n, token=READER_TOKEN)
        self.assertEqual(rc, 4, err)
        # the auditor reads the audit log and nothing else: no domain, no product exists for it
        st, doc = self.n.json("GET", "/v1/domains", token=AUDITOR_TOKEN)
        self.assertEqual((st, doc["domains"]), (200, []))
        st, doc = self.n.json("POST", "/v1/query", {"sql": "SELECT * FROM factory.readings"},
                              token=AUDITOR_TOKEN)
        self.assertIn(st, (400, 403), doc)
        self.assertIn("no such table", doc["error"]["message"])
        st, doc = self.n.json("POST", "/v1/query", {
            "sql": "SELECT count(*) FROM system.audit WHERE action = 'auth.fail'"},
            token=AUDITOR_TOKEN)
        self.assertEqual(st, 200, doc)
        self.assertGreaterEqual(doc["rows"][0][0], 2)
        st, doc = self.n.json("POST", "/v1/query", {
            "sql": "SELECT principal, json_extract(details, '$.rows') FROM system.audit "
                   "WHERE action = 'query' AND principal = 'analyst' AND seq > 0 "
                   "AND time > ts('2000-01-01') ORDER BY seq"}, token=AUDITOR_TOKEN)
        self.assertEqual(st, 200, doc)
        self.assertIn(["analyst", 2], doc["rows"])
        # a query joining data and the audit log is still refused to the auditor
        st, doc = self.n.json("POST", "/v1/query", {
            "sql": "SELECT * FROM system.audit, factory.readings"}, token=AUDITOR_TOKEN)
        self.assertIn(st, (400, 403), doc)
        # the admin may do both
        doc = self.n.query("SELECT count(*) FROM system.audit a, factory.readings r "
                           "WHERE a.action = 'write' AND r.device = '%s'" % SQL_MARKER)
        self.assertGreater(doc["rows"][0][0], 0)
        # no domain may take the name of the system schema
        self.assertEqual(self.n.json("POST", "/v1/domains", {"name": "system"})[0], 400)

    def test_sql_pushdown(self):
        """Conditions handed to the audit scan must not change a result: each query is
        compared with the same one written so that SQLite alone evaluates it (seq + 0)."""
        doc = self.n.query("SELECT max(seq), min(time), max(time) FROM system.audit")
        top, t0, t1 = doc["rows"][0]
        mid = (t0 + t1) // 2 if isinstance(t0, int) else None
        conds = ["seq = 7", "seq < 12", "seq <= 12", "seq > 20", "seq >= 20", "seq < 1",
                 "seq = 0", "seq BETWEEN 5 AND 25", "action = 'query'", "action = 'admin'",
                 "principal = 'analyst'", "principal = '2'", "seq > 3 AND seq < 3"]
        if mid is None:  # TIMESTAMP columns are shown as ISO text: compare in ns
            mid = self.n.query("SELECT (min(time) + max(time)) / 2 FROM system.audit",
                               time_format="ns")["rows"][0][0]
        conds += ["time >= %d" % mid, "time < %d" % mid, "time = %d" % mid,
                  "time > %d AND seq < 30" % mid]
        for c in conds:
            plain = c.replace("seq", "(seq + 0)").replace("time", "(time + 0)").replace(
                "action =", "action || '' =").replace("principal =", "principal || '' =")
            a = self.n.query("SELECT count(*), total(seq) FROM system.audit WHERE seq <= %d AND "
                             "(%s)" % (top, c))["rows"][0]
            b = self.n.query("SELECT count(*), total(seq) FROM system.audit WHERE seq <= %d AND "
                             "(%s)" % (top, plain))["rows"][0]
            self.assertEqual(a, b, c)
        # in seq order
        seqs = [r[0] for r in self.n.rows("SELECT seq FROM system.audit WHERE seq <= %d" % top)]
        self.assertEqual(seqs, sorted(seqs))

    def test_verify_through_api(self):
        st, doc = self.n.json("POST", "/v1/audit/verify", token=AUDITOR_TOKEN)
        self.assertEqual(st, 200, doc)
        self.assertTrue(doc["ok"], doc)
        anchor = doc["anchor"]
        st, doc = self.n.json("GET", "/v1/audit/verify?anchor=" + anchor, token=AUDITOR_TOKEN)
        self.assertTrue(doc["ok"], doc)
        seq, mac = anchor.split(":")
        wrong = "%s:%s" % (seq, ("0" if mac[0] != "0" else "1") + mac[1:])
        st, doc = self.n.json("GET", "/v1/audit/verify?anchor=" + wrong, token=AUDITOR_TOKEN)
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["fault"]["code"], "ANCHOR")
        self.assertEqual(self.n.json("GET", "/v1/audit/verify?anchor=12", token=AUDITOR_TOKEN)[0],
                         400)
        rc, out, err = meshctl("audit", "verify", node=self.n, token=AUDITOR_TOKEN)
        self.assertEqual(rc, 0, err)
        self.assertIn("audit log verifies", out)

    def test_metrics(self):
        st, _, body = self.n.request("GET", "/metrics")
        self.assertEqual(st, 200)
        text = body.decode()
        self.assertIn("meshd_audit_lost_total 0\n", text)
        seq = int(re.search(r"^meshd_audit_seq (\d+)$", text, re.M).group(1))
        self.assertGreater(seq, 10)
        self.assertIn("meshd_audit_checkpoint_seq ", text)


class TamperTest(unittest.TestCase):
    """Offline verification of a stopped node's data directory, then of copies of it, each
    damaged one way."""

    @classmethod
    def setUpClass(cls):
        cls.n = Node().start()
        cls.n.create_domain("factory")
        cls.n.apply(contract(), expect=201)
        for i in range(20):
            st, _ = cls.n.post_rows("factory", "readings", [
                {"device": "d%d" % i, "ts": "2026-01-01T00:00:00Z", "temp": i, "status": "ok"}])
            assert st == 200
            cls.n.query("SELECT count(*) FROM factory.readings")
        cls.n.stop()
        cls.pristine = os.path.join(cls.n.tmp, "audit.pristine")
        shutil.copytree(os.path.join(cls.n.data_dir, "audit"), cls.pristine)

    @classmethod
    def tearDownClass(cls):
        cls.n.destroy()

    def setUp(self):
        audit = os.path.join(self.n.data_dir, "audit")
        shutil.rmtree(audit)
        shutil.copytree(self.pristine, audit)
        self.seg = segments(self.n.data_dir)[0]
        self.name = os.path.basename(self.seg)
        self.data, self.recs = records(self.seg)
        self.assertGreater(len(self.recs), 100)

    def verify(self, expect_rc, *more):
        rc, out, err = meshctl("audit", "verify", "--data-dir", self.n.data_dir, *more)
        self.assertEqual(rc, expect_rc, out + err)
        return out, err

    def write(self, data):
        with open(self.seg, "wb") as f:
            f.write(data)

    def test_pristine(self):
        out, _ = self.verify(0)
        self.assertIn("audit log verifies", out)
        out, _ = self.verify(0, "--format", "json")
        doc = json.loads(out)
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["checkpoint_seq"], doc["last_seq"])  # a clean stop checkpoints

    def test_edit_one_byte(self):
        off, size, seq = self.recs[50]
        d = bytearray(self.data)
        d[off + HDR + size // 3] ^= 0x01
        self.write(bytes(d))
        out, err = self.verify(8)
        self.assertIn("first bad record:   %s offset %d seq %d" % (self.name, off, seq), out)
        self.assertIn("MAC", out)
        self.assertIn("does not verify", err)

    def test_delete_record(self):
        off, size, seq = self.recs[40]
        self.write(self.data[:off] + self.data[off + size:])
        out, _ = self.verify(8, "--format", "json")
        f = json.loads(out)["fault"]
        self.assertEqual((f["code"], f["file"], f["offset"], f["seq"]),
                         ("MISSING", self.name, off, seq))

    def test_reorder(self):
        (o1, s1, q1), (o2, s2, q2) = self.recs[60], self.recs[61]
        d = self.data[:o1] + self.data[o2:o2 + s2] + self.data[o1:o1 + s1] + self.data[o2 + s2:]
        self.write(d)
        out, _ = self.verify(8, "--format", "json")
        f = json.loads(out)["fault"]
        self.assertEqual((f["code"], f["offset"], f["seq"]), ("REORDERED", o1, q2))

    def test_truncate(self):
        off, _, seq = self.recs[-3]
        self.write(self.data[:off])
        out, _ = self.verify(8, "--format", "json")
        f = json.loads(out)["fault"]
        self.assertEqual((f["code"], f["offset"], f["seq"]), ("TRUNCATED_CHECKPOINT", off, seq))
        # meshd refuses to start on it: the log is evidence
        n2 = Node(data_dir=self.n.data_dir)
        with self.assertRaises(RuntimeError):
            n2.start()
        self.assertTrue(any("audit" in line and "truncated" in line for line in n2.log))

    def test_head_deleted(self):
        os.unlink(os.path.join(self.n.data_dir, "audit", "HEAD"))
        out, _ = self.verify(8, "--format", "json")
        self.assertEqual(json.loads(out)["fault"]["code"], "HEAD")

    def test_key_needed(self):
        rc, _, err = meshctl("audit", "verify", "--data-dir", self.n.data_dir, "--key-file",
                             "/nonexistent/key")
        self.assertEqual(rc, 1, err)
        rc, _, err = meshctl("audit", "verify", "--data-dir", self.n.tmp)
        self.assertEqual(rc, 1, err)
        rc, out, err = meshctl("audit", "search", "--data-dir", self.n.data_dir, "--action",
                               "write", "--format", "json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(json.loads(out)["records"]), 20)


class CrashTest(unittest.TestCase):
    def test_kill9_while_writing(self):
        n = Node(args=["--audit-checkpoint-interval", "100ms", "--audit-segment-size", "64KiB"])
        n.start()
        try:
            n.create_domain("factory")
            n.apply(contract(), expect=201)
            acked = []
            stop = threading.Event()

            def writer(k):
                i = 0
                while not stop.is_set():
                    try:
                        st, _ = n.post_rows("factory", "readings", [
                            {"device": "w%d" % k, "ts": 1767225600000000000 + i * 1000000,
                             "temp": 1, "status": "ok"}])
                        if st == 200:
                            acked.append((k, i))
                        n.request("POST", "/v1/query", {"sql": "SELECT 1"})
                    except Exception:
                        return
                    i += 1

            threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            time.sleep(2.0)
            n.kill()
            stop.set()
            for t in threads:
                t.join()
            self.assertGreater(len(acked), 10)
            # the log verifies as the crash left it (maybe with a torn tail)
            rc, out, err = meshctl("audit", "verify", "--data-dir", n.data_dir)
            self.assertEqual(rc, 0, out + err)
            # every acknowledged write is in it: its event was written before the answer
            rc, out, err = meshctl("audit", "search", "--data-dir", n.data_dir, "--action",
                                   "write", "--limit", "10000", "--format", "json")
            self.assertEqual(rc, 0, err)
            writes = [r for r in json.loads(out)["records"] if r["outcome"] == "ok"]
            self.assertGreaterEqual(len(writes), len(acked))
            self.assertGreater(len(segments(n.data_dir)), 1)
            # restart: the tail (if torn) is cut, the chain goes on and verifies
            n.start()
            st, doc = n.json("POST", "/v1/audit/verify")
            self.assertTrue(doc["ok"], doc)
            n.post_rows("factory", "readings", [
                {"device": "after", "ts": "2026-02-01T00:00:00Z", "temp": 1, "status": "ok"}])
            n.stop()
            rc, out, err = meshctl("audit", "verify", "--data-dir", n.data_dir)
            self.assertEqual(rc, 0, out + err)
            self.assertNotIn("torn tail", out)
        finally:
            n.destroy()


if __name__ == "__main__":
    unittest.main(verbosity=2)
