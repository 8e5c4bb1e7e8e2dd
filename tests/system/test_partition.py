"""The mesh, a partition: one hub server and its meshd cut off from the others.

Network namespace NS (made here; root only, else skipped) holds hub-3 and meshd n3; hub-1,
hub-2, n1 and n2 run in the root namespace. A veth pair joins them (10.77.X.1 and .2 on the
root side, .3 in NS). The three nodes host domain `plant` (sync, stream MESHD_DOM_plant, R3).
Checked:
- before: writes through every node are acknowledged; then hub-3 is made the stream's leader
  (leader step-downs, allowed to the node users of this test only), the hardest case: the
  partition cuts off the leader, whose copy of the stream then differs from the majority's;
- partitioned (the namespace's end of the link set down: nothing passes, no connection is
  reset): sync writes on n3 are refused (503) or time out, never acknowledged; writes on
  n1 and n2 go on (after a stream leader election when hub-3 led);
- healed (the link up again): every replica converges (its applied position reaches the
  stream's last sequence, the same checksum of the domain's rows on n1, n2, n3), every
  acknowledged batch is there exactly once on every replica, a batch refused on n3 at most
  once, and n3 takes writes again.
Every process and the namespace made here are removed at the end, also on failure.
"""
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import meshlib  # noqa: E402
import test_mesh  # noqa: E402
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, _servers, fail, free_base  # noqa: E402

DOMAIN = "plant"


def sh(*cmd):
    out = subprocess.run(list(cmd), capture_output=True, text=True)
    if out.returncode != 0:
        fail("%s: %s%s" % (" ".join(cmd), out.stdout, out.stderr))
    return out.stdout


