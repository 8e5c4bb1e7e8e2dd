"""Async domain replication and the replication-lag health alert, on loopback.

`meshctl mesh config` writes a hub of one nats-server; nodes n1 and n2 host domain `field`
with replication async (acknowledged after the local durable apply, published from the log).
n1 watches its health with a replication-lag threshold of 2 s. Checked:
- the contract goes through the stream (sync) and reaches n2;
- n2 killed -9: async writes on n1 go on; n1's replication-lag alert fires for replica n2;
  n2 restarted catches up and the alert resolves;
- writes on both nodes (each node's own records come back through its consumer and are not
  applied twice), then n1 killed -9 right after a run of acknowledged writes, before it could
  publish them all; restarted, it publishes the rest from its log;
- n1 killed -9 three times while two writers write to n1 and n2 without Idempotency-Keys into
  a product without a primary key (so a batch applied twice shows): n1 skips its own records
  coming back without storing their position at once (decision 0035), so each kill loses
  those notes and n1 gets the records again; afterwards every acknowledged batch is on both
  replicas exactly once, and no batch whose answer was lost more than once;
- the nats-server stopped: async writes on n1 go on (pending in the outbox), n1 killed -9,
  the server and n1 started again: n1 publishes them from its log, in groups of batches
  (fewer stream messages than batches, decision 0040);
- afterwards every acknowledged batch is on both replicas exactly once and their checksums
  match; `meshctl domain update` switches n1 to sync (and refuses to replicate a domain that
  has contracts already, and n2 leaving async while a batch is unpublished); the registry shows the domain's mode and hosts; both nodes stop cleanly.
Every process started here is stopped at the end, also on failure.
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, fail, one_hub_config, run_in_tmp  # noqa: E402

DOMAIN = "field"
ROWS = 20  # rows per batch
EV_ROWS = 10  # rows per batch of the writers during the kills
EVENTS = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:field:events
version: 1.0.0
status: active
domain: field
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
"""


class Writer(threading.Thread):
    """Writes numbered batches of events through the node in node_ref[0], without an
    Idempotency-Key: a batch whose answer was lost (the node killed) is not sent again, so it
    may be there once or not at all; an acknowledged one must be there exactly once."""

    def __init__(self, name, node_ref):
        super().__init__(daemon=True)
        self.name_ = name
        self.node_ref = node_ref
        self.acked, self.unknown = set(), set()
        self.batch = 0
        self.stop = False
        self.errors = []

    def run(self):
        while not self.stop:
            b = self.batch
            body = "\n".join('{"writer":"%s","batch":%d,"i":%d}' % (self.name_, b, i)
                             for i in range(EV_ROWS))
            try:
                st, doc = self.node_ref[0].post_rows(DOMAIN, "events", body,
                                                     "application/x-ndjson")
            except Exception:
                st, doc = 0, None
            self.batch += 1
            if st == 200 and doc.get("accepted") == EV_ROWS:
                self.acked.add(b)
                continue
            self.unknown.add(b)
            if 0 < st < 500:
                self.errors.append((b, st, doc))
            time.sleep(0.05)  # the node is down or starting


def events(node):
    return {(r[0], r[1]): r[2] for r in node.rows(
        "SELECT writer, batch, count(*) FROM field.events GROUP BY writer, batch")}


def repl(node):
    st, doc = node.json("GET", "/v1/status")
    return doc.get("replication", {}).get(DOMAIN, {}) if st == 200 else {}


def checksum(node):
    return node.rows("SELECT count(*), total(temp), group_concat(device || ':' || ts, ',') FROM "
                     "(SELECT device, ts, temp FROM field.readings ORDER BY device, ts)")[0]


def lag_alerts(node, state):
    st, doc = node.json("GET", "/v1/alerts?state=%s&domain=health&rule=replication-lag" % state)
    if st != 200:
        return []
    return doc["alerts"] if isinstance(doc, dict) else doc


def main():
    run_in_tmp("meshd-repl-async-", run)


