"""System tests of backups and restore, with real meshd and meshctl processes.

- A backup taken with `meshctl backup create` while a writer thread keeps writing: restored
  with `meshctl backup restore` into a new directory, a node started on it serves exactly
  the rows acknowledged up to the log position the manifest records (row counts, and a
  checksum over every row in key order, equal to the source's for those rows), with the
  same contracts, the same tokens, and every domain.
- No plaintext marker written through the API is in any backup file, nor in the restored
  data directory; staging files are gone after a backup.
- A truncated file, a flipped bit, swapped chunks, a wrong KEK, a wrong backup id in the
  header: `meshctl backup verify` and `restore` refuse with a clear message, and restore
  writes nothing.
- After a KEK rotation the old backup restores with the old KEK (onto the new one with
  --target-kek-file).
- In place: refused without --in-place --force, and while meshd runs (its LOCK); done with
  the node stopped, the node comes back with the backup's data.
- Scheduled backups with retention (a short interval), polled with deadlines.
- encryption=off: a backup is compressed and checksummed, not encrypted, and restores.
- A passphrase KEK: the backup opens with the passphrase alone (its salt is in the backup).
- A restored mesh replica catching up from its domain's stream: SKIPPED, domains are not
  replicated through the mesh (NATS JetStream streams) yet.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, TOKEN, Node, contract, wait_for  # noqa: E402

MARKER = "plainmarker-6f1d2c9a0b"

NOTES = """apiVersion: v3.1.0
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
      - name: n
        logicalType: integer
