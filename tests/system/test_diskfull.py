"""Disk full: meshd on a small tmpfs made by the test (encryption at rest on, the default).

1. The reserve (min_free_space): a filler file leaves less than the reserve free; writes get
   507 with a message naming the domain and the free space, queries go on, /metrics counts
   the refusals; deleting the filler lets writes in again without a restart.
2. A really full disk (min_free_space 0): the filler takes every last byte; writes get 507 and
   nothing of them is applied; meshd killed and restarted on the full disk comes up, answers
   queries and refuses writes; then space comes back in small steps, so that writes (to a
   plain product and to a time-series product, whose buffers become chunks) fail at
   different points (the log append, SQLite's WAL through the encrypting VFS, the commit) or
   succeed: every write is all or nothing and every acknowledged row is there.
3. The filler goes: writes succeed again on the same process; after a stop `meshd --verify`
   finds no damage, and after a restart everything acknowledged is there exactly once.

Needs root (mount). Exits 77 (skipped) with a message when a tmpfs cannot be mounted."""
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node, wait_for  # noqa: E402

SIZE_MIB = 48
ROWS = 300

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:diskfull
version: 1.0.0
status: active
domain: df
schema:
  - name: events
    properties:
      - name: batch
        logicalType: integer
        required: true
      - name: i
        logicalType: integer
        required: true
      - name: note
        logicalType: string
"""

# a time-series product (its key ends with its time column): rows wait in per-series buffers
# and become compressed chunks once 1024 are buffered, at the start of a later write group
TS_CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:diskfull-ts
version: 1.0.0
status: active
domain: df
schema:
  - name: ticks
    properties:
      - name: dev
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: batch
        logicalType: integer
      - name: v
        logicalType: number
"""
TS_DEVS = 3
TS_ROWS = 400  # per device and batch


