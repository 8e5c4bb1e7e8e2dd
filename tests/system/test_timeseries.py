"""The time-series layout against the row layout as an oracle.

Two products get the same writes: `ts` (key device, time: stored as series and compressed
chunks, buffered in memory) and `rows` (key time, device: one SQLite row per reading). Writes
come in order, out of order, late (older than chunks already written), repeated (merging
into the earlier row), with NULLs and text; chunks are written by full buffers and by
checkpoints while reads run. Every query must answer the same on both, before and after
a restart, and after contract changes that keep or rebuild the layout."""
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node  # noqa: E402

T0 = 1767225600 * 10**9
SEC = 10**9


def contract(version="1.0.0", extra="", ts_type="number"):
    def obj(name, key):
        pk_dev, pk_ts = (1, 2) if key == "dt" else (2, 1)
        return """  - name: %s
    properties:
      - name: device
        logicalType: string
        primaryKey: true
        primaryKeyPosition: %d
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: %d
      - name: temp
        logicalType: %s
      - name: status
        logicalType: string
        customProperties:
          - property: enum
            value: [ok, warn, fail, late]
      - name: n
        logicalType: integer
      - name: ok
        logicalType: boolean
%s""" % (name, pk_dev, pk_ts, ts_type, extra)
    return """apiVersion: v3.1.0
kind: DataContract
id: urn:test:oracle
version: %s
status: active
domain: lab
schema:
%s%s""" % (version, obj("ts", "dt"), obj("rows", "td"))