def run(tmp, nodes):
    mdir = one_hub_config(tmp, ["n1=" + DOMAIN, "n2=" + DOMAIN])
    hub = NatsServer(os.path.join(mdir, "hub-1", "nats.conf"),
                     os.path.join(tmp, "hub.log")).start()
    health = ["--health-domain", "health", "--health-interval", "1s",
              "--health-replication-lag", "2s", "--health-disk-low", "0",
              "--rules-tick", "200ms"]

    def start(name):
        n = Node(data_dir=os.path.join(tmp, name), keep_dir=True,
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s"] +
                 (health if name == "n1" else []))
        nodes[name] = n.start()
        return n
    n1, n2 = start("n1"), start("n2")
    for n in (n1, n2):
        st, doc = n.json("POST", "/v1/domains", {"name": DOMAIN, "hosts": ["n1", "n2"],
                                                 "replication": "async"})
        if st != 201:
            fail("create %s async: %d %s" % (DOMAIN, st, doc))
    if not wait_for(lambda: n1.apply(contract(domain=DOMAIN))[0] in (200, 201), timeout=60,
                    step=0.5):
        fail("contract never applied on n1:\n%s" % "\n".join(n1.log[-20:]))

    def has_product(n):
        st, doc = n.json("GET", "/v1/domains/" + DOMAIN)
        return st == 200 and any(p["name"] == "readings" for p in doc["products"])
    if not wait_for(lambda: has_product(n2), timeout=20, step=0.2):
        fail("the contract did not reach n2: %s" % repl(n2))
    if not wait_for(lambda: n1.apply(EVENTS)[0] in (200, 201), timeout=30, step=0.5):
        fail("the events contract never applied on n1:\n%s" % "\n".join(n1.log[-20:]))

    acked = []

    def write(node, key):
        body = [{"device": key, "ts": t, "temp": t % 50} for t in range(ROWS)]
        st, doc = node.post_rows(DOMAIN, "readings", body, headers={"Idempotency-Key": key})
        if st != 200 or doc.get("accepted") != ROWS:
            fail("async write %s: %d %s" % (key, st, doc))
        if "position" in doc:
            fail("an async write answers no stream position: %s" % doc)
        acked.append(key)

    for i in range(10):
        write(n1, "a%03d" % i)
    if not wait_for(lambda: n2.scalar("SELECT count(*) FROM field.readings") == 10 * ROWS,
                    timeout=20, step=0.2):
        fail("async writes did not reach n2: %s %s" % (repl(n1), repl(n2)))
    # the outbox packs a batch's record with zstd (decision 0037): n2 applies exactly the rows
    # written, and the stream holds far fewer bytes than the record
    r0 = repl(n1)
    keys = ["bulk%03d" % k for k in range(1000 // ROWS)]  # ROWS rows each, as every batch
    bulk = [{"device": k, "ts": t, "temp": t % 50} for k in keys for t in range(ROWS)]
    st, doc = n1.post_rows(DOMAIN, "readings", bulk)
    if st != 200 or doc.get("accepted") != 1000:
        fail("bulk async write: %d %s" % (st, doc))
    acked.extend(keys)
    if not wait_for(lambda: n2.scalar("SELECT count(*) FROM field.readings") == 10 * ROWS + 1000,
                    timeout=20, step=0.2):
        fail("the bulk write did not reach n2: %s %s" % (repl(n1), repl(n2)))
    if checksum(n1) != checksum(n2):
        fail("n2's rows differ from n1's after the async writes")
    r1 = repl(n1)
    rec = r1["published_record_bytes"] - r0["published_record_bytes"]
    wire = r1["published_bytes"] - r0["published_bytes"]
    if not (rec > 10000 and 0 < wire < rec / 3):
        fail("the outbox did not pack the bulk record (%d bytes, %d in the stream): %s"
             % (rec, wire, r1))

    # ---- n2 killed: writes on n1 go on, n1's lag alert fires for n2, then resolves ----
    nodes["n2"].kill()
    i = 0

    def write_more():
        nonlocal i
        write(n1, "b%04d" % i)
        i += 1
        return bool(lag_alerts(n1, "firing"))
    if not wait_for(write_more, timeout=40, step=0.1):
        fail("replication-lag never fired on n1: %s" % repl(n1))
    fired = lag_alerts(n1, "firing")
    if fired[0].get("series") not in ({"domain": DOMAIN, "replica": "n2"}, None) and \
            "n2" not in json.dumps(fired[0]):
        fail("the lag alert is not about n2: %s" % fired)
    n2 = start("n2")
    if not wait_for(lambda: not lag_alerts(n1, "firing"), timeout=40, step=0.5):
        fail("replication-lag did not resolve: %s %s" % (lag_alerts(n1, "firing"), repl(n1)))

    # ---- writes on both nodes; then n1 killed -9 right after acks, restarted ----
    for k in range(10):
        write(n2, "c%03d" % k)
        write(n1, "d%03d" % k)
    for k in range(30):
        write(n1, "e%03d" % k)
    nodes["n1"].kill()
    n1 = start("n1")
    for k in range(5):
        write(n1, "f%03d" % k)

    # ---- n1 killed -9 three times during writes through n1 and n2 ----
    ref1, ref2 = [n1], [n2]
    writers = [Writer("w1", ref1), Writer("w2", ref2)]
    for w in writers:
        w.start()
    for _ in range(3):
        # not a timing assertion: lets n1 acknowledge, publish and get back some batches
        time.sleep(1.5)
        nodes["n1"].kill()
        n1 = start("n1")
        ref1[0] = n1
    time.sleep(1.0)
    for w in writers:
        w.stop = True
    for w in writers:
        w.join(60)
    for w in writers:
        if w.errors or not w.acked:
            fail("writer %s: %d acknowledged, refused: %s" % (w.name_, len(w.acked),
                                                             w.errors[:3]))

    def events_converged():
        return events(n1) == events(n2) and all(
            (w.name_, b) in events(n1) for w in writers for b in w.acked)
    if not wait_for(events_converged, timeout=60, step=0.5):
        fail("events did not converge: %s / %s" % (repl(n1), repl(n2)))
    for n in (n1, n2):
        have = events(n)
        for w in writers:
            lost = [b for b in w.acked if have.get((w.name_, b)) != EV_ROWS]
            if lost:
                fail("%s: acknowledged batches of %s not there exactly once: %s" % (
                    n.url, w.name_, [(b, have.get((w.name_, b))) for b in lost[:5]]))
        extra = [(k, c) for k, c in have.items() if c != EV_ROWS or k[1] not in
                 (dict((w.name_, w.acked | w.unknown) for w in writers).get(k[0], set()))]
        if extra:
            fail("%s: batches applied twice or never sent: %s" % (n.url, extra[:5]))
    print("kills during writes: %s acknowledged, %s answers lost" % (
        [len(w.acked) for w in writers], [len(w.unknown) for w in writers]))

    # ---- the link down: async writes go on; n1 killed -9 before it could publish them ----
    hub.stop()
    for k in range(10):
        write(n1, "g%03d" % k)
    if repl(n1).get("outbox_pending", 0) <= 0:
        fail("writes with the link down should be pending in the outbox: %s" % repl(n1))
    nodes["n1"].kill()
    hub.start()
    n1 = start("n1")  # publishes them from its log

    def converged():
        return checksum(n1) == checksum(n2) and checksum(n1)[0] == len(acked) * ROWS
    if not wait_for(converged, timeout=40, step=0.3):
        fail("replicas did not converge: %s %s / %s %s" % (repl(n1), checksum(n1)[0], repl(n2),
                                                           checksum(n2)[0]))
    for n in (n1, n2):
        have = {r[0]: r[1] for r in n.rows(
            "SELECT device, count(*) FROM field.readings GROUP BY device")}
        missing = [k for k in acked if k not in have]
        wrong = [k for k, c in have.items() if c != ROWS]
        if missing or wrong or len(have) != len(acked):
            fail("%s: %d acknowledged batches missing (%s), %d not exactly once (%s)" % (
                n.url, len(missing), missing[:5], len(wrong), wrong[:5]))
    r1 = repl(n1)
    if r1.get("mode") != "async" or r1.get("outbox_pending", -1) != 0:
        fail("status of an async domain: %s" % r1)
    # the restarted n1 found its 10 batches pending: they went out in groups (decision 0040),
    # fewer stream messages than batches, and n2 applied each exactly once (above)
    if not (r1.get("published_batches", 0) >= 10 and
            r1.get("published", 0) < r1.get("published_batches", 0)):
        fail("the pending batches should have been published in groups: %s" % r1)
    st, doc = n1.json("GET", "/v1/mesh/domains")
    mine = [d for d in doc.get("domains", []) if d["name"] == DOMAIN] if st == 200 else []
    if not mine or any(d.get("replication") != "async" or sorted(d.get("hosts", [])) !=
                       ["n1", "n2"] for d in mine):
        fail("the registry should show %s async on n1, n2: %d %s" % (DOMAIN, st, doc))
    # ---- meshctl domain update: n1 goes sync (its outbox is empty); refusals ----
    env = dict(os.environ, MESH_TOKEN=n1.token)
    base_cmd = [MESHCTL, "--url", n1.url, "--cacert", n1.cafile, "domain", "update"]
    out = subprocess.run(base_cmd + [DOMAIN, "--replication", "sync"], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        fail("meshctl domain update: %d %s%s" % (out.returncode, out.stdout, out.stderr))
    if not wait_for(lambda: repl(n1).get("mode") == "sync", timeout=10, step=0.2):
        fail("n1 did not switch to sync: %s" % repl(n1))

    def sync_write():
        st, doc = n1.post_rows(DOMAIN, "readings", [{"device": "s1", "ts": 1, "temp": 1}],
                               headers={"Idempotency-Key": "s1"})
        return st == 200 and "position" in doc
    if not wait_for(sync_write, timeout=20, step=0.3):
        fail("a write on n1 after the switch to sync: %s" % (repl(n1),))
    n1.create_domain("plain")
    n1.apply(contract(domain="plain"), expect=201)
    out = subprocess.run(base_cmd + ["plain", "--hosts", "n1,n2", "--replication", "async"],
                         capture_output=True, text=True, env=env)
    if out.returncode != 5:
        fail("a domain with contracts must not become replicated: %d %s%s" % (
            out.returncode, out.stdout, out.stderr))
    st, doc = n1.json("PUT", "/v1/domains/" + DOMAIN, {"replication": "later"})
    if st != 400:
        fail("an unknown mode: %d %s" % (st, doc))
    # n2 (still async) may not leave async while its outbox holds batches: link down, write
    hub.stop()
    write(n2, "h000")
    st, doc = n2.json("PUT", "/v1/domains/" + DOMAIN, {"replication": "sync"})
    if st != 409:
        fail("leaving async with batches unpublished must be refused: %d %s" % (st, doc))
    hub.start()
    if not wait_for(lambda: repl(n2).get("outbox_pending", 1) == 0, timeout=30, step=0.3):
        fail("n2's outbox did not drain: %s" % repl(n2))
    st, doc = n2.json("PUT", "/v1/domains/" + DOMAIN, {"replication": "sync"})
    if st != 200 or doc.get("replication") != "sync":
        fail("n2 to sync once its outbox is empty: %d %s" % (st, doc))
    if not wait_for(lambda: n1.scalar("SELECT count(*) FROM field.readings WHERE device = "
                                      "'h000'") == ROWS, timeout=20, step=0.2):
        fail("n2's last async batch did not reach n1")
    # a clean stop of both (the outbox pump and the consumer end; a sanitizer report fails)
    for name in ("n1", "n2"):
        n = nodes[name]
        rc = n.stop()
        bad = [line for line in n.log if "Sanitizer" in line or "runtime error" in line]
        if rc != 0 or bad:
            fail("%s stopped with %s: %s" % (name, rc, "\n".join((bad or n.log)[-30:])))
    print("async: %d batches acknowledged, exactly once on both replicas" % len(acked))


if __name__ == "__main__":
    main()
    print("ok")
