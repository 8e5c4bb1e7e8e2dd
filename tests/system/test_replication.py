"""The mesh, parts 2 and 3 (domain replication over JetStream, failover), on loopback.

`meshctl mesh config` writes a hub of 3 nats-servers; nodes n1 and n2 host domain `plant`
(sync replication, stream MESHD_DOM_plant with 3 replicas), n3 hosts nothing. Checked:
- a contract applied on n1 reaches n2 through the stream; a write on n1 answers its stream
  position, and a query on n2 with that min_position sees it (read-your-writes on a replica);
- a write sent to n3 (no replica) is forwarded to a hosting node and lands on both;
- during continuous writes (a client that moves to the other node when one fails, like
  meshctl with several URLs): kill -9 of meshd n2, its restart (it catches up from its
  durable consumer), and kill -9 of the nats-server leading the stream; writes resume, and
  afterwards every acknowledged batch is on both replicas exactly once and the replicas'
  checksums match;
- a delivery lost in flight (taken from n2's durable consumer and never acknowledged, so
  JetStream delivers it again only after the ack wait, behind later records): n2 applies
  nothing past it, reads it from the stream's leader, and has every record within seconds;
- n2's consumer delivering nothing (pulls of another client take its deliveries): n2's sync
  writes are answered, their records read from the stream's leader;
- n3's NATS user may not publish to the domain's stream subject nor read it;
- meshctl with two URLs, the first dead, moves on to the second;
- the stream deleted and made again (every replica's position is past its end): no write is
  answered before its apply, both replicas find the divergence, move back, and apply the new
  stream from its start.
Every nats-server and meshd started here is stopped at the end, also on failure.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import (NatsClient, NatsServer, fail, free_base,  # noqa: E402
                       meshctl, run_in_tmp)

DOMAIN = "plant"


def status(node):
    st, doc = node.json("GET", "/v1/status")
    return doc if st == 200 else {}


def repl(node):
    return status(node).get("replication", {}).get(DOMAIN, {})


def raw(client, cmd):
    """Sends cmd then PING; the server's lines up to PONG (a refusal is an -ERR line)."""
    client.ss.sendall(cmd + b"PING\r\n")
    lines = []
    while True:
        line = client._line()
        if line == "PONG":
            return "\n".join(lines)
        lines.append(line)


def steal(client, consumer):
    """Takes the next message of the consumer (a pull of one) and never acknowledges it: the
    stream sequence of what was taken (from the ack subject)."""
    client.n += 1
    reply = "%s.%d" % (client.inbox, client.n)
    body = json.dumps({"batch": 1, "expires": 5000000000}).encode()
    client.ss.sendall(("PUB $JS.API.CONSUMER.MSG.NEXT.MESHD_DOM_%s.%s %s %d\r\n" % (
        DOMAIN, consumer, reply, len(body))).encode() + body + b"\r\n")
    while True:
        line = client._line()
        if line == "PING":
            client.ss.sendall(b"PONG\r\n")
            continue
        if line.startswith("-ERR"):
            fail("pull as %s: %s" % (consumer, line))
        words = line.split()
        if words and words[0] in ("MSG", "HMSG"):
            size = int(words[-1])
            client.f.read(size + 2)
            # JetStream delivers the message under its own subject, the ack subject as reply
            if words[0] == "MSG" and len(words) == 5 and words[3].startswith("$JS.ACK."):
                return int(words[3].split(".")[5])  # $JS.ACK.<stream>.<consumer>.<n>.<sseq>
            if words[1] == reply:
                fail("nothing to take from consumer %s: %s" % (consumer, line))


def checksum(node):
    return node.rows("SELECT count(*), total(temp), group_concat(device, ',') FROM "
                     "(SELECT device, temp FROM plant.readings ORDER BY device, ts)")[0]


def main():
    run_in_tmp("meshd-repl-test-", run)


