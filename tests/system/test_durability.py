"""Durability under kill -9: writers record the batches meshd acknowledged while the server is
killed with SIGKILL at random moments (at least 20 times). After every restart the domain's
SQLite file passes PRAGMA integrity_check; at the end every acknowledged batch is present
exactly once (a product without a primary key, so a duplicate would show), and nothing else."""
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node  # noqa: E402

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:events
version: 1.0.0
status: active
domain: dur
schema:
  - name: events
    properties:
      - name: writer
        logicalType: string
        required: true
      - name: batch
        logicalType: integer
        required: true
      - name: i
        logicalType: integer
        required: true
      - name: ts
        logicalType: timestamp
"""

ROWS = 200
KILLS = 20

TS_CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:ticks
version: 1.0.0
status: active
domain: dur
schema:
  - name: ticks
    properties:
      - name: writer
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
LATE = 5


class Writer(threading.Thread):
    """Sends numbered batches; retries the unacknowledged one with the same key."""

    def __init__(self, name, node_ref):
        super().__init__(daemon=True)
        self.name_ = name
        self.node_ref = node_ref
        self.acked = set()
        self.batch = 0
        self.stop = False
        self.errors = []

    def run(self):
        while not self.stop:
            n = self.node_ref[0]
            body = "\n".join('{"writer":"%s","batch":%d,"i":%d,"ts":%d}' %
                             (self.name_, self.batch, i, 1700000000 + i) for i in range(ROWS))
            try:
                st, r = n.post_rows("dur", "events", body, "application/x-ndjson",
                                    headers={"Idempotency-Key": "%s-%d" % (self.name_, self.batch)})
            except Exception:
                time.sleep(0.02)  # the server is down: retry the same batch
                continue
            if st == 200:
                self.acked.add(self.batch)
                self.batch += 1
            elif st >= 500:
                time.sleep(0.02)
            else:
                self.errors.append((st, r))
                time.sleep(0.05)


class TsWriter(Writer):
    """Batches for a time series: 200 rows moving forward in time, and 5 late rows that land
    before everything written so far (merged into chunks once the series has some)."""

    def run(self):
        while not self.stop:
            n = self.node_ref[0]
            b = self.batch
            rows = ['{"writer":"%s","ts":%d,"batch":%d,"v":%d}' %
                    (self.name_, 10**18 + (b * ROWS + i) * 10**9, b, b * ROWS + i)
                    for i in range(ROWS)]
            rows += ['{"writer":"%s","ts":%d,"batch":%d,"v":-1}' %
                     (self.name_, 10**18 - (b * LATE + j + 1) * 10**9, b) for j in range(LATE)]
            try:
                st, r = n.post_rows("dur", "ticks", "\n".join(rows), "application/x-ndjson",
                                    headers={"Idempotency-Key": "t-%s-%d" % (self.name_, b)},
                                    query="?precision=ns")
            except Exception:
                time.sleep(0.02)
                continue
            if st == 200:
                self.acked.add(b)
                self.batch += 1
            elif st >= 500:
                time.sleep(0.02)
            else:
                self.errors.append((st, r))
                time.sleep(0.05)


def acked_so_far(w):
    """A copy of a writer's acknowledged batches (its thread may add one meanwhile)."""
    while True:
        try:
            return set(w.acked)
        except RuntimeError:  # the set changed size during the copy
            continue