def mount_tmpfs(path, size_mib):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mib,
                        "meshd-diskfull", path], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def free_bytes(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


class DiskFullTest(unittest.TestCase):
    mnt = None
    tmp = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="meshd-diskfull-")
        cls.mnt = os.path.join(cls.tmp, "mnt")
        os.mkdir(cls.mnt)
        ok, why = mount_tmpfs(cls.mnt, SIZE_MIB)
        if not ok:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            print("SKIP: cannot mount a tmpfs (%s); this test needs root" % why)
            sys.stdout.flush()
            os._exit(77)

    @classmethod
    def tearDownClass(cls):
        umount(cls.mnt)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.batch = 0
        self.acked = []
        self.ts_batch = 0
        self.ts_acked = []
        self.node = None
        self.filler = os.path.join(self.mnt, "filler")

    def tearDown(self):
        if self.node:
            self.node.stop()
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def start(self, *args):
        self.node = Node(data_dir=os.path.join(self.mnt, "data"), args=list(args)).start()
        return self.node

    def write(self):
        """One batch of ROWS rows; returns (status, body) and records it when acknowledged."""
        b = self.batch
        self.batch += 1
        body = "\n".join(json.dumps({"batch": b, "i": i, "note": "x" * 120}) for i in range(ROWS))
        st, doc = self.node.post_rows("df", "events", body, "application/x-ndjson",
                                      headers={"Idempotency-Key": "b-%d" % b})
        if st == 200:
            self.acked.append(b)
        return st, doc

    def write_ts(self):
        """One batch of TS_DEVS x TS_ROWS time-series rows, later in time than the last."""
        b = self.ts_batch
        self.ts_batch += 1
        rows = []
        for d in range(TS_DEVS):
            for i in range(TS_ROWS):
                t = 1700000000 + (b * TS_ROWS + i) * 10
                rows.append(json.dumps({"dev": "d%d" % d, "ts": t, "batch": b, "v": i * 0.5}))
        st, doc = self.node.post_rows("df", "ticks", "\n".join(rows), "application/x-ndjson",
                                      headers={"Idempotency-Key": "t-%d" % b})
        if st == 200:
            self.ts_acked.append(b)
        return st, doc

    def check_ts_rows(self, n=None):
        n = n or self.node
        rows = n.rows("SELECT batch, count(*) FROM df.ticks GROUP BY batch ORDER BY batch")
        got = {r[0]: r[1] for r in rows}
        self.assertEqual(sorted(got), sorted(self.ts_acked), "ts batches != acknowledged")
        for b, c in got.items():
            self.assertEqual(c, TS_DEVS * TS_ROWS, "ts batch %d is partial or doubled" % b)

    def check_rows(self, n=None):
        """Every acknowledged batch is there, whole, once; no refused batch left a row."""
        n = n or self.node
        rows = n.rows("SELECT batch, count(*), count(DISTINCT i) FROM df.events GROUP BY batch "
                      "ORDER BY batch")
        got = {r[0]: (r[1], r[2]) for r in rows}
        self.assertEqual(sorted(got), sorted(self.acked), "batches present != acknowledged")
        for b, cd in got.items():
            self.assertEqual(cd, (ROWS, ROWS), "batch %d is partial or doubled" % b)

    def assert_507(self, st, doc):
        self.assertEqual(st, 507, doc)
        self.assertEqual(doc["error"]["code"], "NOSPACE", doc)
        msg = doc["error"]["message"]
        self.assertIn("domain df", msg)
        self.assertIn("insufficient storage", msg)
        self.assertIn("free", msg)
        self.assertIn("nothing was written", msg)
        return msg

    def metric(self, name):
        st, _, data = self.node.request("GET", "/metrics")
        self.assertEqual(st, 200)
        for line in data.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        self.fail("no metric " + name)

    def fill_to(self, leave):
        """Grows the filler until about `leave` bytes are free (0: every last byte)."""
        chunk = b"\0" * (1 << 20)
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                room = free_bytes(self.mnt) - leave
                if room <= 0:
                    break
                try:
                    if f.write(chunk[:min(len(chunk), room)]) == 0:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
            for _ in range(4096 if leave == 0 else 0):  # the last pages, one at a time
                try:
                    if f.write(b"\0" * 4096) == 0:
                        break
                except OSError:
                    break

    def shrink_filler(self, by):
        size = os.path.getsize(self.filler)
        os.truncate(self.filler, max(0, size - by))

    def test_1_reserve_refuses_early_and_recovers(self):
        n = self.start("--min-free-space", "16MiB")
        n.create_domain("df")
        n.apply(CONTRACT, expect=201)
        for _ in range(5):
            self.assertEqual(self.write()[0], 200)
        self.fill_to(10 << 20)  # under the 16 MiB reserve
        refused = 0
        for _ in range(3):
            st, doc = self.write()
            msg = self.assert_507(st, doc)
            self.assertIn("min_free_space", msg)
            refused += 1
        # the contract path is refused the same way
        st, doc = n.apply(CONTRACT.replace("1.0.0", "1.1.0").replace(
            "        logicalType: string\n", "        logicalType: string\n      - name: extra\n"
            "        logicalType: string\n"))
        self.assertEqual(st, 507, doc)
        # queries go on, and every acknowledged row is there
        self.check_rows()
        self.assertGreaterEqual(self.metric("meshd_writes_refused_nospace_total"), refused)
        self.assertLess(self.metric("meshd_disk_free_bytes"), 16 << 20)
        self.assertEqual(self.metric("meshd_disk_min_free_bytes"), 16 << 20)
        self.assertTrue(wait_for(lambda: any("writes are refused until space is freed" in ln
                                             for ln in n.log)))
        # space freed: writes resume on the same process
        os.unlink(self.filler)
        for _ in range(3):
            self.assertEqual(self.write()[0], 200)
        self.check_rows()
        self.assertTrue(wait_for(lambda: any("writes are accepted" in ln for ln in n.log)))
        self.assertEqual(self.metric('meshd_domain_read_only'), 0)
        self.assertEqual(n.stop(), 0)
        self.node = None
        rc, out = Node(data_dir=os.path.join(self.mnt, "data")).verify()
        self.assertEqual(rc, 0, out)
        shutil.rmtree(os.path.join(self.mnt, "data"))

    def test_2_full_disk_is_all_or_nothing(self):
        # no checkpoint during the test: one would free WAL and log space behind its back
        n = self.start("--min-free-space", "0", "--checkpoint-interval", "1h")
        n.create_domain("df")
        n.apply(CONTRACT, expect=201)
        n.apply(TS_CONTRACT, expect=201)
        for _ in range(5):
            self.assertEqual(self.write()[0], 200)
            self.assertEqual(self.write_ts()[0], 200)
        self.fill_to(0)
        self.assertLess(free_bytes(self.mnt), 4096 * 2)
        for _ in range(3):
            st, doc = self.write()
            msg = self.assert_507(st, doc)
            self.assertIn("the disk is full", msg)
        self.check_rows()  # queries answer on a full disk
        self.check_ts_rows()
        self.assertGreaterEqual(self.metric("meshd_writes_disk_full_total"), 3)
        # a crash and a restart on the full disk: the node comes up, answers queries, and
        # refuses writes the same way
        n.kill()
        n = self.start("--min-free-space", "0", "--checkpoint-interval", "1h")
        self.check_rows()
        self.check_ts_rows()
        self.assert_507(*self.write())
        self.assert_507(*self.write_ts())
        # space comes back a little at a time: each write fails somewhere or succeeds whole
        outcomes, causes = {}, set()
        for step in range(60):
            self.shrink_filler(24 << 10)
            st, doc = self.write() if step % 2 else self.write_ts()
            outcomes[st] = outcomes.get(st, 0) + 1
            if st != 200:
                msg = self.assert_507(st, doc)
                causes.add(msg[msg.index("full (") + 6:].split("; ")[1].split(")")[0][:60])
            if step % 8 == 7:
                self.check_rows()
                self.check_ts_rows()
        print("writes while space came back: %s; failures: %s" % (outcomes, sorted(causes)))
        self.check_rows()
        self.check_ts_rows()
        self.assertIn(507, outcomes)
        self.assertEqual(self.metric("meshd_domain_read_only"), 0)
        # the filler goes: writes succeed on the same process
        os.unlink(self.filler)
        for _ in range(3):
            st, doc = self.write()
            self.assertEqual(st, 200, doc)
            st, doc = self.write_ts()
            self.assertEqual(st, 200, doc)
        self.check_rows()
        self.check_ts_rows()
        self.assertEqual(n.stop(), 0)
        self.node = None
        # offline check of every page, log record and the audit log
        rc, out = Node(data_dir=os.path.join(self.mnt, "data")).verify()
        self.assertEqual(rc, 0, out)
        self.assertIn("domain df: data.db: ok", out)
        # restart: the same rows, and writes go on
        n = self.start("--min-free-space", "0", "--checkpoint-interval", "1h")
        self.check_rows()
        self.check_ts_rows()
        self.assertEqual(self.write()[0], 200)
        self.assertEqual(self.write_ts()[0], 200)
        self.check_rows()
        self.check_ts_rows()
        self.assertEqual(n.stop(), 0)  # a clean stop (and no sanitizer report)
        self.node = None


if __name__ == "__main__":
    unittest.main(verbosity=2)