def run(tmp, nodes):
    base = free_base(3)
    mdir = os.path.join(tmp, "mesh")
    out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1",
                          "--hub", "3", "--client-port", str(base),
                          "--cluster-port", str(base + 100), "--leafnode-port", str(base + 200),
                          "--node", "n1=" + DOMAIN, "--node", "n2=" + DOMAIN, "--node", "n3"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail("mesh config: %s%s" % (out.stdout, out.stderr))
    hubs = {}
    for name in ("hub-1", "hub-2", "hub-3"):
        hubs[name] = NatsServer(os.path.join(mdir, name, "nats.conf"),
                                os.path.join(tmp, name + ".log")).start()

    def start(name):
        n = Node(data_dir=os.path.join(tmp, name),
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s"])
        nodes[name] = n.start()
        return n
    n1, n2, n3 = start("n1"), start("n2"), start("n3")

    for n in (n1, n2):
        n.create_domain(DOMAIN, hosts=["n1", "n2"], replication="sync")
    # a replicated domain without the mesh's stream takes no writes: refused, never local
    st, doc = n3.json("POST", "/v1/domains", {"name": "lonely", "hosts": ["n1"],
                                              "replication": "sync"})
    if st != 201:
        fail("create lonely: %d %s" % (st, doc))
    st, _ = n3.apply(contract(domain="lonely"))
    if st != 503:
        fail("a contract for a replicated domain not hosted by this node's name: %d" % st)

    # ---- the contract goes through the stream (created while the hub forms: retried) ----
    def applied():
        st, doc = n1.apply(contract(domain=DOMAIN))
        return st in (200, 201)
    if not wait_for(applied, timeout=90, step=0.5):  # the hub forms slowly on a busy machine
        fail("contract never applied on n1: %s\n%s" % (n1.apply(contract(domain=DOMAIN)),
                                                       "\n".join(n1.log[-20:])))

    def n2_has_product():
        st, doc = n2.json("GET", "/v1/domains/" + DOMAIN)
        return st == 200 and any(p["name"] == "readings" for p in doc["products"])
    if not wait_for(n2_has_product, timeout=20, step=0.2):
        fail("the contract did not reach n2: %s" % repl(n2))
    r1 = repl(n1)
    if r1.get("replicas") != 3:
        fail("stream replicas: %s" % r1)

    # ---- sync write on n1, read-your-writes on n2 ----
    st, doc = n1.post_rows(DOMAIN, "readings", [{"device": "first", "ts": 1, "temp": 1.5}])
    if st != 200 or "position" not in doc:
        fail("write on n1: %d %s" % (st, doc))
    pos = doc["position"]
    if doc.get("accepted") != 1:
        fail("write on n1: %s" % doc)
    if pos["stream"] != "MESHD_DOM_" + DOMAIN or pos["seq"] < 2:
        fail("position: %s" % pos)
    got = n2.query("SELECT count(*) FROM plant.readings WHERE device = 'first'",
                   min_position=pos)
    if got["rows"] != [[1]]:
        fail("read-your-writes on n2: %s" % got)
    st, doc = n2.json("POST", "/v1/query", {"sql": "SELECT 1", "timeout_ms": 300,
                                             "min_position": {"stream": pos["stream"],
                                                              "seq": pos["seq"] + 1000}})
    if st != 503:
        fail("a position not reached must time out with 503: %d %s" % (st, doc))

    # ---- a batch's record is packed with zstd in the stream (decision 0037): the replica
    # applies exactly the rows written, and the stream holds far fewer bytes than the record ----
    before = repl(n1)
    rows = [{"device": "bulk-%d" % (i % 5), "ts": 1000 + i, "temp": (i * 7) % 90}
            for i in range(2000)]
    st, doc = n1.post_rows(DOMAIN, "readings", rows)
    if st != 200 or doc.get("accepted") != 2000:
        fail("bulk write on n1: %d %s" % (st, doc))
    got = n2.query("SELECT count(*), sum(ts), sum(temp) FROM plant.readings "
                   "WHERE device LIKE 'bulk-%'", min_position=doc["position"])
    want = [[2000, sum(r["ts"] for r in rows) * 10**9, sum(r["temp"] for r in rows)]]  # s: ns
    if got["rows"] != want:
        fail("bulk rows on n2: %s, not %s" % (got["rows"], want))
    after = repl(n1)
    rec = after["published_record_bytes"] - before["published_record_bytes"]
    wire = after["published_bytes"] - before["published_bytes"]
    if not (rec > 20000 and 0 < wire < rec / 3):
        fail("the bulk record (%d bytes) took %d bytes in the stream: not packed" % (rec, wire))
    st, _, text = n1.request("GET", "/metrics")
    if b'meshd_repl_published_bytes_total{domain="plant"}' not in text:
        fail("metrics lack meshd_repl_published_bytes_total")

    # ---- a write sent to n3, which hosts no replica, is forwarded ----
    st, doc = n3.post_rows(DOMAIN, "readings", [{"device": "forwarded", "ts": 2, "temp": 2}],
                           headers={"Idempotency-Key": "fwd-1"})
    if st != 200 or doc.get("accepted") != 1 or "position" not in doc:
        fail("forwarded write: %d %s" % (st, doc))
    for n in (n1, n2):
        got = n.query("SELECT count(*) FROM plant.readings WHERE device = 'forwarded'",
                      min_position=doc["position"])
        if got["rows"] != [[1]]:
            fail("forwarded row on %s: %s" % (n.url, got))
    # the same key again (through n3 again): stored once
    st, doc2 = n3.post_rows(DOMAIN, "readings", [{"device": "forwarded", "ts": 2, "temp": 2}],
                            headers={"Idempotency-Key": "fwd-1"})
    if st != 200 or not doc2.get("duplicate"):
        fail("forwarded retry: %d %s" % (st, doc2))
    # an invalid row forwarded: refused by the hosting node with its reasons
    st, doc = n3.post_rows(DOMAIN, "readings", [{"device": "bad", "ts": 3, "temp": 999}])
    if st != 400:
        fail("forwarded invalid row: %d %s" % (st, doc))

    # ---- a delivery lost in flight comes again only after the ack wait (30 s), behind later
    # records: n2 must apply none of those first (it would skip the lost one for good) ----
    def as_n2(inbox):
        """A raw NATS client with node n2's credentials (it can take n2's deliveries)."""
        d = os.path.join(mdir, "nodes", "n2")
        return NatsClient(base, "n2", open(os.path.join(d, "password")).read().strip(), inbox,
                          os.path.join(mdir, "ca.pem"), os.path.join(d, "cert.pem"),
                          os.path.join(d, "key.pem"))
    thief = as_n2("_INBOX_n2.test")
    n2.proc.send_signal(signal.SIGSTOP)  # n2's pending pull request expires meanwhile
    try:
        time.sleep(1.5)
        lost = []
        for key in ("lost-1", "lost-2"):
            st, doc = n1.post_rows(DOMAIN, "readings", [{"device": key, "ts": 5, "temp": 5}],
                                   headers={"Idempotency-Key": key})
            if st != 200:
                fail("write %s on n1: %d %s" % (key, st, doc))
            lost.append(doc["position"])
        taken = steal(thief, "n2")
    finally:
        n2.proc.send_signal(signal.SIGCONT)
        thief.close()
    if taken != lost[0]["seq"]:
        fail("took sequence %d from n2's consumer, not %s" % (taken, lost[0]))

    def n2_has_both():
        return n2.scalar("SELECT count(*) FROM plant.readings WHERE device LIKE 'lost-%'") == 2
    if not wait_for(n2_has_both, timeout=15, step=0.2):
        fail("n2 skipped the record delivered late: %s %s" % (
            n2.rows("SELECT device FROM plant.readings WHERE device LIKE 'lost-%'"), repl(n2)))
    if repl(n2).get("out_of_order", 0) < 1:
        fail("n2 did not count the delivery out of order: %s" % repl(n2))
    if repl(n2).get("read_direct", 0) < 1:
        fail("n2 did not read the missing record from the stream's leader: %s" % repl(n2))

    # ---- a consumer that delivers nothing to its node (other pulls take its deliveries, as
    # after a consumer leader's change): n2's sync writes do not wait for the ack wait or a
    # new consumer; n2 reads its own acknowledged records from the stream's leader ----
    thief = as_n2("_INBOX_n2.silent")
    n2.proc.send_signal(signal.SIGSTOP)  # n2's pending pull request expires meanwhile
    try:
        time.sleep(1.5)
        pulls = b"".join(
            ("PUB $JS.API.CONSUMER.MSG.NEXT.MESHD_DOM_%s.n2 _INBOX_n2.silent.%d %d\r\n" % (
                DOMAIN, k, len(b'{"batch":1000,"expires":20000000000}'))).encode() +
            b'{"batch":1000,"expires":20000000000}\r\n' for k in range(20))
        raw(thief, pulls)  # queued before n2's next pull: deliveries go to the thief
    finally:
        n2.proc.send_signal(signal.SIGCONT)
    try:
        before = repl(n2).get("read_direct", 0)
        for k in range(3):
            st, doc = n2.post_rows(DOMAIN, "readings", [{"device": "silent-%d" % k, "ts": 6,
                                                         "temp": 6}])
            if st != 200:
                fail("sync write on n2 while its consumer delivers nothing: %d %s %s" % (
                    st, doc, repl(n2)))
        if repl(n2).get("read_direct", 0) <= before:
            fail("n2's writes were applied without reading the leader's records: %s" % repl(n2))
    finally:
        thief.close()

    # ---- continuous writes while a replica and the stream leader are killed ----
    acked, lock, stop = [], threading.Lock(), threading.Event()
    errors = []

    def writer():
        i = 0
        targets = ["n1", "n2"]
        while not stop.is_set():
            i += 1
            key = "w%05d" % i
            body = [{"device": key, "ts": i, "temp": i % 100}]
            ok = False
            for attempt in range(60):  # the client moves on to the other node when one fails
                if stop.is_set() and attempt > 0:
                    break
                node = nodes.get(targets[(i + attempt) % 2])
                try:
                    st, doc = node.post_rows(DOMAIN, "readings", body,
                                             headers={"Idempotency-Key": key})
                except Exception:
                    st, doc = 0, None
                if st == 200:
                    ok = True
                    break
                if st not in (0, 503):
                    errors.append((key, st, doc))
                    break
                time.sleep(0.2)
            if ok:
                with lock:
                    acked.append(key)
    t = threading.Thread(target=writer, daemon=True)
    t.start()

    def acked_count():
        with lock:
            return len(acked)

    def progress(k, timeout=30):
        target = acked_count() + k
        if not wait_for(lambda: acked_count() >= target, timeout=timeout, step=0.1):
            why = []
            for k in ("n1", "n2"):
                n = nodes.get(k)
                try:
                    why.append("%s: %s" % (k, repl(n)))
                except Exception as ex:  # noqa: BLE001 - the node may be the one that hangs
                    why.append("%s: status failed: %s" % (k, ex))
                why.append("%s's last log lines:\n  %s" % (k, "\n  ".join(n.log[-25:])))
            fail("writes did not resume (%d acked): %s\n%s" % (acked_count(), errors[-3:],
                                                               "\n".join(why)))

    progress(20)
    nodes["n2"].kill()  # kill -9 of a replica
    progress(20)
    start("n2")  # restarted: catches up from its durable consumer
    progress(20)
    leader = repl(n1).get("leader")
    if leader not in hubs:
        fail("stream leader unknown: %s" % repl(n1))
    hubs[leader].proc.kill()  # kill -9 of the stream's leader
    hubs[leader].proc.wait()
    progress(20, timeout=45)
    # the node retried the publish itself through the election (same message id, decision
    # 0032) instead of only answering 503 to the client
    retries = sum(repl(nodes[k]).get("publish_retries", 0) for k in ("n1", "n2"))
    if retries == 0:
        fail("no publish was retried across the stream leader's election: %s" % repl(n1))
    hubs[leader].start()
    progress(10)
    stop.set()
    t.join(60)
    if errors:
        fail("writes refused: %s" % errors[:3])

    # every acknowledged batch exactly once on both replicas, and the replicas converge
    n2 = nodes["n2"]
    last = max(repl(n1).get("stream_seq", 0), repl(n2).get("stream_seq", 0))

    def converged():
        return (repl(n1).get("applied_seq", -1) >= last and
                repl(n2).get("applied_seq", -1) >= last and checksum(n1) == checksum(n2))
    if not wait_for(converged, timeout=30, step=0.3):
        fail("replicas did not converge: %s %s / %s %s" % (repl(n1), checksum(n1), repl(n2),
                                                           checksum(n2)))
    for n in (n1, n2):
        have = {r[0]: r[1] for r in n.rows(
            "SELECT device, count(*) FROM plant.readings WHERE device LIKE 'w%' GROUP BY device")}
        missing = [k for k in acked if k not in have]
        twice = [k for k, c in have.items() if c != 1]
        if missing or twice:
            fail("%s: %d acknowledged batches missing (%s), %d twice" % (
                n.url, len(missing), missing[:5], len(twice)))
    print("acknowledged %d batches; replicas converged at stream seq %d" % (len(acked), last))
    metrics = n2.request("GET", "/metrics")[2]
    if isinstance(metrics, bytes):
        metrics = metrics.decode()
    for m in ("meshd_repl_applied_seq{domain=\"plant\"}", "meshd_repl_lag{domain=\"plant\"}"):
        if m not in metrics:
            fail("metric %s missing" % m)

    # ---- an erasure on one replica goes through the stream: the other deletes the same rows
    gone = "device = 'first' OR device IN ('w00001', 'w00002', 'w00003')"
    want = n1.scalar("SELECT count(*) FROM plant.readings WHERE " + gone)
    st, doc = n1.json("POST", "/v1/products/plant/readings/erase", {"where": gone})
    if st != 200 or doc.get("deleted") != want:
        fail("erase on n1: %d %s (want %d)" % (st, doc, want))
    for n in (n1, n2):
        if not wait_for(lambda: n.scalar("SELECT count(*) FROM plant.readings WHERE " + gone) == 0,
                        timeout=30, step=0.2):
            fail("erased rows still on %s" % n.url)
    if not wait_for(lambda: checksum(n1) == checksum(n2), timeout=30, step=0.3):
        fail("replicas differ after the erasure: %s / %s" % (checksum(n1), checksum(n2)))
    print("erasure of %d rows applied on both replicas" % want)

    # ---- n3's NATS user may not touch the domain's stream ----
    pw = open(os.path.join(mdir, "nodes", "n3", "password")).read().strip()
    c = NatsClient(base, "n3", pw, "_INBOX_n3", os.path.join(mdir, "ca.pem"),
                   os.path.join(mdir, "nodes", "n3", "cert.pem"),
                   os.path.join(mdir, "nodes", "n3", "key.pem"))
    try:
        for cmd in (b"PUB meshd.dom.plant.log 2\r\nhi\r\n",
                    b"SUB meshd.dom.plant.log 1\r\n",
                    b"PUB $JS.API.CONSUMER.DURABLE.CREATE.MESHD_DOM_plant.n3 2\r\n{}\r\n"):
            reply = raw(c, cmd)
            if "Permissions Violation" not in reply:
                fail("n3 was not refused %r: %s" % (cmd, reply))
    finally:
        c.close()

    # ---- a replica restored from a backup catches up from the stream ----
    env = dict(os.environ, MESH_URL=n2.url, MESH_CACERT=n2.cafile, MESH_TOKEN=n2.token)
    for k in ("MESHD_KEK",):
        env.pop(k, None)
    out = subprocess.run([MESHCTL, "backup", "create", "--format", "json"], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        fail("backup of n2: %s%s" % (out.stdout, out.stderr))
    m = json.loads(out.stdout.strip().splitlines()[-1])
    dom = [d for d in m["domains"] if d["name"] == DOMAIN][0]
    held = repl(n2).get("applied_seq")
    if not dom.get("stream") or dom["stream"].get("name") != "MESHD_DOM_" + DOMAIN or \
            not 0 < dom["stream"].get("seq", 0) <= held:
        fail("the manifest holds no stream position: %s (n2 applied %s)" % (dom, held))
    bfile = os.path.join(n2.data_dir, "backups", m["id"] + ".mbk")
    # writes go on after the backup; then n2 loses its disk and is restored
    later = []
    for i in range(15):
        key = "after-%02d" % i
        st, doc = n1.post_rows(DOMAIN, "readings", [{"device": key, "ts": i, "temp": i}],
                               headers={"Idempotency-Key": key})
        if st != 200:
            fail("write after the backup: %d %s" % (st, doc))
        later.append(key)
    saved = os.path.join(tmp, "n2-backup.mbk")
    kek = os.path.join(tmp, "n2-kek.key")
    shutil.copy(bfile, saved)
    shutil.copy(os.path.join(n2.data_dir, "kek.key"), kek)
    n2.stop()
    out = subprocess.run([MESHCTL, "backup", "restore", saved, "--data-dir", n2.data_dir,
                          "--in-place", "--force", "--kek-file", kek], capture_output=True,
                         text=True)
    if out.returncode != 0:
        fail("restore of n2: %s%s" % (out.stdout, out.stderr))
    n2 = start("n2")
    last = repl(n1).get("stream_seq", 0)
    if not wait_for(lambda: repl(n2).get("applied_seq", -1) >= last and
                    checksum(n1) == checksum(n2), timeout=30, step=0.3):
        fail("the restored replica did not catch up: %s %s / %s %s" % (
            repl(n1), checksum(n1), repl(n2), checksum(n2)))
    have = {r[0]: r[1] for r in n2.rows(
        "SELECT device, count(*) FROM plant.readings WHERE device LIKE 'after-%' "
        "GROUP BY device")}
    if sorted(have) != later or set(have.values()) != {1}:
        fail("rows written after the backup on the restored replica: %s" % have)

    # ---- meshctl with several URLs moves on when the first fails ----
    dead = "https://127.0.0.1:%d" % (base + 4)
    ca = os.path.join(tmp, "cas.pem")
    with open(ca, "w") as f:
        f.write(open(n1.cafile).read())
    env = dict(os.environ, MESH_URL=dead + "," + n1.url, MESH_CACERT=ca, MESH_TOKEN=n1.token)
    out = subprocess.run([MESHCTL, "domain", "list", "--format", "json"], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0 or DOMAIN not in out.stdout:
        fail("meshctl with a dead first URL: %d %s%s" % (out.returncode, out.stdout, out.stderr))

    # ---- the stream lost and made again (a hub restored from an old backup, say): both
    # replicas' positions are past its end; a write must not be answered before it is applied,
    # and both must apply the new stream from its start ----
    pw1 = open(os.path.join(mdir, "nodes", "n1", "password")).read().strip()
    c = NatsClient(base, "n1", pw1, "_INBOX_n1.test", os.path.join(mdir, "ca.pem"),
                   os.path.join(mdir, "nodes", "n1", "cert.pem"),
                   os.path.join(mdir, "nodes", "n1", "key.pem"))
    try:
        res = c.request("$JS.API.STREAM.DELETE.MESHD_DOM_" + DOMAIN, None)
    finally:
        c.close()
    if not (isinstance(res, dict) and res.get("success")):
        fail("stream delete: %s" % res)
    renewed = []
    for i in range(4):
        key = "renew-%d" % i
        for _ in range(150):
            st, doc = n1.post_rows(DOMAIN, "readings", [{"device": key, "ts": i, "temp": i}],
                                   headers={"Idempotency-Key": key})
            if st == 200:
                break
            if st != 503:
                fail("write %s after the stream was made again: %d %s" % (key, st, doc))
            time.sleep(0.2)
        else:
            fail("write %s never acknowledged after the stream was made again: %s %s" % (
                key, doc, repl(n1)))
        # acknowledged: applied on the node that answered
        if n1.scalar("SELECT count(*) FROM plant.readings WHERE device = '%s'" % key) != 1:
            fail("%s acknowledged by n1 but not applied there: %s" % (key, repl(n1)))
        renewed.append(key)
    for n in (n1, n2):
        if not wait_for(lambda: n.scalar("SELECT count(*) FROM plant.readings WHERE device "
                                         "LIKE 'renew-%'") == len(renewed), timeout=30, step=0.3):
            fail("%s did not apply the new stream: %s %s" % (
                n.url, n.rows("SELECT device FROM plant.readings WHERE device LIKE 'renew-%'"),
                repl(n)))
    if not wait_for(lambda: checksum(n1) == checksum(n2), timeout=30, step=0.3):
        fail("replicas differ after the stream was made again: %s / %s" % (checksum(n1),
                                                                            checksum(n2)))
    for n in (n1, n2):
        r = repl(n)
        if r.get("divergences", 0) < 1 or r.get("applied_seq") != r.get("stream_seq"):
            fail("%s: the divergence was not counted or not repaired: %s" % (n.url, r))
    print("stream made again: both replicas moved back and applied it (%s)" % (
        repl(n1).get("last_error"),))


if __name__ == "__main__":
    main()
    print("ok")