QUERIES = [
    "SELECT count(*) FROM lab.{t}",
    "SELECT device, ts, temp, status, n, ok FROM lab.{t} ORDER BY device, ts",
    "SELECT device, count(*), min(ts), max(ts), sum(temp), max(n) FROM lab.{t} GROUP BY device ORDER BY device",
    "SELECT ts, temp FROM lab.{t} WHERE device = 'd03' ORDER BY ts DESC LIMIT 7",
    "SELECT ts, temp FROM lab.{t} WHERE device = 'd03' ORDER BY ts LIMIT 5 OFFSET 3",
    "SELECT max(ts) FROM lab.{t} WHERE device = 'd05'",
    "SELECT device, ts FROM lab.{t} WHERE ts >= %d AND ts < %d ORDER BY device, ts" % (T0 + 500 * SEC, T0 + 900 * SEC),
    "SELECT device, ts FROM lab.{t} WHERE ts = %d ORDER BY device" % (T0 + 1234 * SEC),
    "SELECT device, ts, temp FROM lab.{t} WHERE temp > 95 ORDER BY device, ts",
    "SELECT device, ts FROM lab.{t} WHERE temp IS NULL ORDER BY device, ts",
    "SELECT device, ts FROM lab.{t} WHERE status = 'warn' AND device IN ('d01', 'd07') ORDER BY device, ts",
    "SELECT device, ts FROM lab.{t} WHERE device > 'd05' AND ts < %d ORDER BY device, ts" % (T0 + 100 * SEC),
    "SELECT device, ts FROM lab.{t} WHERE n = 7 ORDER BY device, ts",
    "SELECT device, ts FROM lab.{t} WHERE device = 5 OR device = 'd1' ORDER BY 1, 2",
    "SELECT count(*) FROM lab.{t} WHERE ts < 0",
    # a time range the scan checks alone (decision 0034): real bounds compare exactly, also
    # where a double cannot hold every nanosecond (the row at +500.5 s is next to the bound)
    "SELECT device, ts FROM lab.{t} WHERE ts > %d.5 AND ts <= %d.0 ORDER BY device, ts" % (T0 + 400 * SEC, T0 + 500 * SEC + SEC // 2),
    "SELECT device, ts FROM lab.{t} WHERE ts >= %d.0 AND ts < %d ORDER BY device, ts" % (T0 + 500 * SEC + SEC // 2 - 1, T0 + 501 * SEC),
    "SELECT device, ts FROM lab.{t} WHERE ts > %d.0 AND ts < %d ORDER BY device, ts" % (T0 + 500 * SEC + SEC // 2 - 1, T0 + 501 * SEC),
    "SELECT device, count(*) FROM lab.{t} WHERE ts BETWEEN %d AND %d AND ts <> %d GROUP BY device" % (T0 + 100 * SEC, T0 + 200 * SEC, T0 + 150 * SEC),
    "SELECT device, time_bucket('10m', ts) AS b, round(avg(temp), 6), count(*) FROM lab.{t} GROUP BY device, b ORDER BY device, b",
    "SELECT a.device, count(*) FROM lab.{t} a JOIN lab.{t} b ON a.device = b.device AND a.ts = b.ts GROUP BY a.device ORDER BY 1",
    # orders the time-series scan gives itself (series in key order, each in time order)
    "SELECT device, ts, temp FROM lab.{t} ORDER BY device DESC, ts DESC",
    "SELECT device, ts FROM lab.{t} ORDER BY device DESC, ts",
    "SELECT device, ts, n FROM lab.{t} ORDER BY device, ts LIMIT 25",
    "SELECT device, ts FROM lab.{t} WHERE ts >= %d ORDER BY device DESC, ts DESC LIMIT 9" % (T0 + 300 * SEC),
    "SELECT device, sum(n), count(temp) FROM lab.{t} GROUP BY device",
    "SELECT DISTINCT device FROM lab.{t}",
    # time buckets as columns: the same answers as time_bucket()
    "SELECT device, bucket, round(avg(temp), 6), count(*) FROM lab.{t}('10m') GROUP BY device, bucket ORDER BY device, bucket",
    "SELECT device, bucket, bucket_width, max(n) FROM lab.{t} WHERE bucket_width = '7m' AND ts >= %d GROUP BY 1, 2 ORDER BY 1, 2" % (T0 + 300 * SEC),
    "SELECT device, bucket, count(*) FROM lab.{t}(%d) GROUP BY device, bucket ORDER BY device DESC, bucket DESC LIMIT 7" % (600 * SEC),
    "SELECT count(*), count(bucket) FROM lab.{t}",
    # grouped by an enumerated column outside the key: one pass per value (status varies
    # within each series, and is NULL in some rows)
    "SELECT status, count(*), min(ts), max(ts), round(sum(temp), 6), sum(n) FROM lab.{t} GROUP BY status",
    "SELECT status, count(*) FROM lab.{t} WHERE ts >= %d AND device IN ('d02', 'd05') GROUP BY status" % (T0 + 700 * SEC),
    "SELECT status, count(*) FROM lab.{t} WHERE temp > 50 GROUP BY status ORDER BY status DESC",
    "SELECT status, count(*) FROM lab.{t} GROUP BY status ORDER BY status DESC LIMIT 2",
    "SELECT status, device, ts FROM lab.{t} WHERE status IS NOT NULL ORDER BY status, device, ts LIMIT 40",
    "SELECT DISTINCT status FROM lab.{t} ORDER BY 1",
    # and those it does not: SQLite sorts
    "SELECT device, ts FROM lab.{t} ORDER BY ts, device LIMIT 30",
    "SELECT device, ts FROM lab.{t} ORDER BY device, temp, ts LIMIT 30",
    "SELECT device, ts FROM lab.{t} ORDER BY device || 'x', ts LIMIT 30",
]

# The rollup view (p__agg) against GROUP BY time_bucket() over the row layout: width, a
# condition on the bucket ({b}: bucket, or the oracle's b), per series.
AGG = [
    ("10m", "1"),
    ("7m", "{b} >= %d AND {b} < %d" % (T0 + 300 * SEC, T0 + 1500 * SEC)),
    ("7m", "{b} > %d AND {b} <= %d" % (T0 + 301 * SEC, T0 + 1499 * SEC)),
    ("1h", "device = 'd03'"),
    ("1h", "device IN ('d01', 'd07') AND {b} < %d" % (T0 + 3600 * SEC)),
    ("10m", "{b} = %d" % (T0 + 600 * SEC)),
    ("10m", "{b} = %d" % (T0 + 601 * SEC)),
    ("10m", "{b} < 0"),
    ("90s", "{b} >= %d OR device = 'd02'" % (T0 + 1000 * SEC)),
    (str(3 * 10**9), "1"),
]
AGG_COLS = ["count(*)", "count(temp)", "round(sum(temp), 6)", "min(temp)", "max(temp)",
            "round(avg(temp), 6)", "count(n)", "sum(n)", "min(n)", "max(n)", "min(ok)", "max(ok)"]
AGG_VIEW = ["rows", "temp_count", "round(temp_sum, 6)", "temp_min", "temp_max",
            "round(temp_avg, 6)", "n_count", "n_sum", "n_min", "n_max", "ok_min", "ok_max"]

# The time-series scan gives these orders itself: no sort in the plan.
UNSORTED = [
    "SELECT device, count(*) FROM lab.ts GROUP BY device",
    "SELECT device, ts FROM lab.ts ORDER BY device DESC, ts",
    "SELECT device, temp FROM lab.ts__last ORDER BY device DESC",
    "SELECT ts, temp FROM lab.ts WHERE device = 'd02' ORDER BY ts DESC",
    "SELECT device, bucket, avg(temp) FROM lab.ts('1h') GROUP BY device, bucket",
    "SELECT status, count(*) FROM lab.ts GROUP BY status",
    "SELECT device, bucket, rows FROM lab.ts__agg('1h') ORDER BY device, bucket",
]


class TimeSeriesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node(args=["--checkpoint-interval", "1s"]).start()
        cls.n.create_domain("lab")
        cls.n.apply(contract(), expect=201)
        cls.rnd = random.Random(5)

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()
        cls.n.destroy()

    def write(self, rows):
        """Writes the same rows to both products in one batch (so a query sees both or
        neither)."""
        lines = []
        for product in ("ts", "rows"):
            for r in rows:
                fields = []
                for k in ("temp", "status", "n", "ok"):
                    if r.get(k) is None:
                        continue
                    v = r[k]
                    if k == "status":
                        fields.append('status="%s"' % v)
                    elif k == "n":
                        fields.append("n=%di" % v)
                    elif k == "ok":
                        fields.append("ok=%s" % ("true" if v else "false"))
                    else:
                        fields.append("temp=%r" % float(v))
                if not fields:
                    fields = ["n=0i"]
                lines.append("%s,device=%s %s %d" % (product, r["device"], ",".join(fields), r["ts"]))
        st, h, data = self.n.write_lp("lab", "\n".join(lines))
        self.assertEqual(st, 204, data)

    def check_same(self, label=""):
        for q in QUERIES:
            a = self.n.query(q.format(t="ts"))
            b = self.n.query(q.format(t="rows"))
            self.assertNotIn("error", a, (label, q, a))
            self.assertEqual(a["rows"], b["rows"], "%s: %s" % (label, q))
        # bucket columns answer as time_bucket() does
        a = self.n.query("SELECT device, bucket, round(avg(temp), 6) FROM lab.ts('10m') "
                         "GROUP BY device, bucket ORDER BY 1, 2")
        b = self.n.query("SELECT device, iso(time_bucket('10m', ts)) AS b, round(avg(temp), 6) "
                         "FROM lab.rows GROUP BY device, b ORDER BY 1, 2")
        self.assertEqual(a["rows"], b["rows"], label)
        self.assertEqual(self.n.query("SELECT 1 FROM lab.ts('0s')", expect=400)["error"]["code"],
                         "INVALID")
        for q in UNSORTED:
            plan = [r[3] for r in self.n.rows("EXPLAIN QUERY PLAN " + q)]
            self.assertFalse([d for d in plan if "TEMP B-TREE" in d], "%s: %s: %s" % (label, q, plan))
        # the rollup view against GROUP BY over the rows: aggregates of the numeric columns
        # (temp has none once it is retyped to text)
        have = {c["name"] for c in self.n.query("SELECT * FROM lab.ts__agg('1h') LIMIT 0")["columns"]}
        temp_text = self.n.query("SELECT temp FROM lab.ts LIMIT 0")["columns"][0]["type"] == "TEXT"
        self.assertEqual("temp_avg" in have, not temp_text, have)
        pairs = [(v, c) for v, c in zip(AGG_VIEW, AGG_COLS)
                 if not temp_text or "temp" not in v]
        view_cols = [v for v, _ in pairs]
        oracle_cols = [c for _, c in pairs]
        for width, cond in AGG:
            w = "'%s'" % width if not width.isdigit() else width
            a = self.n.query("SELECT device, bucket, %s FROM lab.ts__agg(%s) WHERE %s "
                             "ORDER BY device, bucket" % (", ".join(view_cols), w,
                                                          cond.format(b="bucket")))
            b = self.n.query("SELECT device, iso(b), %s FROM (SELECT device, time_bucket(%s, ts) "
                             "AS b, %s FROM lab.rows GROUP BY device, b) WHERE %s "
                             "ORDER BY device, b" % (
                                 ", ".join("c%d" % i for i in range(len(oracle_cols))), w,
                                 ", ".join("%s AS c%d" % (c, i) for i, c in enumerate(oracle_cols)),
                                 cond.format(b="b")))
            self.assertNotIn("error", a, (label, width, cond, a))
            self.assertEqual(a["rows"], b["rows"], "%s: __agg(%s) where %s" % (label, width, cond))
            if cond in ("1", "{b} < 0"):
                self.assertTrue(a["rows"], (label, width, cond))
        # a condition on bucket narrows what the view reads, whichever way the width is given
        lo = T0 + 1200 * SEC
        want = self.n.query("SELECT count(*) FROM lab.rows WHERE ts >= %d" % lo)["rows"][0][0]
        for sql in ("SELECT sum(rows) FROM lab.ts__agg('10m') WHERE bucket >= %d" % lo,
                    "SELECT sum(rows) FROM lab.ts__agg WHERE bucket >= %d AND "
                    "bucket_width = '10m'" % lo):
            a = self.n.query(sql)
            self.assertEqual((a["rows"][0][0], a["rows_scanned"]), (want, want), (label, sql))
        # the newest row of each series (the __last view) against its SQL definition
        newest = ("SELECT r.device, r.ts, r.temp, r.status, r.n, r.ok FROM lab.rows r JOIN "
                  "(SELECT device, max(ts) AS m FROM lab.rows GROUP BY device) x "
                  "ON r.device = x.device AND r.ts = x.m WHERE %s ORDER BY r.device")
        for cond_last, cond_rows in [("1", "1"), ("temp > 50", "r.temp > 50"),
                                     ("device = 'd03'", "r.device = 'd03'"),
                                     ("ts > %d" % (T0 + 1700 * SEC), "r.ts > %d" % (T0 + 1700 * SEC)),
                                     ("status IS NULL", "r.status IS NULL")]:
            a = self.n.query("SELECT device, ts, temp, status, n, ok FROM lab.ts__last WHERE %s "
                             "ORDER BY device" % cond_last)
            b = self.n.query(newest % cond_rows)
            self.assertEqual(a["rows"], b["rows"], "%s: __last where %s" % (label, cond_last))
            self.assertLessEqual(a["rows_scanned"], 10)

    def gen(self, devices, start, count, step=10):
        rows = []
        for i in range(count):
            for d in devices:
                t = T0 + (start + i * step) * SEC
                r = self.rnd.random()
                rows.append({"device": d, "ts": t,
                             "temp": None if r < 0.05 else round(self.rnd.uniform(0, 100), 3),
                             "status": self.rnd.choice(["ok", "ok", "warn", "fail", None]),
                             "n": self.rnd.randrange(20),
                             "ok": r > 0.5})
        return rows

    def test_oracle(self):
        devices = ["d%02d" % i for i in range(10)]
        # 1. in-order writes past a buffer's worth (chunks by full buffers)
        rows = self.gen(devices, 0, 1500, step=1)
        for k in range(0, len(rows), 2000):
            self.write(rows[k:k + 2000])
        # and before 1970: buckets floor towards the past
        self.write([{"device": "d09", "ts": -601 * SEC, "temp": 1.0, "n": 3},
                    {"device": "d09", "ts": -1, "temp": 2.0, "n": 4}])
        self.check_same("in order")
        # 2. out-of-order rows inside the buffer and repeated keys that merge
        rows = self.gen(devices, 1500, 300, step=1)
        self.rnd.shuffle(rows)
        self.write(rows)
        again = [dict(r, temp=None, status="warn", n=7) for r in rows[:200]]  # merge: temp kept
        self.write(again)
        self.check_same("out of order, merged")
        # 3. late rows: older than the chunks already written, some between existing readings
        late = self.gen(devices, -200, 60, step=3) + \
            [{"device": "d03", "ts": T0 + 500 * SEC + SEC // 2, "temp": 99.5, "n": 7}] + \
            [{"device": "d04", "ts": T0 + 10 * SEC, "temp": 1.0, "status": "late"}]
        self.write(late)
        self.check_same("late")
        # 4. a checkpoint writes the aged buffers; reads keep matching while it happens
        stop = threading.Event()
        errors = []

        def reader():
            while not stop.is_set():
                try:
                    a, b = self.n.rows("SELECT (SELECT count(*) FROM lab.ts),"
                                       " (SELECT count(*) FROM lab.rows)")[0]
                    if a != b:
                        errors.append((a, b))
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

        th = threading.Thread(target=reader)
        th.start()
        for i in range(10):
            self.write(self.gen(devices, 2000 + i * 100, 40, step=2))
            time.sleep(0.15)
        time.sleep(1.5)
        stop.set()
        th.join()
        self.assertEqual(errors, [])
        self.check_same("after checkpoints")
        # 5. a restart (clean) and a crash (kill -9) keep everything
        self.n.stop()
        self.n.start()
        self.check_same("after a restart")
        self.write(self.gen(devices, 5000, 50))
        self.n.kill()
        self.n.start()
        self.check_same("after kill -9")
        # 6. an additive contract change keeps the layout and the rows
        self.n.apply(contract("1.1.0", extra="      - name: note\n        logicalType: string\n"),
                     expect=200)
        self.check_same("after an additive change")
        self.write([{"device": "d01", "ts": T0 + 7000 * SEC, "temp": 5.0}])
        self.check_same("written after an additive change")
        # 7. a breaking change (a retyped column) rebuilds both layouts through the validator
        st, doc = self.n.apply(contract("2.0.0", ts_type="integer"))
        self.assertEqual(st, 409, doc)  # temps have decimals: they do not fit an integer
        self.assertIn("do not fit", doc["error"]["message"])
        self.check_same("after a refused rebuild")
        st, doc = self.n.apply(contract("2.0.0", ts_type="string"))
        self.assertEqual(st, 200, doc)
        self.check_same("after a rebuild")
        self.assertEqual(self.n.query("SELECT temp FROM lab.ts LIMIT 1")["columns"][0]["type"],
                         "TEXT")
        # the store really holds series and chunks for one and rows for the other
        self.n.stop()
        # the files are encrypted (on by default): meshd --verify lists the tables
        rc, out = self.n.verify()
        self.assertEqual(rc, 0, out)
        line = [l for l in out.splitlines() if l.startswith("domain lab: tables:")][0]
        tables = set(line.split(":", 2)[2].split())
        self.assertIn("k_ts", tables)
        self.assertIn("s_ts", tables)
        self.assertIn("p_rows", tables)
        self.assertNotIn("p_ts", tables)
        self.n.start()
        self.check_same("final")


if __name__ == "__main__":
    unittest.main(verbosity=2)