"""


def read(path):
    with open(path, "rb") as f:
        return f.read()


def files_under(root):
    for d, _, names in os.walk(root):
        for name in names:
            yield os.path.join(d, name)


def write_kek(tmp, name):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def ctl(args, node=None, env=None, timeout=600):
    e = dict(os.environ)
    for k in ("MESHD_KEK", "MESH_URL", "MESH_TOKEN", "MESH_CACERT"):
        e.pop(k, None)
    e["XDG_CONFIG_HOME"] = "/nonexistent"
    if node is not None:
        e["MESH_URL"] = node.url
        e["MESH_TOKEN"] = TOKEN
        if node.scheme == "https":
            e["MESH_CACERT"] = node.cafile
    if env:
        e.update(env)
    out = subprocess.run([MESHCTL] + list(args), capture_output=True, text=True, env=e,
                         timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def chunks(data):
    """[(offset, total length)] of the chunks of an archive, and the header length."""
    kflen = struct.unpack_from("<I", data, 64)[0]
    off = hdr = 72 + kflen + 4
    out = []
    while off < len(data) - 24:
        n = struct.unpack_from("<I", data, off)[0]
        out.append((off, 20 + n + 16))
        off += 20 + n + 16
    return hdr, out


def rows_digest(node, sql):
    rows = node.rows(sql)
    return len(rows), hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


class BackupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshd-backup-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, data_dir, kek=None, args=()):
        a = list(args)
        if kek:
            a += ["--kek-file", kek]
        n = Node(data_dir=data_dir, args=a)
        self.nodes.append(n)
        return n

    def fill(self, n):
        n.create_domain("factory", description="plant " + MARKER)
        n.apply(contract(domain="factory"), expect=201)
        n.apply(NOTES % {"domain": "factory"}, expect=201)
        n.create_domain("office")
        n.apply(NOTES % {"domain": "office"}, expect=201)
        # some MiB of little compressible text: the copy takes several steps, SQLite's cache
        # spills, the archive has many chunks
        for b in range(30):
            st, r = n.post_rows("factory", "notes", [{"id": "bulk-%02d-%04d" % (b, i),
                                                     "note": MARKER + " " + os.urandom(80).hex(),
                                                     "n": i} for i in range(500)])
            self.assertEqual(st, 200, r)
        st, r = n.post_rows("office", "notes", [{"id": "o-%d" % i, "note": MARKER, "n": i}
                                                for i in range(50)])
        self.assertEqual(st, 200, r)

    def test_backup_during_writes_restore_and_refusals(self):
        kek = write_kek(self.tmp, "kek")
        src = self.node(os.path.join(self.tmp, "src"), kek).start()
        self.fill(src)
        stop = threading.Event()
        acked = []  # (seq, batch) of acknowledged writes
        errors = []

        def writer():
            b = 0
            while not stop.is_set():
                rows = [{"device": "w%05d" % b, "ts": i, "temp": i % 50,
                         "status": "ok"} for i in range(20)]
                notes = [{"id": "w-%05d-%d" % (b, i), "note": MARKER, "n": b} for i in range(5)]
                try:
                    st, r = src.post_rows("factory", "readings", rows)
                    st2, r2 = src.post_rows("factory", "notes", notes)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    continue
                if st == 200 and st2 == 200:
                    acked.append((r["seq"], r2["seq"], b))
                else:
                    errors.append((st, r, st2, r2))
                b += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            wait_for(lambda: len(acked) >= 20, timeout=30)
            rc, out = ctl(["backup", "create", "--format", "json"], node=src)
            during = len(acked)
            wait_for(lambda: len(acked) >= during + 10, timeout=30)
        finally:
            stop.set()
            t.join()
        self.assertEqual(rc, 0, out)
        self.assertEqual(errors, [])
        m = json.loads(out.strip().splitlines()[-1])
        bid = m["id"]
        seq = {d["name"]: d["applied_seq"] for d in m["domains"]}
        self.assertEqual(sorted(seq), ["factory", "office"])
        self.assertTrue(m["encrypted"])
        self.assertIsNone(m["mesh"])
        self.assertEqual([f["name"] for f in m["files"]],
                         ["catalog.db", "domains/factory/data.db", "domains/office/data.db"])
        for f in m["files"]:
            self.assertEqual(len(f["sha256"]), 64)
        fc = [d for d in m["domains"] if d["name"] == "factory"][0]
        self.assertEqual(sorted(c["version"] for c in fc["contracts"]), ["1.0.0", "1.0.0"])
        # writes went on during the backup, and some were acknowledged after its position
        after = [a for a in acked if a[1] > seq["factory"]]
        self.assertTrue(after, "no write was acknowledged after the backup's position")
        in_backup = [b for s1, s2, b in acked if s2 <= seq["factory"]]
        self.assertTrue(in_backup, "no concurrent write is in the backup")

        backup_dir = os.path.join(src.data_dir, "backups")
        path = os.path.join(backup_dir, bid + ".mbk")
        self.assertTrue(os.path.exists(path))
        # no plaintext in any backup file; no staging left
        for p in files_under(backup_dir):
            self.assertNotIn(MARKER.encode(), read(p), p)
        self.assertEqual(sorted(os.listdir(backup_dir)), [bid + ".mbk"])

        # the expected state: the source's rows of the batches up to the position
        keep = set(b for s1, s2, b in acked if s1 <= seq["factory"])
        keep_notes = set(b for s1, s2, b in acked if s2 <= seq["factory"])
        devs = ",".join("'w%05d'" % b for b in sorted(keep)) or "''"
        want_r = rows_digest(src, "SELECT device, ts, temp, status FROM factory.readings "
                                  "WHERE device IN (%s) ORDER BY device, ts" % devs)
        nn = ",".join(str(b) for b in sorted(keep_notes)) or "-1"
        # (one condition, no OR: `a OR n IN (...)` over a product loses rows today, see the
        # report of the backups branch)
        want_n = rows_digest(src, "SELECT id, note, n FROM factory.notes WHERE "
                                  "substr(id, 1, 5) = 'bulk-' OR n + 0 IN (%s) AND "
                                  "substr(id, 1, 2) = 'w-' ORDER BY id" % nn)
        want_o = rows_digest(src, "SELECT id, note, n FROM office.notes ORDER BY id")
        self.assertEqual(want_r[0], 20 * len(keep))

        # list and verify through the node
        rc, out = ctl(["backup", "list"], node=src)
        self.assertEqual(rc, 0, out)
        self.assertIn(bid, out)
        self.assertIn("factory,office", out)
        rc, out = ctl(["backup", "verify", bid], node=src)
        self.assertEqual(rc, 0, out)
        self.assertIn("verified", out)

        # restore offline into a new directory, then start a node on it
        new = os.path.join(self.tmp, "restored")
        rc, out = ctl(["backup", "restore", path, "--data-dir", new])
        self.assertEqual(rc, 2, out)  # no KEK
        self.assertIn("give that key-encryption key", out)
        self.assertFalse(os.path.exists(os.path.join(new, "catalog.db")))
        rc, out = ctl(["backup", "restore", path, "--data-dir", new, "--kek-file", kek])
        self.assertEqual(rc, 0, out)
        for p in files_under(new):
            self.assertNotIn(MARKER.encode(), read(p), p)
        dst = self.node(new, kek).start()
        self.assertEqual(rows_digest(dst, "SELECT device, ts, temp, status FROM factory.readings "
                                          "ORDER BY device, ts"), want_r)
        self.assertEqual(rows_digest(dst, "SELECT id, note, n FROM factory.notes ORDER BY id"),
                         want_n)
        self.assertEqual(rows_digest(dst, "SELECT id, note, n FROM office.notes ORDER BY id"),
                         want_o)
        agg = "SELECT count(*), sum(temp), min(device), max(device) FROM factory.readings"
        self.assertEqual(dst.rows(agg), src.rows(agg + " WHERE device IN (%s)" % devs))
        st, doc = dst.json("GET", "/v1/domains/factory", expect=200)
        self.assertIn(MARKER, json.dumps(doc))
        # the restored node goes on from the backup's position
        st, r = dst.post_rows("factory", "notes", [{"id": "after-restore", "note": "x", "n": 1}])
        self.assertEqual(st, 200, r)
        self.assertEqual(r["seq"], seq["factory"] + 1)
        dst.stop()
        rc, out = dst.verify(["--kek-file", kek])
        self.assertEqual(rc, 0, out)
        print("restored backup %s: factory at seq %d (%d readings, %d notes), %d writes after it"
              % (bid, seq["factory"], want_r[0], want_n[0], len(after)))
        print("SKIP: a restored mesh replica catching up from its domain's stream is not tested:"
              " domains are not replicated through the mesh (JetStream streams) yet")

        # refusals: each leaves the target untouched
        bad_dir = os.path.join(self.tmp, "bad")
        data = read(path)
        hdr, ch = chunks(data)

        def refused(blob, want, kek_file=kek, code=8):
            p = os.path.join(self.tmp, "bad.mbk")
            with open(p, "wb") as f:
                f.write(blob)
            rc, out = ctl(["backup", "verify", "--file", p, "--kek-file", kek_file])
            self.assertEqual(rc, code, out)
            self.assertIn(want, out)
            rc, out = ctl(["backup", "restore", p, "--data-dir", bad_dir, "--kek-file", kek_file])
            self.assertEqual(rc, code, out)
            self.assertIn(want, out)
            self.assertFalse(os.path.exists(bad_dir) and os.listdir(bad_dir), want)

        rc, out = ctl(["backup", "verify", "--file", path, "--kek-file", kek])
        self.assertEqual(rc, 0, out)
        refused(data[:len(data) - 100], "truncated")
        refused(data[:ch[0][0] + ch[0][1] // 2], "truncated")
        mid = ch[0][0] + 20 + ch[0][1] // 2
        refused(data[:mid] + bytes([data[mid] ^ 0x08]) + data[mid + 1:], "fails authentication")
        (o0, l0), (o1, l1) = ch[0], ch[1]
        swapped = data[:o0] + data[o1:o1 + l1] + data[o0:o0 + l0] + data[o1 + l1:]
        refused(swapped, "fails authentication")
        other = write_kek(self.tmp, "other-kek")
        refused(data, "wrong key-encryption key", kek_file=other, code=4)
        # another id in the header (checksum fixed up): the key wrap and chunks no longer fit
        h = bytearray(data[:hdr])
        h[16:16 + 8] = b"19991231"
        struct.pack_into("<I", h, hdr - 4, crc32c(bytes(h[:hdr - 4])))
        refused(bytes(h) + data[hdr:], "header was altered")
        # not empty, no --in-place
        rc, out = ctl(["backup", "restore", path, "--data-dir", new, "--kek-file", kek])
        self.assertEqual(rc, 5, out)
        self.assertIn("not empty", out)

        # a KEK rotation later: the old backup needs the old KEK
        new_kek = write_kek(self.tmp, "kek2")
        rc, out = ctl(["keys", "rotate", "--new-kek-file", new_kek], node=src)
        self.assertEqual(rc, 0, out)
        rc, out = ctl(["backup", "verify", bid], node=src)
        self.assertEqual(rc, 4, out)
        rc, out = ctl(["backup", "list"], node=src)
        self.assertEqual(rc, 0, out)
        rot = os.path.join(self.tmp, "rotated")
        rc, out = ctl(["backup", "restore", path, "--data-dir", rot, "--kek-file", kek,
                       "--target-kek-file", new_kek])
        self.assertEqual(rc, 0, out)
        n3 = self.node(rot, new_kek).start()
        self.assertEqual(rows_digest(n3, "SELECT id, note, n FROM office.notes ORDER BY id"),
                         want_o)
        n3.stop()

        # in place: refused while the node runs, then done with it stopped
        rc, out = ctl(["backup", "restore", path, "--data-dir", src.data_dir, "--in-place",
                       "--force", "--kek-file", kek, "--target-kek-file", new_kek])
        self.assertEqual(rc, 5, out)
        self.assertIn("running meshd", out)
        rc, out = ctl(["backup", "restore", path, "--data-dir", src.data_dir, "--in-place",
                       "--kek-file", kek])
        self.assertEqual(rc, 2, out)
        src.stop()
        rc, out = ctl(["backup", "restore", path, "--data-dir", src.data_dir, "--in-place",
                       "--force", "--kek-file", kek, "--target-kek-file", new_kek])
        self.assertEqual(rc, 0, out)
        src.args = [a if a != kek else new_kek for a in src.args]
        src.start()
        self.assertEqual(rows_digest(src, "SELECT device, ts, temp, status FROM "
                                          "factory.readings ORDER BY device, ts"), want_r)
        rc, out = ctl(["backup", "list"], node=src)
        self.assertIn(bid, out)  # the backups stayed
        src.stop()

    def test_partial_scheduled_and_clear(self):
        # encryption off: compressed and checksummed, not encrypted; a partial backup
        n = self.node(os.path.join(self.tmp, "clear"),
                      args=["--encryption", "off", "--backup-schedule", "1s",
                            "--backup-retention", "2"]).start()
        self.fill(n)
        # one backup at a time: a scheduled one may be running (409, exit 5): try again
        end = time.time() + 60
        while True:
            rc, out = ctl(["backup", "create", "--domain", "office", "--format", "json"], node=n)
            if rc != 5 or time.time() > end:
                break
            time.sleep(0.1)
        self.assertEqual(rc, 0, out)
        m = json.loads(out.strip().splitlines()[-1])
        self.assertFalse(m["encrypted"])
        self.assertEqual([d["name"] for d in m["domains"]], ["office"])
        partial = os.path.join(self.tmp, "partial.mbk")
        shutil.copy(os.path.join(n.data_dir, "backups", m["id"] + ".mbk"), partial)
        # scheduled backups with retention: several are made, at most 2 are kept
        seen = set()

        def made():
            st, doc = n.json("GET", "/v1/backups", expect=200)
            job = doc.get("last_job") or {}
            if job.get("state") == "done" and job.get("by") == "schedule":
                seen.add(job["id"])
            return len(seen) >= 3

        self.assertTrue(wait_for(made, timeout=60, step=0.2), "no scheduled backups")

        def kept():
            st, doc = n.json("GET", "/v1/backups", expect=200)
            return len(doc["backups"]) == 2

        self.assertTrue(wait_for(kept, timeout=30, step=0.2))
        st, h, body = n.request("GET", "/metrics")
        text = body.decode()
        done = [l for l in text.splitlines() if l.startswith('meshd_backups_total{outcome="done"}')]
        self.assertTrue(done and int(done[0].split()[-1]) >= 4, text[-2000:])
        self.assertIn("meshd_backup_last_success_timestamp_seconds ", text)
        n.stop()
        new = os.path.join(self.tmp, "clear-restored")
        rc, out = ctl(["backup", "restore", partial, "--data-dir", new])
        self.assertEqual(rc, 0, out)
        r = self.node(new, args=["--encryption", "off"]).start()
        st, doc = r.json("GET", "/v1/domains", expect=200)
        self.assertEqual([d["name"] for d in doc["domains"]], ["office"])
        self.assertEqual(r.scalar("SELECT count(*) FROM office.notes"), 50)
        r.stop()

    def test_passphrase_kek(self):
        # the backup records the passphrase's scrypt salt: the same passphrase opens it on a
        # machine without the node's catalog.key, and the restored node starts with it
        pf = os.path.join(self.tmp, "pass")
        with open(pf, "w") as f:
            f.write("correct horse battery staple\n")
        os.chmod(pf, 0o600)
        n = self.node(os.path.join(self.tmp, "pp"), args=["--kek-passphrase-file", pf]).start()
        n.create_domain("office")
        n.apply(NOTES % {"domain": "office"}, expect=201)
        st, r = n.post_rows("office", "notes", [{"id": "p-%d" % i, "note": MARKER, "n": i}
                                                for i in range(30)])
        self.assertEqual(st, 200, r)
        rc, out = ctl(["backup", "create", "--format", "json"], node=n)
        self.assertEqual(rc, 0, out)
        bid = json.loads(out.strip().splitlines()[-1])["id"]
        n.stop()
        path = os.path.join(n.data_dir, "backups", bid + ".mbk")
        wrong = os.path.join(self.tmp, "wrong")
        with open(wrong, "w") as f:
            f.write("not the passphrase\n")
        rc, out = ctl(["backup", "verify", "--file", path, "--kek-passphrase-file", wrong])
        self.assertEqual(rc, 4, out)
        new = os.path.join(self.tmp, "pp-restored")
        rc, out = ctl(["backup", "restore", path, "--data-dir", new, "--kek-passphrase-file", pf])
        self.assertEqual(rc, 0, out)
        r = self.node(new, args=["--kek-passphrase-file", pf]).start()
        self.assertEqual(r.scalar("SELECT count(*) FROM office.notes"), 30)
        r.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
