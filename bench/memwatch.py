#!/usr/bin/python3
"""Peak memory of a multi-process server (PostgreSQL) while the benchmark loads it.

    memwatch.py --pid ROOT_PID --out FILE.json [--interval 0.05]

Every interval it finds ROOT_PID and all its descendants (through /proc/*/stat) and reads
each one's /proc/PID/smaps_rollup (Pss) and /proc/PID/status (VmRSS, VmHWM). On SIGTERM or
SIGINT it writes, in KiB:
  peak_pss_sum_kb   the largest sum of Pss over the processes seen in one sample: shared
                    pages (shared_buffers) counted once, split between the processes using them;
  peak_rss_sum_kb   the same with RSS (counts shared pages once per process: an upper bound);
  max_vmhwm_kb      the largest VmHWM of any one process (the biggest backend or the
                    postmaster), exact (the kernel's high-water mark), not sampled;
  samples, processes_seen.
Single-process servers do not need this: their VmHWM is exact.
"""
import argparse
import json
import os
import signal
import time


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def field_kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.05)
    a = ap.parse_args()
    st = {"peak_pss_sum_kb": 0, "peak_rss_sum_kb": 0, "max_vmhwm_kb": 0, "samples": 0}
    seen = set()
    stop = []
    signal.signal(signal.SIGTERM, lambda *x: stop.append(1))
    signal.signal(signal.SIGINT, lambda *x: stop.append(1))

    def sample():
        pss = rss = 0
        for p in descendants(a.pid):
            seen.add(p)
            pss += field_kb("/proc/%d/smaps_rollup" % p, "Pss:") or 0
            rss += field_kb("/proc/%d/status" % p, "VmRSS:") or 0
            hwm = field_kb("/proc/%d/status" % p, "VmHWM:") or 0
            st["max_vmhwm_kb"] = max(st["max_vmhwm_kb"], hwm)
        st["peak_pss_sum_kb"] = max(st["peak_pss_sum_kb"], pss)
        st["peak_rss_sum_kb"] = max(st["peak_rss_sum_kb"], rss)
        st["samples"] += 1

    while not stop:
        sample()
        time.sleep(a.interval)
    sample()
    st["processes_seen"] = len(seen)
    with open(a.out, "w") as f:
        json.dump(st, f)


if __name__ == "__main__":
    main()