class DurabilityTest(unittest.TestCase):
    def test_kill9_loses_no_acknowledged_write(self):
        rnd = random.Random(int(os.environ.get("MESH_TEST_SEED", "7")))
        n = Node().start()
        try:
            n.create_domain("dur")
            n.apply(CONTRACT, expect=201)
            ref = [n]
            writers = [Writer("w%d" % k, ref) for k in range(3)]
            for w in writers:
                w.start()
            for k in range(KILLS):
                time.sleep(rnd.uniform(0.05, 0.6))
                n.kill()
                # the files are encrypted (on by default): meshd checks them itself, read-only
                rc, out = n.verify()
                self.assertEqual(rc, 0, "after kill %d: %s" % (k, out))
                self.assertIn("domain dur: data.db: ok", out)
                n.start()
                # every batch acknowledged before this kill is there, exactly once
                acked = [(w.name_, b) for w in writers for b in acked_so_far(w)]
                rows = n.rows("SELECT writer, batch, count(*), count(DISTINCT i) "
                              "FROM dur.events GROUP BY writer, batch")
                seen = {(r[0], r[1]): (r[2], r[3]) for r in rows}
                for key in acked:
                    self.assertEqual(seen.get(key), (ROWS, ROWS),
                                     "after kill %d: batch %s/%d" % (k, key[0], key[1]))
            time.sleep(0.3)
            for w in writers:
                w.stop = True
            for w in writers:
                w.join(30)
            n.kill()  # a last crash right after the last acknowledgements
            n.start()
            for w in writers:
                self.assertEqual(w.errors, [])
            total = sum(len(w.acked) for w in writers)
            self.assertGreater(total, KILLS, "too few batches were acknowledged to mean much")
            rows = n.rows("SELECT writer, batch, count(*), count(DISTINCT i) FROM dur.events "
                          "GROUP BY writer, batch")
            seen = {(r[0], r[1]): (r[2], r[3]) for r in rows}
            for w in writers:
                for b in w.acked:
                    self.assertEqual(seen.get((w.name_, b)), (ROWS, ROWS),
                                     "batch %s/%d" % (w.name_, b))
            # nothing but acknowledged batches (the in-flight one at the very end may or may
            # not have been applied; it was retried with its key so it is never doubled)
            for (wname, b), (cnt, dist) in seen.items():
                w = [x for x in writers if x.name_ == wname][0]
                self.assertTrue(b in w.acked or b == w.batch, (wname, b))
                self.assertEqual((cnt, dist), (ROWS, ROWS))
            print("acknowledged batches: %d over %d kills" % (total, KILLS))
        finally:
            n.stop()
            n.destroy()


    def test_kill9_time_series(self):
        """The time-series layout keeps rows in memory between flushes; the domain log makes
        them durable. Kill it while buffers are full, chunks are being written and late rows
        are merged; every acknowledged row must come back, once, with its value."""
        rnd = random.Random(int(os.environ.get("MESH_TEST_SEED", "11")))
        n = Node(args=["--checkpoint-interval", "1s"]).start()
        try:
            n.create_domain("dur")
            n.apply(TS_CONTRACT, expect=201)
            ref = [n]
            writers = [TsWriter("t%d" % k, ref) for k in range(3)]
            for w in writers:
                w.start()
            for k in range(KILLS):
                time.sleep(rnd.uniform(0.1, 0.9))
                n.kill()
                n.start()
            time.sleep(0.3)
            for w in writers:
                w.stop = True
            for w in writers:
                w.join(30)
            n.kill()
            n.start()
            for w in writers:
                self.assertEqual(w.errors, [])
            total = sum(len(w.acked) for w in writers)
            self.assertGreater(total, KILLS)
            for w in writers:
                top = max(w.acked) if w.acked else -1
                rows = n.rows("SELECT count(*), count(DISTINCT ts), sum(v > -1), "
                              "sum(CASE WHEN v > -1 THEN v ELSE 0 END) FROM dur.ticks "
                              "WHERE writer = '%s' AND batch <= %d" % (w.name_, top))
                cnt, distinct, forward, vsum = rows[0]
                want_fwd = (top + 1) * ROWS
                self.assertEqual(forward, want_fwd, w.name_)
                self.assertEqual(vsum, want_fwd * (want_fwd - 1) // 2, w.name_)
                self.assertEqual(cnt, (top + 1) * (ROWS + LATE), w.name_)
                self.assertEqual(distinct, cnt, w.name_)
            # a clean stop writes every buffer out: the next start replays nothing
            rc = n.stop()
            stop_log = list(n.log)
            self.assertEqual(rc, 0, stop_log)
            n.start()
            self.assertFalse([l for l in n.log if "replayed" in l], (n.log, stop_log))
            print("time series: %d acknowledged batches over %d kills" % (total, KILLS))
        finally:
            n.stop()
            n.destroy()


if __name__ == "__main__":
    unittest.main(verbosity=2)