def wrapper(tmp, name, ns, binary):
    """A script that runs binary inside namespace ns (exec: the pid is the program's)."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n" % (ns, binary))
    os.chmod(path, stat.S_IRWXU)
    return path


def repl(node):
    st, doc = node.json("GET", "/v1/status")
    return doc.get("replication", {}).get(DOMAIN, {}) if st == 200 else {}


def checksum(node):
    return node.rows("SELECT count(*), total(temp), group_concat(device, ',') FROM "
                     "(SELECT device, temp FROM plant.readings ORDER BY device, ts)")[0]


def main():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("skipped: needs root and iproute2 (network namespaces)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="meshd-part-test-")
    ns = "meshd-part-%d" % os.getpid()
    nodes = {}
    try:
        run(tmp, ns, nodes)
    except BaseException:
        for name, n in nodes.items():
            mesh = [line for line in n.log if "comp=mesh" in line]
            sys.stderr.write("---- %s's last log lines (mesh):\n%s\n" % (name,
                                                                      "\n".join(mesh[-30:])))
        raise
    finally:
        for n in nodes.values():
            n.destroy()
        for s in list(_servers):
            s.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, ns, nodes):
    x = random.randrange(10, 250)
    root_ips = ["10.77.%d.1" % x, "10.77.%d.2" % x]
    ns_ip = "10.77.%d.3" % x
    tag = os.getpid() % 100000
    veth_root, veth_ns = "vmp%d" % tag, "vmq%d" % tag
    # a second link that only the test's HTTP client uses to reach n3's API (it stays up)
    api_root, api_ns, api_ip = "vmr%d" % tag, "vms%d" % tag, "10.78.%d.3" % x
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", veth_root, "type", "veth", "peer", "name", veth_ns)
    sh("ip", "link", "set", veth_ns, "netns", ns)
    for ip in root_ips:
        sh("ip", "addr", "add", ip + "/24", "dev", veth_root)
    sh("ip", "link", "set", veth_root, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", ns_ip + "/24", "dev", veth_ns)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", veth_ns, "up")
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", api_root, "type", "veth", "peer", "name", api_ns)
    sh("ip", "link", "set", api_ns, "netns", ns)
    sh("ip", "addr", "add", "10.78.%d.1/24" % x, "dev", api_root)
    sh("ip", "link", "set", api_root, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", api_ip + "/24", "dev", api_ns)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", api_ns, "up")

    base = free_base(3)
    mdir = os.path.join(tmp, "mesh")
    hosts = root_ips + [ns_ip]
    out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "0.0.0.0",
                          "--hub", "3", "--hub-hosts", ",".join(hosts),
                          "--client-port", str(base), "--cluster-port", str(base + 100),
                          "--leafnode-port", str(base + 200),
                          "--node", "n1@hub-1=" + DOMAIN, "--node", "n2@hub-2=" + DOMAIN,
                          "--node", "n3@hub-3=" + DOMAIN], capture_output=True, text=True)
    if out.returncode != 0:
        fail("mesh config: %s%s" % (out.stdout, out.stderr))
    hubs = {}
    for i, name in enumerate(("hub-1", "hub-2", "hub-3")):
        conf = os.path.join(mdir, name, "nats.conf")
        # hub-1 and hub-2 share the root namespace: each on its own address; hub-3 listens on
        # every address of its namespace (n3 reaches it on localhost, inside)
        text = open(conf).read().replace('host: "0.0.0.0"',
                                         'host: "%s"' % (hosts[i] if i < 2 else "0.0.0.0"))
        # this test only: the node users may ask the stream's leader to step down
        get = '"$JS.API.STREAM.MSG.GET.MESHD_DOM_%s"' % DOMAIN
        if get not in text:
            fail("no %s in %s's permissions" % (get, name))
        text = text.replace(get, get + ', "$JS.API.STREAM.LEADER.STEPDOWN.MESHD_DOM_%s"' % DOMAIN)
        with open(conf, "w") as f:
            f.write(text)
        if name == "hub-3":
            test_mesh.NATS, saved = wrapper(tmp, "nats-in-ns", ns, test_mesh.NATS), test_mesh.NATS
        try:
            hubs[name] = NatsServer(conf, os.path.join(tmp, name + ".log")).start()
        finally:
            if name == "hub-3":
                test_mesh.NATS = saved

    # every server ready before the nodes start: each node then connects to its own hub (the
    # first of its list) and n3 stays on hub-3, inside the namespace
    for name, h in hubs.items():
        if not wait_for(lambda: "Server is ready" in h.log(), timeout=30, step=0.2):
            fail("%s did not start:\n%s" % (name, h.log()[-2000:]))

    def start(name, listen="127.0.0.1:0"):
        n = Node(data_dir=os.path.join(tmp, name),
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--listen", listen, "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s",
                       "--mesh-timeout", "2s",
                       # each knows its side's servers only: R3 whatever it learnt so far
                       "--mesh-replicas", "3"])
        if name == "n3":
            meshlib.MESHD, saved = wrapper(tmp, "meshd-in-ns", ns, meshlib.MESHD), meshlib.MESHD
        try:
            nodes[name] = n.start()
        finally:
            if name == "n3":
                meshlib.MESHD = saved
        return n
    # each meshd knows the servers of its side only (n3: hub-3 on localhost, inside the
    # namespace), so that which server a node connects to is not left to chance
    import re
    for name in ("n1", "n2", "n3"):
        conf = os.path.join(mdir, "nodes", name, "meshd.conf")
        text = open(conf).read()
        urls = re.search(r"^mesh = (.*)$", text, re.M).group(1).split(",")
        mine = ["tls://localhost:%d" % base] if name == "n3" else \
            [u for u in urls if ns_ip not in u]
        with open(conf, "w") as f:
            f.write(text.replace("mesh = " + ",".join(urls), "mesh = " + ",".join(mine)))
    n1, n2, n3 = start("n1"), start("n2"), start("n3", api_ip + ":0")
    for n in (n1, n2, n3):
        n.create_domain(DOMAIN, hosts=["n1", "n2", "n3"], replication="sync")
    sides = {"n1": root_ips, "n2": root_ips, "n3": ["localhost"]}
    for name in ("n1", "n2", "n3"):
        def on_own_hub():
            mesh = nodes[name].json("GET", "/v1/status")[1].get("mesh", {})
            return mesh.get("state") == "connected" and \
                any(h in (mesh.get("server") or "") for h in sides[name])
        # a first connection that fails (a TLS handshake too slow on a busy machine) moves
        # libnats on to a server it learnt from the cluster, maybe of the other side: restart
        for attempt in range(3):
            if wait_for(on_own_hub, timeout=30, step=0.3):
                break
            if attempt == 2:
                fail("%s is not connected to a hub of its side (%s): %s" % (
                    name, sides[name], nodes[name].json("GET", "/v1/status")[1].get("mesh")))
            nodes[name].stop()
            start(name, api_ip + ":0" if name == "n3" else "127.0.0.1:0")
    n1, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]

    def applied():
        st, _ = n1.apply(contract(domain=DOMAIN))
        return st in (200, 201)
    if not wait_for(applied, timeout=90, step=0.5):
        fail("contract never applied on n1: %s" % (n1.apply(contract(domain=DOMAIN)),))

    def has_product(n):
        st, doc = n.json("GET", "/v1/domains/" + DOMAIN)
        return st == 200 and any(p["name"] == "readings" for p in doc["products"])
    for n in (n2, n3):
        if not wait_for(lambda: has_product(n), timeout=30, step=0.3):
            fail("the contract did not reach %s: %s" % (n.url, repl(n)))
    if repl(n1).get("replicas") != 3:
        fail("stream replicas: %s" % repl(n1))

    acked, refused = [], []

    def write(node, key, tries=1):
        for _ in range(tries):
            try:
                st, doc = node.post_rows(DOMAIN, "readings",
                                         [{"device": key, "ts": len(acked) + 1, "temp": 1}],
                                         headers={"Idempotency-Key": key})
            except Exception as e:  # a client-side timeout: not acknowledged either
                st, doc = 0, str(e)
            if st == 200:
                acked.append(key)
                return st, doc
            if st not in (0, 503):
                fail("write %s: %d %s" % (key, st, doc))
            time.sleep(0.3)
        return st, doc
    for i in range(5):
        for name, n in (("n1", n1), ("n2", n2), ("n3", n3)):
            st, doc = write(n, "before-%s-%d" % (name, i), tries=20)
            if st != 200:
                fail("write before the partition on %s: %d %s" % (name, st, doc))
    # hub-3 leads the stream when it is cut off (step-downs until it does)
    pw = open(os.path.join(mdir, "nodes", "n1", "password")).read().strip()

    def js_api(subject):
        """The JetStream API's answer (as n1, through hub-1), None when there is none (an
        election): a connection each time, since a timed-out TLS socket cannot be read again."""
        try:
            c = test_mesh.NatsClient(base, "n1", pw, "_INBOX_n1.test",
                                     os.path.join(mdir, "ca.pem"),
                                     os.path.join(mdir, "nodes", "n1", "cert.pem"),
                                     os.path.join(mdir, "nodes", "n1", "key.pem"),
                                     host=root_ips[0])
        except (OSError, AssertionError):
            return None
        try:
            doc = c.request(subject, None)
            return doc if isinstance(doc, dict) else None
        except OSError:
            return None
        finally:
            c.close()

    def stream_leader():
        info = js_api("$JS.API.STREAM.INFO.MESHD_DOM_" + DOMAIN) or {}
        return info.get("cluster", {}).get("leader")
    def peers_current():
        """Both followers caught up: a step-down elects among current peers only, so a
        lagging hub-3 could never be chosen."""
        info = js_api("$JS.API.STREAM.INFO.MESHD_DOM_" + DOMAIN) or {}
        reps = info.get("cluster", {}).get("replicas") or []
        return len(reps) == 2 and all(r.get("current") for r in reps)
    for _ in range(12):
        leader = stream_leader()
        if leader == "hub-3":
            break
        wait_for(peers_current, timeout=15, step=0.3)
        js_api("$JS.API.STREAM.LEADER.STEPDOWN.MESHD_DOM_" + DOMAIN)
        wait_for(lambda: stream_leader() not in (None, leader), timeout=15, step=0.3)
    if stream_leader() != "hub-3":
        fail("hub-3 did not become the stream's leader: %s" % stream_leader())
    # every node writes through the new leader before the cut
    for name, n in (("n1", n1), ("n2", n2), ("n3", n3)):
        st, doc = write(n, "led-%s" % name, tries=40)
        if st != 200:
            fail("write after the leader change on %s: %d %s" % (name, st, doc))
    leader = "hub-3"

    # ---- partition: hub-3 and n3 are cut off ----
    sh("ip", "netns", "exec", ns, "ip", "link", "set", veth_ns, "down")
    t0 = time.monotonic()
    outcomes = {}

    def majority_writes():
        i = 0
        while time.monotonic() - t0 < 25 and (not stop.is_set() or i < 20):
            i += 1
            node, name = (n1, "n1") if i % 2 else (n2, "n2")
            write(node, "during-%s-%d" % (name, i), tries=60)
            time.sleep(0.1)
    stop = threading.Event()
    t = threading.Thread(target=majority_writes, daemon=True)
    t.start()
    for i in range(4):
        key = "isolated-n3-%d" % i
        st, doc = write(n3, key)
        outcomes[key] = st
        if st not in (0, 503):
            fail("a sync write on the isolated n3 was acknowledged: %s" % doc)
        refused.append(key)
    stop.set()
    t.join(60)
    if 503 not in outcomes.values():
        fail("n3 never answered 503 while isolated: %s" % outcomes)
    during = [k for k in acked if k.startswith("during-")]
    if len(during) < 3:
        fail("writes on the majority side did not go on (leader was %s): %d acked" % (
            leader, len(during)))
    print("partitioned: n3 answered %s; the majority acknowledged %d batches (stream leader "
          "before: %s)" % (sorted(set(outcomes.values())), len(during), leader))

    # ---- heal ----
    sh("ip", "netns", "exec", ns, "ip", "link", "set", veth_ns, "up")
    st, doc = write(n3, "after-n3", tries=200)
    if st != 200:
        fail("n3 did not take writes after healing: %d %s" % (st, doc))
    write(n1, "after-n1", tries=50)
    last = {}

    def converged():
        rs = [repl(n) for n in (n1, n2, n3)]
        top = max(r.get("stream_seq", 0) for r in rs)
        sums = [checksum(n) for n in (n1, n2, n3)]
        last["r"], last["s"] = rs, sums
        return all(r.get("applied_seq", -1) >= top for r in rs) and \
            sums[0] == sums[1] == sums[2]
    if not wait_for(converged, timeout=60, step=0.5):
        fail("replicas did not converge: %s %s" % ([(r.get("state"), r.get("stream_seq"),
                                                      r.get("applied_seq"), r.get("last_error"))
                                                     for r in last["r"]], last["s"]))
    for n in (n1, n2, n3):
        have = {r[0]: r[1] for r in n.rows(
            "SELECT device, count(*) FROM plant.readings GROUP BY device")}
        missing = [k for k in acked if have.get(k) != 1]
        twice = [k for k in refused if have.get(k, 0) > 1]
        if missing or twice:
            fail("%s: %d acknowledged batches missing or twice (%s), refused ones twice: %s" %
                 (n.url, len(missing), missing[:5], twice))
    print("healed: %d acknowledged batches once on each of 3 replicas, checksum %s; "
          "divergences repaired %s, deliveries out of order %s" % (
              len(acked), last["s"][0][:2], [r.get("divergences") for r in last["r"]],
              [r.get("out_of_order") for r in last["r"]]))
    for name, r in zip(("n1", "n2", "n3"), last["r"]):
        if r.get("divergences"):
            print("%s: %s" % (name, r.get("last_error")))


if __name__ == "__main__":
    main()
    print("ok")
