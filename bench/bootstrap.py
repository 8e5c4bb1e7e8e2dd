#!/usr/bin/python3
"""Snapshot bootstrap: how fast a new replica catches up from a snapshot (decision 0033).

A hub of 3 nats-servers on loopback (MESH_BUILD, default build/release); n1 and n2 host domain
`bench` (sync, R3) whose stream keeps at most --keep records; one client writes --batches
batches of --rows rows through n1 (the stream is trimmed long before the end). Then n3 joins
(hosts n1, n2, n3): it cannot catch up from the stream and bootstraps from a snapshot of n1 or
n2. Reported: the snapshot's size, the time the bootstrap took by n3's own log (request to the
copy swapped in), and the time from creating the domain on n3 until it holds every row, with
rows/s and MB/s over both. Run on demand, never in CI as a timed test.

    bench/bootstrap.py --batches 200 --rows 2000
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
os.environ.setdefault("MESH_BUILD", os.path.join(HERE, "..", "build", "release"))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, _servers, free_base  # noqa: E402

DOMAIN = "bench"


def post(node, conn, body):
    h = {"Authorization": "Bearer " + node.token, "Content-Type": "application/json"}
    conn.request("POST", "/v1/products/%s/readings/rows" % DOMAIN, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()


def repl(node):
    st, doc = node.json("GET", "/v1/status")
    return (doc or {}).get("replication", {}).get(DOMAIN, {}) if st == 200 else {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--keep", type=int, default=50, help="records the stream keeps")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="meshd-bench-boot-")
    nodes = []
    try:
        run(tmp, nodes, a)
    finally:
        for n in nodes:
            n.destroy()
        for s in list(_servers):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, nodes, a):
    base = free_base(3)
    mdir = os.path.join(tmp, "mesh")
    subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1", "--hub", "3",
                    "--client-port", str(base), "--cluster-port", str(base + 100),
                    "--leafnode-port", str(base + 200)] +
                   sum((["--node", "%s=%s" % (n, DOMAIN)] for n in ("n1", "n2", "n3")), []),
                   check=True, capture_output=True)
    for h in ("hub-1", "hub-2", "hub-3"):
        NatsServer(os.path.join(mdir, h, "nats.conf"), os.path.join(tmp, h + ".log")).start()

    def start(name):
        n = Node(data_dir=os.path.join(tmp, name),
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--mesh-stream-max-msgs", str(a.keep)])
        nodes.append(n.start())
        return n
    n1, n2 = start("n1"), start("n2")
    for n in (n1, n2):
        n.create_domain(DOMAIN, hosts=["n1", "n2", "n3"], replication="sync")
    if not wait_for(lambda: n1.apply(contract(domain=DOMAIN))[0] in (200, 201), timeout=90,
                    step=0.5):
        sys.exit("the contract was never applied")
    conn = http.client.HTTPSConnection(n1.host, n1.port, timeout=60, context=n1.ssl_context())
    t0 = time.time()
    for b in range(a.batches):
        body = json.dumps([{"device": "d%05d" % b, "ts": 1700000000000 + i, "temp": i % 90}
                           for i in range(a.rows)]).encode()
        st, data = post(n1, conn, body)
        if st != 200:
            sys.exit("write: %d %s" % (st, data[:200]))
    load = time.time() - t0
    last = repl(n1).get("stream_seq", 0)
    rows = a.batches * a.rows
    n3 = start("n3")
    t0 = time.time()
    n3.create_domain(DOMAIN, hosts=["n1", "n2", "n3"], replication="sync")
    if not wait_for(lambda: repl(n3).get("applied_seq", -1) >= last and
                    repl(n3).get("state") == "consuming", timeout=600, step=0.1):
        sys.exit("n3 did not catch up: %s" % repl(n3))
    total = time.time() - t0
    got = n3.scalar("SELECT count(*) FROM %s.readings" % DOMAIN)
    line = [x for x in n3.log if "installed a snapshot" in x]
    m = re.search(r"\((\d+) bytes in (\d+) ms\)", line[-1] if line else "")
    size, ms = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    print("loaded %d rows in %.1f s; stream at %d, keeps %d records" % (rows, load, last, a.keep))
    print("n3: %d rows; snapshot %.1f MiB" % (got, size / 1048576))
    print("bootstrap by n3's log (request to swapped in): %.2f s: %.0f rows/s, %.1f MiB/s" % (
        ms / 1000, rows / (ms / 1000) if ms else 0, size / 1048576 / (ms / 1000) if ms else 0))
    print("domain created on n3 -> every row applied: %.2f s: %.0f rows/s" % (total, rows / total))


if __name__ == "__main__":
    main()
