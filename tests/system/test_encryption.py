"""System tests of encryption at rest, with real meshd processes.

- Unique markers written through the API (a domain name and description, a product name, a
  contract description, line protocol tags and fields, JSON rows, a query) are found in no
  file of the data directory, neither while meshd runs (killed with kill -9: WAL and log
  present) nor after a clean stop, and the values, the contract and the query text are not in
  the logs meshd wrote. (Domain and product names are identifiers: they appear in log lines
  and the domain's directory is named after it; that is said in docs/security.md.) Backup
  files are scanned for markers by test_backup.py.
- A wrong KEK, or none, is refused at start with a clear message, non-zero exit, and nothing
  in the data directory changed.
- A flipped bit in any page of a domain's database, in the WAL, in a log record or in a key
  file, and pages moved within a file or between files: an error (at start, or the query
  fails), never changed values.
- KEK rotation: after `meshctl keys rotate`, the new KEK opens the node and the old no longer
  does (from a key file, from the generated key beside the data, from a passphrase).
- Data-key re-encryption of a domain while writers keep writing: no acknowledged row lost, no
  file left sealed with the old key (the old key file no longer opens the domain).
- encryption=off is explicit, and clear and encrypted data directories are not mixed up.
"""
import hashlib
import os
import random
import shutil
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, MESHD, TOKEN, Node, contract  # noqa: E402

RND = random.Random(int(os.environ.get("MESH_TEST_SEED", "5")))


def marker(prefix):
    """A unique lowercase word (usable as a domain or product name too)."""
    return prefix + "".join(RND.choice(string.ascii_lowercase) for _ in range(14))


def files_under(root):
    for d, _, names in os.walk(root):
        for name in names:
            yield os.path.join(d, name)


def scan(root, markers):
    """[(file, marker)] for every marker found in the bytes of a file under root."""
    hits = []
    for path in files_under(root):
        try:
            data = read(path)
        except OSError:
            continue
        for m in markers:
            if m.encode() in data:
                hits.append((path, m))
    return hits


def read(path):
    with open(path, "rb") as f:
        return f.read()


def snapshot(root):
    """Content hashes of every file under root except the LOCK file (runtime state)."""
    return {os.path.relpath(p, root): hashlib.sha256(read(p)).hexdigest()
            for p in files_under(root) if os.path.basename(p) != "LOCK"}


def flip(path, off, bit=0x10):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ bit]))


def wait_until(pred, timeout=120):
    """Polls pred until true (a bound against a hang, not a timing assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def new_kek():
    return os.urandom(32).hex()


def write_kek(tmp, name, hexkey):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(hexkey + "\n")
    os.chmod(path, 0o600)
    return path


def start_fails(data_dir, args=(), env=None, timeout=30):
    """Runs meshd expecting it to refuse to start; returns (exit status, output)."""
    e = dict(os.environ)
    for k in ("MESHD_KEK", "MESHD_KEK_PASSPHRASE"):
        e.pop(k, None)
    if env:
        e.update(env)
    cmd = [MESHD, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
           "--admin-token", TOKEN] + list(args)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("meshd started although it should have refused: %s" % cmd)
    return out.returncode, out.stdout + out.stderr


def meshctl(node, *args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    e["XDG_CONFIG_HOME"] = "/nonexistent"
    e["MESH_URL"] = node.url
    e["MESH_TOKEN"] = TOKEN
    if node.scheme == "https":
        e["MESH_CACERT"] = node.cafile
    out = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=e,
                         timeout=600)
    return out.returncode, out.stdout + out.stderr


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def log_records(logdir):
    """[(segment path, offset, seq, body length)] of every record of a domain log."""
    out = []
    for name in sorted(os.listdir(logdir)):
        if not name.endswith(".seg"):
            continue
        path = os.path.join(logdir, name)
        data = read(path)
        off = 0
        while off + 20 <= len(data):
            magic, length, seq, _ = struct.unpack_from("<IIQI", data, off)
            if magic not in (0x31524C4D, 0x32524C4D) or off + 20 + length > len(data):
                break
            out.append((path, off, seq, length, magic))
            off += 20 + length
    return out


ROWS_CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:%(domain)s:notes
version: 1.0.0
status: active
domain: %(domain)s
name: notes
schema:
  - name: notes
    properties:
      - name: id
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: note
        logicalType: string
"""


class EncryptionTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshd-enc-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, **kw):
        kw.setdefault("data_dir", os.path.join(self.tmp, "data"))
        n = Node(**kw)
        self.nodes.append(n)
        return n

    # ---- nothing in clear ----

    def test_markers_nowhere_in_clear(self):
        m = {k: marker(k) for k in ("dom", "ddesc", "prod", "cdesc", "lptag", "lpfield",
                                    "jsonrow", "query")}
        n = self.node().start()
        logs = []
        self.assertTrue(any("BESIDE THE DATA" in line for line in n.log),
                        "the generated key beside the data must be warned about")
        n.create_domain(m["dom"], description=m["ddesc"])
        c = contract(domain=m["dom"], product=m["prod"],
                     extra_props="      - name: note\n        logicalType: string\n")
        c = c.replace("purpose: Test readings.", "purpose: " + m["cdesc"])
        n.apply(c, expect=201)
        lines = ['%s,device=%s-%d temp=21.5,status="ok",note="%s-%d" %d' %
                 (m["prod"], m["lptag"], i, m["lpfield"], i, 1767225600 + i) for i in range(50)]
        st, _, body = n.write_lp(m["dom"], "\n".join(lines), "s")
        self.assertEqual(st, 204, body)
        rows = [{"device": "j%d" % i, "ts": 1767225600 + i, "temp": 20.0 + i, "status": "ok",
                 "note": "%s-%d" % (m["jsonrow"], i)} for i in range(50)]
        st, r = n.post_rows(m["dom"], m["prod"], rows, query="?precision=s")
        self.assertEqual(st, 200, r)
        want = n.rows("SELECT device, note FROM %s.%s ORDER BY device" % (m["dom"], m["prod"]))
        self.assertEqual(len(want), 100)
        q = n.rows("SELECT count(*), '%s' FROM %s.%s WHERE note LIKE '%s%%'" %
                   (m["query"], m["dom"], m["prod"], m["jsonrow"]))
        self.assertEqual(q, [[50, m["query"]]])
        # running: killed, with the WAL and the log as they are
        n.kill()
        logs += n.log
        wal = [p for p in files_under(n.data_dir) if p.endswith("-wal") and os.path.getsize(p)]
        self.assertTrue(wal, "a WAL is expected after kill -9")
        segs = [p for p in files_under(n.data_dir) if p.endswith(".seg") and os.path.getsize(p)]
        self.assertTrue(segs, "log records are expected after kill -9")
        self.assertEqual(scan(n.data_dir, m.values()), [])
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        # again, and a clean stop
        n.start()
        self.assertEqual(n.rows("SELECT device, note FROM %s.%s ORDER BY device" %
                                (m["dom"], m["prod"])), want)
        self.assertEqual(n.stop(), 0)
        logs += n.log
        self.assertEqual(scan(n.data_dir, m.values()), [])
        # the logs meshd wrote hold no value, no contract text, no query
        for k in ("ddesc", "cdesc", "lptag", "lpfield", "jsonrow", "query"):
            self.assertEqual([line for line in logs if m[k] in line], [], k)

    # ---- keys at start ----

    def test_wrong_or_missing_kek_refused(self):
        k1, k2 = new_kek(), new_kek()
        n = self.node(env={"MESHD_KEK": k1}).start()
        n.create_domain("keyed")
        n.apply(contract(domain="keyed"), expect=201)
        n.post_rows("keyed", "readings", [{"device": "a", "ts": 1, "temp": 1}])
        self.assertEqual(n.stop(), 0)
        before = snapshot(n.data_dir)
        rc, out = start_fails(n.data_dir, env={"MESHD_KEK": k2})
        self.assertEqual(rc, 2, out)
        self.assertIn("does not open the catalog's data key: wrong key?", out)
        self.assertEqual(snapshot(n.data_dir), before, "a wrong KEK changed files")
        rc, out = start_fails(n.data_dir)
        self.assertEqual(rc, 2, out)
        self.assertIn("no key-encryption key is configured", out)
        self.assertFalse(os.path.exists(os.path.join(n.data_dir, "kek.key")))
        self.assertEqual(snapshot(n.data_dir), before)
        # a domain's key file wrapped under another KEK is named
        shutil.copy(os.path.join(n.data_dir, "domains", "keyed", "key"),
                    os.path.join(self.tmp, "key.saved"))
        other = self.node(data_dir=os.path.join(self.tmp, "other"), env={"MESHD_KEK": k2})
        other.start()
        other.create_domain("keyed")
        other.stop()
        shutil.copy(os.path.join(other.data_dir, "domains", "keyed", "key"),
                    os.path.join(n.data_dir, "domains", "keyed", "key"))
        rc, out = start_fails(n.data_dir, env={"MESHD_KEK": k1})
        self.assertEqual(rc, 2, out)
        self.assertIn("does not open domain keyed's data key: wrong key?", out)
        shutil.copy(os.path.join(self.tmp, "key.saved"),
                    os.path.join(n.data_dir, "domains", "keyed", "key"))
        rc, out = n.verify(env={"MESHD_KEK": k2})
        self.assertEqual(rc, 2, out)
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM keyed.readings"), 1)
        n.stop()

    def test_clear_and_encrypted_not_mixed(self):
        n = self.node(args=["--encryption", "off"]).start()
        self.assertTrue(any("encryption at rest is OFF" in line for line in n.log))
        n.create_domain("plain")
        n.stop()
        rc, out = start_fails(n.data_dir)
        self.assertEqual(rc, 2, out)
        self.assertIn("created without encryption", out)
        self.assertIn("encryption=off", out)
        e = self.node(data_dir=os.path.join(self.tmp, "enc")).start()
        e.stop()
        rc, out = start_fails(e.data_dir, args=["--encryption", "off"])
        self.assertEqual(rc, 2, out)
        self.assertIn("is encrypted", out)

    # ---- damage ----

    def flip_case(self, kek, data_dir, queries, want, why):
        """Starts meshd on a damaged copy: either the start fails with a clear error, or
        every query fails or returns exactly the original answer. Returns True when the damage
        was noticed (start or a query failed)."""
        env = {"MESHD_KEK": kek}
        n = Node(data_dir=data_dir, env=env)
        try:
            n.start()
        except RuntimeError as e:
            text = str(e)
            self.assertTrue("fails authentication" in text or "damaged" in text or
                            "corrupt" in text.lower(), "%s: start failed unclearly: %s" %
                            (why, text[-2000:]))
            return True
        noticed = False
        try:
            for sql, w in zip(queries, want):
                st, doc = n.json("POST", "/v1/query", {"sql": sql})
                if st == 200 and "error" in doc:
                    noticed = True  # failed after the answer had started: said in the body
                    self.assertIn("authentication", doc["error"]["message"], why)
                elif st == 200:
                    self.assertEqual(doc["rows"], w, "%s: changed values for %s" % (why, sql))
                else:
                    noticed = True
                    msg = doc["error"]["message"] if doc else ""
                    self.assertIn("authentication", msg, "%s: %s" % (why, msg))
        finally:
            n.kill()
        return noticed

    def test_bit_flips_and_moved_pages(self):
        kek = new_kek()
        n = self.node(env={"MESHD_KEK": kek}).start()
        for d in ("flip", "other"):
            n.create_domain(d)
            n.apply(contract(domain=d), expect=201)
            n.apply(ROWS_CONTRACT % {"domain": d}, expect=201)
            n.post_rows(d, "notes", [{"id": "n%04d" % i, "note": "x" * (i % 97) + str(i)}
                                     for i in range(600)])
            n.post_rows(d, "readings", [{"device": "d%d" % (i % 7), "ts": i, "temp": i % 50}
                                        for i in range(600)])
        queries = ["SELECT * FROM flip.notes ORDER BY id",
                   "SELECT * FROM flip.readings ORDER BY device, ts",
                   "SELECT count(*) FROM flip.notes__quarantine"]
        want = [n.rows(q) for q in queries]
        self.assertEqual(n.stop(), 0)
        clean = os.path.join(self.tmp, "clean")
        shutil.copytree(n.data_dir, clean)
        work = os.path.join(self.tmp, "work")
        db = os.path.join("domains", "flip", "data.db")

        def fresh():
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(clean, work)
            return os.path.join(work, db)

        pages = os.path.getsize(os.path.join(clean, db)) // 4096
        self.assertGreater(pages, 5)
        noticed = 0
        for p in range(pages):
            path = fresh()
            flip(path, p * 4096 + RND.randrange(4096))
            noticed += self.flip_case(kek, work, queries, want, "flip in page %d" % (p + 1))
            path = fresh()
            flip(path, p * 4096 + RND.randrange(4096))
            rc, out = Node(data_dir=work, env={"MESHD_KEK": kek}).verify()
            self.assertEqual(rc, 3, "verify missed a flip in page %d: %s" % (p + 1, out))
        self.assertGreater(noticed, pages // 2, "most pages are read by these queries")
        # pages moved within the file, and from another domain's file
        path = fresh()
        with open(path, "r+b") as f:
            f.seek(4096)
            a = f.read(4096)
            b = f.read(4096)
            f.seek(4096)
            f.write(b + a)
        self.flip_case(kek, work, queries, want, "pages 2 and 3 swapped")
        rc, out = Node(data_dir=work, env={"MESHD_KEK": kek}).verify()
        self.assertEqual(rc, 3, out)
        path = fresh()
        with open(os.path.join(work, "domains", "other", "data.db"), "rb") as f:
            f.seek(4096 * 2)
            foreign = f.read(4096)
        with open(path, "r+b") as f:
            f.seek(4096 * 2)
            f.write(foreign)
        self.assertTrue(self.flip_case(kek, work, queries, want, "a page from another domain"))
        # the wrapped key file: refused at start, nothing opened
        fresh()
        flip(os.path.join(work, "domains", "flip", "key"), 60)
        rc, out = start_fails(work, env={"MESHD_KEK": kek})
        self.assertEqual(rc, 2, out)
        self.assertIn("key file checksum mismatch", out)

    def test_wal_and_log_damage(self):
        kek = new_kek()
        n = self.node(env={"MESHD_KEK": kek}).start()
        n.create_domain("flip")
        n.apply(contract(domain="flip"), expect=201)  # time series: rows wait in the log
        n.apply(ROWS_CONTRACT % {"domain": "flip"}, expect=201)
        for b in range(20):
            st, r = n.post_rows("flip", "readings", [{"device": "d%d" % (i % 5),
                                                       "ts": b * 100 + i, "temp": i % 40}
                                                      for i in range(100)])
            self.assertEqual(st, 200, r)
            st, r = n.post_rows("flip", "notes", [{"id": "b%02d-%03d" % (b, i), "note": "v%d" % i}
                                                  for i in range(100)])
            self.assertEqual(st, 200, r)
        queries = ["SELECT * FROM flip.notes ORDER BY id",
                   "SELECT * FROM flip.readings ORDER BY device, ts"]
        want = [n.rows(q) for q in queries]
        n.kill()
        crashed = os.path.join(self.tmp, "crashed")
        shutil.copytree(n.data_dir, crashed)
        work = os.path.join(self.tmp, "work")

        def fresh():
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(crashed, work)

        wal = os.path.join("domains", "flip", "data.db-wal")
        size = os.path.getsize(os.path.join(crashed, wal))
        self.assertGreater(size, 32 + 2 * (24 + 4096))
        # a flipped bit in a WAL frame: SQLite's recovery ends the WAL there (an older state),
        # and the domain log brings the lost transactions back: the same answers
        for off in (32 + 24 + 100, size - 100, 32 + (size - 32) // (4096 + 24) // 2 *
                    (4096 + 24) + 24 + 7):
            fresh()
            flip(os.path.join(work, wal), off)
            w = Node(data_dir=work, env={"MESHD_KEK": kek}).start()
            try:
                for q, expect in zip(queries, want):
                    self.assertEqual(w.rows(q), expect, "WAL flip at %d" % off)
                self.assertTrue(any("the WAL ends before it" in line for line in w.log), w.log)
            finally:
                w.kill()
        # a log record tampered with (its checksum fixed up): replay refuses it
        recs = log_records(os.path.join(crashed, "domains", "flip", "log"))
        self.assertGreater(len(recs), 10)
        self.assertTrue(all(r[4] == 0x32524C4D for r in recs), "records must be sealed")
        fresh()
        path, off, seq, length, _ = recs[-3]
        path = path.replace(crashed, work)
        with open(path, "r+b") as f:
            f.seek(off + 20)
            body = bytearray(f.read(length))
            body[40] ^= 0x04
            f.seek(off + 20)
            f.write(body)
            crc = crc32c(bytes(body), crc32c(struct.pack("<IQ", length, seq)))
            f.seek(off + 16)
            f.write(struct.pack("<I", crc))
        rc, out = start_fails(work, env={"MESHD_KEK": kek})
        self.assertEqual(rc, 2, out)
        self.assertIn("record %d fails authentication" % seq, out)
        rc, out = Node(data_dir=work, env={"MESHD_KEK": kek}).verify()
        self.assertEqual(rc, 3, out)
        # a flipped bit (checksum not fixed) in a record the store has applied: corruption,
        # not a torn write to cut silently
        fresh()
        flip(path, off + 20 + 40)
        rc, out = start_fails(work, env={"MESHD_KEK": kek})
        self.assertEqual(rc, 2, out)
        self.assertIn("which the store has applied", out)
        # the undamaged copy recovers everything
        fresh()
        w = Node(data_dir=work, env={"MESHD_KEK": kek}).start()
        try:
            for q, expect in zip(queries, want):
                self.assertEqual(w.rows(q), expect)
        finally:
            w.stop()

    # ---- the catalog witness: a rolled-back catalog is refused ----

    def revoked_token_node(self, kek):
        """A node whose service token was made and revoked, then killed with kill -9:
        (data dir, token). The revocation is in catalog.db-wal only."""
        n = self.node(env={"MESHD_KEK": kek}).start()
        st, p = n.json("POST", "/v1/principals", {"name": "bot", "kind": "service",
                                                  "roles": ["reader"]})
        self.assertEqual(st, 201, p)
        st, t = n.json("POST", "/v1/tokens", {"principal": "bot"})
        self.assertEqual(st, 201, t)
        st, _ = n.json("GET", "/v1/whoami", token=t["token"])
        self.assertEqual(st, 200)
        st, _ = n.request("DELETE", "/v1/tokens/" + t["id"])[:2]
        self.assertEqual(st, 204)
        st, _ = n.json("GET", "/v1/whoami", token=t["token"])
        self.assertEqual(st, 401)
        n.kill()
        wal = os.path.join(n.data_dir, "catalog.db-wal")
        self.assertGreater(os.path.getsize(wal), 32 + 2 * (24 + 4096), "a catalog WAL")
        return n.data_dir, t["token"]

    def test_catalog_rollback_refused(self):
        kek = new_kek()
        crashed, token = self.revoked_token_node(kek)
        work = os.path.join(self.tmp, "work")
        env = {"MESHD_KEK": kek}

        def fresh():
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(crashed, work)
            return os.path.join(work, "catalog.db-wal")

        # a bit flipped in the last frame (the revocation's commit), and the WAL deleted: the
        # WAL ends earlier, which no AEAD can see; the audit log's witness does
        wal = fresh()
        size = os.path.getsize(wal)
        last = 32 + ((size - 32) // (4096 + 24) - 1) * (4096 + 24)
        flip(wal, last + 24 + 200)
        rc, out = start_fails(work, env=env)
        self.assertEqual(rc, 2, out)
        self.assertRegex(out, r"catalog.db is older than the audit log says: it is at catalog "
                              r"version \d+, but the audit log records version \d+")
        self.assertIn("--accept-catalog-rollback", out)
        rc, out = Node(data_dir=work, env=env).verify()
        self.assertEqual(rc, 3, out)
        self.assertIn("catalog.db: ROLLED BACK", out)
        self.assertIn("verify: DAMAGE FOUND", out)
        for what in ("deleted", "emptied"):
            wal = fresh()
            if what == "deleted":
                os.unlink(wal)
            else:
                open(wal, "wb").close()
            rc, out = start_fails(work, env=env)
            self.assertEqual(rc, 2, "%s: %s" % (what, out))
            self.assertIn("older than the audit log says", out)
            rc, out = Node(data_dir=work, env=env).verify()
            self.assertEqual(rc, 3, out)
            self.assertIn("catalog.db: ROLLED BACK", out)
        # a bit flipped in the first frame, with committed frames after it: damage inside
        # the WAL, refused as such (not taken for a torn end)
        wal = fresh()
        flip(wal, 32 + 24 + 300)
        rc, out = start_fails(work, env=env)
        self.assertEqual(rc, 2, out)
        self.assertIn("WAL frame 1", out)
        self.assertIn("the WAL was damaged or altered inside", out)
        rc, out = Node(data_dir=work, env=env).verify()
        self.assertEqual(rc, 3, out)
        # accepting the loss (the last frame damaged: the revocation lost): explicit, logged,
        # audited, and the next starts are normal
        wal = fresh()
        flip(wal, last + 24 + 200)
        w = Node(data_dir=work, env=env, args=["--accept-catalog-rollback"]).start()
        try:
            self.assertTrue(any("accepted (--accept-catalog-rollback)" in line
                                for line in w.log), w.log)
            st, _ = w.json("GET", "/v1/whoami", token=token)
            self.assertEqual(st, 200, "the revocation was lost, as accepted")
            st, ev = w.json("GET", "/v1/audit?action=catalog.rollback_accepted&limit=5")
            self.assertEqual(st, 200, ev)
            self.assertEqual(len(ev["records"]), 1, ev)
            d = ev["records"][0]["details"]
            self.assertLess(d["catalog_version_found"], d["audit_catalog_version"])
            st, _ = w.request("DELETE", "/v1/tokens/" + w.json(
                "GET", "/v1/tokens?principal=bot")[1]["tokens"][0]["id"])[:2]
            self.assertEqual(st, 204)
        finally:
            w.kill()
        w = Node(data_dir=work, env=env).start()  # no flag: nothing was lost this time
        try:
            st, _ = w.json("GET", "/v1/whoami", token=token)
            self.assertEqual(st, 401)
        finally:
            self.assertEqual(w.stop(), 0)
        rc, out = Node(data_dir=work, env=env).verify()
        self.assertEqual(rc, 0, out)

    def test_catalog_kill_during_admin_changes_never_refused(self):
        """No false alarm: kill -9 while admin changes go on, several times; every restart
        opens, and the witness never exceeds the catalog."""
        kek = new_kek()
        n = self.node(env={"MESHD_KEK": kek})
        for round_ in range(4):
            n.start()
            stop = threading.Event()
            done = [0]

            def changes():
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        name = "r%d-%d" % (round_, i)
                        n.json("POST", "/v1/roles", {"name": name})
                        n.json("POST", "/v1/grants", {"role": name, "action": "read"})
                        st, t = n.json("POST", "/v1/tokens", {"note": name})
                        if st == 201:
                            n.request("DELETE", "/v1/tokens/" + t["id"])
                        done[0] += 1
                    except Exception:
                        return  # the node was killed under the request

            th = threading.Thread(target=changes)
            th.start()
            self.assertTrue(wait_until(lambda: done[0] >= 3 + 2 * round_), "changes were made")
            n.kill()
            stop.set()
            th.join()
        n.start()
        st, who = n.json("GET", "/v1/whoami")
        self.assertEqual(st, 200, who)
        self.assertEqual(n.stop(), 0)
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        self.assertIn("not older than the audit log's", out)

    def test_kek_command_end_to_end(self):
        """meshd --kek-command runs a real program (no shell) for its KEK, and meshctl keys
        rotate --new-kek-command moves the node to another program's key: the old command
        then opens nothing, the new one everything."""
        k1, k2 = new_kek(), new_kek()
        f1, f2 = write_kek(self.tmp, "c1", k1), write_kek(self.tmp, "c2", k2)
        # a KMS stand-in: prints the key file it is given (words split on blanks, no shell)
        cmd1, cmd2 = "/bin/cat " + f1, "/bin/cat " + f2
        n = self.node(args=["--kek-command", cmd1]).start()
        self.assertFalse(any("kek.key" in line and "beside" in line for line in n.log), n.log)
        n.create_domain("cmd")
        n.apply(contract(domain="cmd"), expect=201)
        n.post_rows("cmd", "readings", [{"device": "a", "ts": i, "temp": i} for i in range(10)])
        rc, out = meshctl(n, "keys", "status", "--format", "json")
        self.assertEqual(rc, 0, out)
        self.assertIn("command", out)
        rc, out = meshctl(n, "keys", "rotate", "--new-kek-command", cmd2)
        self.assertEqual(rc, 0, out)
        self.assertIn("key files rewrapped", out)
        self.assertEqual(n.stop(), 0)
        rc, out = start_fails(n.data_dir, args=["--kek-command", cmd1])
        self.assertEqual(rc, 2, out)
        self.assertIn("wrong key?", out)
        rc, out = start_fails(n.data_dir, args=["--kek-command", "/bin/false"])
        self.assertEqual(rc, 2, out)
        self.assertIn("kek_command: /bin/false failed", out)
        n.args = ["--kek-command", cmd2]
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM cmd.readings"), 10)
        self.assertEqual(n.stop(), 0)
        for k in (k1, k2):
            self.assertEqual(scan(n.data_dir, [k]), [])
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)

    # ---- rotation ----

    def test_kek_rotation(self):
        k1, k2 = new_kek(), new_kek()
        f1, f2 = write_kek(self.tmp, "k1", k1), write_kek(self.tmp, "k2", k2)
        n = self.node(args=["--kek-file", f1]).start()
        n.create_domain("rot")
        n.apply(contract(domain="rot"), expect=201)
        n.post_rows("rot", "readings", [{"device": "a", "ts": i, "temp": i} for i in range(10)])
        rc, out = meshctl(n, "keys", "rotate", "--new-kek-file", f2)
        self.assertEqual(rc, 0, out)
        self.assertIn("key files rewrapped", out)
        n.post_rows("rot", "readings", [{"device": "b", "ts": i, "temp": i} for i in range(10)])
        rc, out = meshctl(n, "keys", "status", "--format", "json")
        self.assertEqual(rc, 0, out)
        self.assertEqual(n.stop(), 0)
        rc, out = start_fails(n.data_dir, args=["--kek-file", f1])
        self.assertEqual(rc, 2, out)
        self.assertIn("wrong key?", out)
        n.args = ["--kek-file", f2]
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM rot.readings"), 20)
        # to a passphrase, and back to a key through the environment
        pf = os.path.join(self.tmp, "pass")
        with open(pf, "w") as f:
            f.write("a long passphrase for the test\n")
        rc, out = meshctl(n, "keys", "rotate", "--new-passphrase-file", pf)
        self.assertEqual(rc, 0, out)
        n.stop()
        n.args = ["--kek-passphrase-file", pf]
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM rot.readings"), 20)
        k3 = new_kek()
        rc, out = meshctl(n, "keys", "rotate", "--new-kek-env", "NEWKEK", env={"NEWKEK": k3})
        self.assertEqual(rc, 0, out)
        n.stop()
        rc, out = start_fails(n.data_dir, args=["--kek-passphrase-file", pf])
        self.assertEqual(rc, 2, out)
        n.args = []
        n.env = {"MESHD_KEK": k3}
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM rot.readings"), 20)
        # the audit log outlived three KEKs (its key derives from the node's key, which a
        # KEK rotation rewraps but never changes) and names each rotation, never a key
        st, ev = n.json("GET", "/v1/audit?action=admin.kek.rotate&limit=10")
        self.assertEqual(st, 200, ev)
        self.assertEqual(len(ev["records"]), 3, ev)
        for e in ev["records"]:
            self.assertEqual(e["principal"], "admin")
            self.assertEqual(len(e["details"]["kek_id"]), 32)
        for k in (k1, k2, k3):
            self.assertNotIn(k, str(ev))
            # nor in meshd's own log, nor in any file of the data directory
            self.assertEqual([line for line in n.log if k in line], [])
            self.assertEqual(scan(n.data_dir, [k]), [])
        rc, out = meshctl(n, "audit", "verify")
        self.assertEqual(rc, 0, out)
        n.stop()
        rc, out = n.verify(env={"MESHD_KEK": k3})
        self.assertEqual(rc, 0, out)
        self.assertIn("audit log: ok", out)

    def test_audit_log_under_the_kek(self):
        """The audit log's key is derived from the node's key: no audit key in clear, the
        log verifies offline only with the KEK, and damage is found by meshd --verify."""
        k1 = new_kek()
        f1, f2 = write_kek(self.tmp, "k1", k1), write_kek(self.tmp, "k2", new_kek())
        n = self.node(args=["--kek-file", f1]).start()
        n.create_domain("aud")
        n.stop()
        audit = os.path.join(n.data_dir, "audit")
        self.assertFalse(os.path.exists(os.path.join(audit, "key")))
        rc, out = meshctl(n, "audit", "verify", "--data-dir", n.data_dir, "--kek-file", f1)
        self.assertEqual(rc, 0, out)
        self.assertIn("audit log verifies", out)
        rc, out = meshctl(n, "audit", "search", "--data-dir", n.data_dir, "--kek-file", f1,
                          "--action", "admin.domain.create", "--format", "json")
        self.assertEqual(rc, 0, out)
        self.assertIn('"aud"', out)
        rc, out = meshctl(n, "audit", "verify", "--data-dir", n.data_dir, "--kek-file", f2)
        self.assertEqual(rc, 1, out)
        self.assertIn("wrong key?", out)
        rc, out = meshctl(n, "audit", "verify", "--data-dir", n.data_dir)
        self.assertEqual(rc, 1, out)
        self.assertIn("no key-encryption key", out)
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        self.assertIn("audit log: ok", out)
        # one flipped bit in the middle of a segment: meshd --verify and meshctl name it
        seg = sorted(p for p in files_under(audit) if os.path.getsize(p) > 200 and
                     os.path.basename(p) != "HEAD")[0]
        flip(seg, os.path.getsize(seg) // 2)
        rc, out = n.verify()
        self.assertEqual(rc, 3, out)
        self.assertIn("audit log: DAMAGED", out)
        rc, out = meshctl(n, "audit", "verify", "--data-dir", n.data_dir, "--kek-file", f1)
        self.assertEqual(rc, 8, out)
        self.assertIn("AUDIT LOG DOES NOT VERIFY", out)

    def test_audit_key_without_encryption(self):
        n = self.node(args=["--encryption", "off"]).start()
        n.create_domain("clear")
        n.stop()
        key = os.path.join(n.data_dir, "audit", "key")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        rc, out = meshctl(n, "audit", "verify", "--data-dir", n.data_dir)
        self.assertEqual(rc, 0, out)
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        self.assertIn("audit log: ok", out)

    def test_generated_kek_moved_off_the_data(self):
        n = self.node().start()
        kk = os.path.join(n.data_dir, "kek.key")
        self.assertEqual(os.stat(kk).st_mode & 0o777, 0o600)
        n.create_domain("gen")
        rc, out = meshctl(n, "keys", "rotate", "--generate")
        self.assertEqual(rc, 0, out)  # a new one, still beside the data
        self.assertIn("nothing to change", out)
        n.stop()
        n.start()
        k2 = new_kek()
        f2 = write_kek(self.tmp, "k2", k2)
        rc, out = meshctl(n, "keys", "rotate", "--new-kek-file", f2)
        self.assertEqual(rc, 0, out)
        self.assertFalse(os.path.exists(kk), "the old key beside the data must go")
        n.stop()
        rc, out = start_fails(n.data_dir)
        self.assertEqual(rc, 2, out)
        self.assertIn("no key-encryption key is configured", out)
        n.args = ["--kek-file", f2]
        n.start()
        self.assertEqual(n.json("GET", "/v1/domains/gen")[0], 200)
        n.stop()

    def test_data_key_rotation_while_writing(self):
        kek = new_kek()
        n = self.node(env={"MESHD_KEK": kek}).start()
        n.create_domain("rk")
        n.apply(contract(domain="rk"), expect=201)
        n.apply(ROWS_CONTRACT % {"domain": "rk"}, expect=201)
        for b in range(40):  # some MiB, so the copy takes several steps
            st, r = n.post_rows("rk", "notes", [{"id": "bulk-%02d-%04d" % (b, i),
                                                 "note": "n" * 200} for i in range(500)])
            self.assertEqual(st, 200, r)
        old_key = read(os.path.join(n.data_dir, "domains", "rk", "key"))
        stop = threading.Event()
        acked = {"notes": [], "readings": []}
        errors = []

        def writer(product):
            b = 0
            while not stop.is_set():
                if product == "notes":
                    rows = [{"id": "w-%05d-%d" % (b, i), "note": "v"} for i in range(20)]
                else:
                    rows = [{"device": "w", "ts": b * 20 + i, "temp": i} for i in range(20)]
                try:
                    st, r = n.post_rows("rk", product, rows,
                                        headers={"Idempotency-Key": "%s-%d" % (product, b)})
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    continue
                if st == 200:
                    acked[product].append(b)
                    b += 1
                else:
                    errors.append((st, r))
                    time.sleep(0.01)

        threads = [threading.Thread(target=writer, args=(p,)) for p in acked]
        for t in threads:
            t.start()
        time.sleep(0.3)
        before = sum(len(v) for v in acked.values())
        rc, out = meshctl(n, "keys", "rotate", "--domain", "rk", "--data-key", "--timeout", "0")
        during = sum(len(v) for v in acked.values()) - before
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(60)
        self.assertEqual(rc, 0, out)
        self.assertIn("generation 1", out)
        self.assertEqual(errors, [])
        self.assertGreater(during, 0, "writes must continue during the re-encryption")
        print("re-encryption: %s; %d batches acknowledged during it" % (out.strip(), during))
        self.assertEqual(n.scalar("SELECT count(*) FROM rk.notes"),
                         40 * 500 + 20 * len(acked["notes"]))
        self.assertEqual(n.scalar("SELECT count(*) FROM rk.readings"),
                         20 * len(acked["readings"]))
        self.assertEqual(n.scalar("SELECT count(*) FROM rk.notes WHERE id LIKE 'w-%'"),
                         20 * len(acked["notes"]))
        n.kill()  # the log must replay under the new key
        d = os.path.join(n.data_dir, "domains", "rk")
        self.assertFalse(os.path.exists(os.path.join(d, "data.db")))
        self.assertTrue(os.path.exists(os.path.join(d, "data.1.db")))
        for path, off, seq, length, _ in log_records(os.path.join(d, "log")):
            with open(path, "rb") as f:
                f.seek(off + 20)
                gen = struct.unpack("<I", f.read(4))[0]
            self.assertEqual(gen, 1, "log record %d sealed with an old key" % seq)
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        # the old data key opens nothing any more
        new_key = read(os.path.join(d, "key"))
        with open(os.path.join(d, "key"), "wb") as f:
            f.write(old_key)
        rc, out = start_fails(n.data_dir, env={"MESHD_KEK": kek})
        self.assertEqual(rc, 2, out)
        with open(os.path.join(d, "key"), "wb") as f:
            f.write(new_key)
        n.start()
        self.assertEqual(n.scalar("SELECT count(*) FROM rk.notes"),
                         40 * 500 + 20 * len(acked["notes"]))
        self.assertEqual(n.scalar("SELECT count(*) FROM rk.readings"),
                         20 * len(acked["readings"]))
        n.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
