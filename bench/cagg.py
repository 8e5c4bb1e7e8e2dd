#!/usr/bin/python3
"""Continuous aggregates: a dashboard query over a day of 1-minute buckets, and what
maintaining the aggregate costs at ingest (BENCHMARKS.md, "Continuous aggregates").

Starts one meshd (MESH_BUILD, default build/release) on loopback with two domains holding the
same time series, one with a 1-minute aggregate over it; loads DEVICES devices x one day at
STEP seconds into both in the same run (ratio of load times), then runs, RUNS times each:
  agg:  one device's day from the aggregate (1440 buckets: avg, min, max)
  raw:  the same answer computed from the source with GROUP BY
Prints medians (ms, through the HTTP query API, client included) and the ratios.

  bench/cagg.py [--devices 20] [--step 10] [--runs 30]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "system"))
os.environ.setdefault("MESH_BUILD", os.path.join(os.path.dirname(__file__), "..", "build",
                                                 "release"))
import meshlib  # noqa: E402
from meshlib import Node  # noqa: E402

DAY = 86400 * 10**9
T0 = 1700006400 * 10**9  # a midnight


def source(domain):
    return """apiVersion: v3.0.2
kind: DataContract
id: urn:bench:%s:readings
version: 1.0.0
status: active
domain: %s
schema:
  - name: readings
    properties:
      - {name: device, logicalType: string, primaryKey: true, primaryKeyPosition: 1}
      - {name: ts, logicalType: timestamp, primaryKey: true, primaryKeyPosition: 2}
      - {name: temp, logicalType: number}
""" % (domain, domain)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--runs", type=int, default=30)
    o = ap.parse_args()
    n = Node(tls=False)
    n.start()
    try:
        for d in ("plain", "agg"):
            n.create_domain(d)
            n.apply(source(d), expect=201)
        st, doc = n.json("POST", "/v1/derive/agg/readings_1m",
                         {"aggregate": {"source": "readings", "bucket": "1m",
                                        "columns": ["temp"]}}, expect=200)
        n.apply(doc["contract"], expect=201)
        per = DAY // (o.step * 10**9)
        batches = []
        batch = []
        for i in range(per):
            t = T0 + i * o.step * 10**9
            for dv in range(o.devices):
                batch.append("readings,device=d%d temp=%.2f %d" % (dv, 20 + (i * 7 + dv) % 50 / 3, t))
            if len(batch) >= 5000:
                batches.append("\n".join(batch))
                batch = []
        if batch:
            batches.append("\n".join(batch))
        load = {}
        for d in ("plain", "agg"):
            t = time.perf_counter()
            for b in batches:
                st, _, body = n.write_lp(d, b)
                assert st == 204, body
            load[d] = time.perf_counter() - t
        rows = per * o.devices
        q_agg = ("SELECT bucket, temp_avg, temp_min, temp_max FROM agg.readings_1m WHERE "
                 "device = 'd3' AND bucket >= %d AND bucket < %d ORDER BY bucket" % (T0, T0 + DAY))
        q_raw = ("SELECT ts / 60000000000 * 60000000000 AS bucket, avg(temp), min(temp), max(temp) "
                 "FROM plain.readings WHERE device = 'd3' AND ts >= %d AND ts < %d "
                 "GROUP BY 1 ORDER BY 1" % (T0, T0 + DAY))
        a = n.rows(q_agg)
        r = n.rows(q_raw)
        assert len(a) == 1440 and len(r) == 1440, (len(a), len(r))
        for x, y in zip(a, r):
            assert abs(x[1] - y[1]) < 1e-9 and x[2] == y[2] and x[3] == y[3], (x, y)
        times = {}
        for name, q in (("agg", q_agg), ("raw", q_raw)):
            ts = []
            for _ in range(o.runs):
                t = time.perf_counter()
                n.rows(q)
                ts.append((time.perf_counter() - t) * 1000)
            times[name] = statistics.median(ts)
        print("rows loaded per domain: %d (%d devices x 1 day at %d s)" % (rows, o.devices, o.step))
        print("load, plain: %.2f s (%.0f rows/s)" % (load["plain"], rows / load["plain"]))
        print("load, with the 1-minute aggregate: %.2f s (%.0f rows/s), ratio %.2f" %
              (load["agg"], rows / load["agg"], load["agg"] / load["plain"]))
        print("dashboard query, one device's day of 1-minute buckets (1440 rows), median of %d:"
              % o.runs)
        print("  from the aggregate: %.2f ms" % times["agg"])
        print("  GROUP BY over the source: %.2f ms (%.1fx the aggregate)" %
              (times["raw"], times["raw"] / times["agg"]))
    finally:
        n.destroy()


if __name__ == "__main__":
    main()
