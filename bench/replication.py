#!/usr/bin/python3
"""Replicated writes: throughput and latency of batched writes on one node without a mesh, and
on a replicated domain (hosts n1, n2) with a stream of 1 replica (a hub of one nats-server) and
of 3 replicas (a hub of three), in sync and async mode; then failover times (BENCHMARKS.md,
"Replication").

Every scenario starts its own processes on loopback (MESH_BUILD, default build/release) and
stops them. Writes: CLIENTS threads, each with one kept-alive HTTPS connection to n1, post
BATCHES batches of ROWS rows (JSON, pre-encoded) each; throughput = rows / wall time of the
whole load; latency = each POST's round trip (p50, p99). For async, also the time from the
load's end until replica n2 holds every row ("caught up"). Failover (R3 sync): a client writes
one batch at a time to n1, moving to n2 when a request fails (like meshctl with two URLs);
n1 is killed -9, then the nats-server leading the stream; for each, the longest time without an
acknowledged write in the 15 s after the kill (from the kill itself) is printed. Leader kills
(`--only leader-kills --kills N`): N kills of the stream's leader in a row during writes by
two clients on both nodes; for each, the seconds until 20 more writes were acknowledged.

  bench/replication.py [--clients 2] [--batches 150] [--rows 1000] [--only ...] [--kills 10]
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
os.environ.setdefault("MESH_BUILD", os.path.join(HERE, "..", "build", "release"))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, _servers, free_base  # noqa: E402

DOMAIN = "bench"


class Conn:
    """One kept-alive HTTPS connection to a node."""

    def __init__(self, node):
        self.node = node
        self.c = http.client.HTTPSConnection(node.host, node.port, timeout=30,
                                             context=node.ssl_context())

    def post(self, body, key=None):
        h = {"Authorization": "Bearer " + self.node.token, "Content-Type": "application/json"}
        if key:
            h["Idempotency-Key"] = key
        self.c.request("POST", "/v1/products/%s/readings/rows" % DOMAIN, body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        return r.status, data

    def close(self):
        self.c.close()


def bodies(prefix, batches, rows):
    out = []
    for b in range(batches):
        dev = "%s-%05d" % (prefix, b)
        out.append(json.dumps([{"device": dev, "ts": 1700000000000 + i, "temp": i % 90}
                               for i in range(rows)]).encode())
    return out


def own_cpu_s():
    """CPU seconds this process (the clients) has used so far."""
    t = os.times()
    return t.user + t.system


def cpu_s(proc):
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        with open("/proc/%d/stat" % proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def thread_cpu_s(proc):
    """CPU seconds by thread name (meshd names its threads: http, repl:<domain>, ...)."""
    out = {}
    base = "/proc/%d/task" % proc.pid
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("%s/%s/stat" % (base, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("%s/%s/comm" % (base, tid)) as f:
                name = f.read().strip()
        except (OSError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf(
            "SC_CLK_TCK")
    return out


def thread_delta(t0, t1):
    """CPU seconds each thread name used between two thread_cpu_s readings (>= 10 ms)."""
    d = {k: round(v - t0.get(k, 0.0), 2) for k, v in t1.items()}
    return dict(sorted(((k, v) for k, v in d.items() if v >= 0.01), key=lambda kv: -kv[1]))


def load(node, clients, batches, rows):
    work = [bodies("c%d" % c, batches, rows) for c in range(clients)]
    lat, errors = [], []
    lock = threading.Lock()

    def client(k):
        conn = Conn(node)
        mine = []
        for b in work[k]:
            t0 = time.perf_counter()
            st, data = conn.post(b)
            mine.append(time.perf_counter() - t0)
            if st != 200:
                errors.append((st, data[:200]))
        conn.close()
        with lock:
            lat.extend(mine)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit("writes refused: %s" % errors[:3])
    lat.sort()
    return {"rows_per_s": clients * batches * rows / wall, "wall_s": wall,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


class Mesh:
    def __init__(self, tmp, hubs):
        self.tmp, self.nodes, self.hubs = tmp, {}, {}
        self.base = free_base(hubs)
        self.mdir = os.path.join(tmp, "mesh")
        out = subprocess.run([MESHCTL, "mesh", "config", "--out", self.mdir, "--bind",
                              "127.0.0.1", "--hub", str(hubs), "--client-port", str(self.base),
                              "--cluster-port", str(self.base + 100), "--leafnode-port",
                              str(self.base + 200), "--node", "n1=" + DOMAIN,
                              "--node", "n2=" + DOMAIN], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stdout + out.stderr)
        for i in range(1, hubs + 1):
            name = "hub-%d" % i
            self.hubs[name] = NatsServer(os.path.join(self.mdir, name, "nats.conf"),
                                         os.path.join(tmp, name + ".log")).start()

    def start(self, name):
        n = Node(data_dir=os.path.join(self.tmp, name), keep_dir=True, args=[
            "--config", os.path.join(self.mdir, "nodes", name, "meshd.conf"),
            "--mesh-heartbeat", "1s", "--mesh-ttl", "3s"])
        self.nodes[name] = n.start()
        return n

    def stop(self):
        for n in self.nodes.values():
            n.destroy()
        for s in list(_servers):
            s.stop()


def repl(node):
    st, doc = node.json("GET", "/v1/status")
    return doc.get("replication", {}).get(DOMAIN, {}) if st == 200 else {}


def has_product(node):
    st, doc = node.json("GET", "/v1/domains/" + DOMAIN)
    return st == 200 and any(p["name"] == "readings" for p in doc["products"])


def count(node):
    try:
        return node.scalar("SELECT count(*) FROM bench.readings")
    except AssertionError:
        return -1


def replicated(tmp, hubs, mode, args):
    m = Mesh(tmp, hubs)
    try:
        n1, n2 = m.start("n1"), m.start("n2")
        for n in (n1, n2):
            n.create_domain(DOMAIN, hosts=["n1", "n2"], replication=mode)
        if not wait_for(lambda: n1.apply(contract(domain=DOMAIN))[0] in (200, 201), timeout=90,
                        step=0.5):
            raise SystemExit("the stream never came up: %s" % repl(n1))
        if not wait_for(lambda: has_product(n2), timeout=60, step=0.2):
            raise SystemExit("the contract never reached n2: %s" % repl(n2))
        if hubs == 3 and repl(n1).get("replicas") != 3:
            wait_for(lambda: repl(n1).get("replicas") == 3, timeout=10)
        total = args.clients * args.batches * args.rows
        procs = {"n1": n1.proc, "n2": n2.proc, "nats": [s.proc for s in m.hubs.values()]}

        def cpu():
            return {k: sum(cpu_s(p) for p in (v if isinstance(v, list) else [v]))
                    for k, v in procs.items()}
        c0, t0, me0 = cpu(), thread_cpu_s(n1.proc), own_cpu_s()
        r = load(n1, args.clients, args.batches, args.rows)
        c1 = cpu()
        c1["client"], c0["client"] = own_cpu_s(), me0
        r["n1_threads_cpu_s"] = thread_delta(t0, thread_cpu_s(n1.proc))
        t0 = time.perf_counter()
        if not wait_for(lambda: count(n2) == total,
                        timeout=300, step=0.05):
            raise SystemExit("n2 never caught up: %s" % repl(n2))
        r["caught_up_s"] = time.perf_counter() - t0
        c2 = cpu()
        # CPU seconds each used during the load (n1: the node written to; nats: all servers;
        # client: this script's writing threads), and until n2 held every row
        r["cpu_s"] = {k: round(c1[k] - c0[k], 2) for k in c0}
        r["cpu_to_caught_up_s"] = {k: round(c2[k] - c0[k], 2) for k in c0 if k != "client"}
        # rows on both replicas per second: the load and the catch-up after it
        r["replicated_rows_per_s"] = total / (r["wall_s"] + r["caught_up_s"])
        st = repl(n1)
        r["stream_replicas"] = st.get("replicas")
        # stream messages n1 published, and the batches they carried (async: groups)
        r["messages"], r["batches"] = st.get("published"), st.get("published_batches")
        return r
    finally:
        m.stop()


def single(tmp, args):
    n = Node(data_dir=os.path.join(tmp, "single"), keep_dir=True).start()
    try:
        n.create_domain(DOMAIN)
        n.apply(contract(domain=DOMAIN), expect=201)
        c0, t0, me0 = cpu_s(n.proc), thread_cpu_s(n.proc), own_cpu_s()
        r = load(n, args.clients, args.batches, args.rows)
        r["cpu_s"] = {"n1": round(cpu_s(n.proc) - c0, 2), "client": round(own_cpu_s() - me0, 2)}
        r["n1_threads_cpu_s"] = thread_delta(t0, thread_cpu_s(n.proc))
        return r
    finally:
        n.destroy()


def failover(tmp, args):
    m = Mesh(tmp, 3)
    out = {}
    try:
        n1, n2 = m.start("n1"), m.start("n2")
        for n in (n1, n2):
            n.create_domain(DOMAIN, hosts=["n1", "n2"], replication="sync")
        if not wait_for(lambda: n1.apply(contract(domain=DOMAIN))[0] in (200, 201), timeout=90,
                        step=0.5):
            raise SystemExit("the stream never came up: %s" % repl(n1))
        body = bodies("f", 1, args.rows)[0]
        order = [n1, n2]
        state = {"i": 0, "last_ok": 0.0, "stop": False}
        acks, tries = [], []

        def writer():
            conns = {}
            while not state["stop"]:
                state["i"] += 1
                for node in order:
                    t0 = time.perf_counter()
                    try:
                        c = conns.get(node.name) or conns.setdefault(node.name, Conn(node))
                        st, _ = c.post(body, key="k%06d" % state["i"])
                    except Exception:
                        conns.pop(node.name, None)
                        st = 0
                    tries.append((t0, time.perf_counter(), node.name, st))
                    if st == 200:
                        state["last_ok"] = time.perf_counter()
                        acks.append(state["last_ok"])
                        break
                else:
                    time.sleep(0.05)
        for n in (n1, n2):
            n.name = "n1" if n is n1 else "n2"
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        def gap(killed):
            # the longest time without an acknowledged write around the kill: from the last
            # ack before it (or the kill) to the next ack after the longest silence
            wait_for(lambda: time.perf_counter() - killed > 15, timeout=30, step=0.1)
            window = [killed] + [a for a in acks if killed < a < killed + 15]
            if args.trace:  # every request that failed or took over 0.5 s, from the kill
                for t0, t1, name, st in tries:
                    if t1 > killed - 1 and t0 < killed + 15 and (st != 200 or t1 - t0 > 0.5):
                        print("  %+.2f s %s -> %d after %.2f s" % (t0 - killed, name, st,
                                                                   t1 - t0), flush=True)
            return max(b - a for a, b in zip(window, window[1:])) if len(window) > 1 else None
        time.sleep(2)
        killed = time.perf_counter()
        n1.kill()
        out["meshd_kill_max_gap_s"] = gap(killed)
        leader = repl(n2).get("leader")
        order.remove(n1)
        if leader in m.hubs:
            killed = time.perf_counter()
            m.hubs[leader].proc.kill()
            m.hubs[leader].proc.wait()
            out["leader"] = leader
            out["leader_kill_max_gap_s"] = gap(killed)
            if args.trace:
                for line in n2.log:
                    if "[repl]" in line or "repl" in line and "attempt" in line:
                        print("  n2: " + line)
        state["stop"] = True
        t.join(30)
        return out
    finally:
        m.stop()


def leader_kills(tmp, args):
    """KILLS kills -9 of the nats-server leading the stream (R3 sync), each restarted 2 s after
    writes resumed, during continuous writes of one row by two clients, each moving to the
    other node when a request fails: for each kill, the seconds until 20 more writes were
    acknowledged (the election, the publish retries inside the node, and the replicas' apply)."""
    m = Mesh(tmp, 3)
    try:
        nodes = [m.start("n1"), m.start("n2")]
        for n in nodes:
            n.create_domain(DOMAIN, hosts=["n1", "n2"], replication="sync")
        if not wait_for(lambda: nodes[0].apply(contract(domain=DOMAIN))[0] in (200, 201),
                        timeout=90, step=0.5):
            raise SystemExit("the stream never came up: %s" % repl(nodes[0]))
        acks, stop = [], threading.Event()

        def writer(w):
            conns, i = {}, 0
            while not stop.is_set():
                i += 1
                key = "lk%d-%06d" % (w, i)
                body = json.dumps([{"device": key, "ts": i, "temp": 1}]).encode()
                for attempt in range(600):
                    node = nodes[(i + attempt + w) % 2]
                    try:
                        c = conns.get(node.url) or conns.setdefault(node.url, Conn(node))
                        st, _ = c.post(body, key=key)
                    except Exception:
                        conns.pop(node.url, None)
                        st = 0
                    if st == 200:
                        acks.append(time.perf_counter())
                        break
                    if stop.is_set():
                        break
                    time.sleep(0.2)
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(2)]
        for t in threads:
            t.start()
        time.sleep(3)
        took = []
        for _ in range(args.kills):
            leader = repl(nodes[0]).get("leader")
            if leader not in m.hubs:
                raise SystemExit("no stream leader: %s" % repl(nodes[0]))
            k0, killed = len(acks), time.perf_counter()
            m.hubs[leader].proc.kill()
            m.hubs[leader].proc.wait()
            wait_for(lambda: len(acks) >= k0 + 20, timeout=90, step=0.05)
            took.append(round(time.perf_counter() - killed, 1) if len(acks) >= k0 + 20 else None)
            print("  kill of %s: 20 writes acknowledged after %s s" % (leader, took[-1]),
                  flush=True)
            m.hubs[leader].start()
            time.sleep(2)
        stop.set()
        for t in threads:
            t.join(30)
        done = sorted(t for t in took if t is not None)
        return {"kills": len(took), "resumed_s": took,
                "median_s": round(statistics.median(done), 2) if done else None,
                "max_s": done[-1] if done else None, "never": took.count(None)}
    finally:
        m.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--trace", action="store_true",
                    help="failover: print the requests that failed or were slow around a kill")
    ap.add_argument("--kills", type=int, default=10,
                    help="leader-kills: how many kills of the stream's leader")
    ap.add_argument("--only", default="single,r1-sync,r1-async,r3-sync,r3-async,failover",
                    help="scenarios, comma-separated: those and leader-kills")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="meshd-bench-repl-")
    res = {}
    try:
        for name in args.only.split(","):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            if name == "single":
                res[name] = single(d, args)
            elif name == "failover":
                res[name] = failover(d, args)
            elif name == "leader-kills":
                res[name] = leader_kills(d, args)
            else:
                hubs = 1 if name.startswith("r1") else 3
                res[name] = replicated(d, hubs, name.split("-")[1], args)
            print(name, json.dumps(res[name]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if "single" in res:
        base = res["single"]["rows_per_s"]
        print("\n| scenario | rows/s | vs single | p50 ms | p99 ms | replica caught up after "
              "| on both replicas, vs single | batches per message |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for k, v in res.items():
            if "rows_per_s" in v:
                both = v.get("replicated_rows_per_s")
                print("| %s | %.0f | %.2f | %.1f | %.1f | %s | %s | %s |" % (
                    k, v["rows_per_s"], v["rows_per_s"] / base, v["p50_ms"], v["p99_ms"],
                    "%.2f s" % v["caught_up_s"] if "caught_up_s" in v else "-",
                    "%.2f" % (both / base) if both else "-",
                    "%.1f" % (v["batches"] / v["messages"])
                    if v.get("messages") and v.get("batches") else "-"))
    if "failover" in res:
        print("\nfailover: %s" % json.dumps(res["failover"]))


if __name__ == "__main__":
    main()
