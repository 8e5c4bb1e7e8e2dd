"""Snapshot bootstrap (issue 7, decision 0033): a replica behind a trimmed stream catches up.

`meshctl mesh config` writes a hub of 3 nats-servers; n1, n2 and n3 host domain `plant` (sync),
n4 hosts nothing. The stream is created by n1 with `mesh_stream_max_msgs 30`. Checked:
- writes trim the stream (the contract's record is gone too); a new replica n3 then joins:
  it cannot catch up from the stream, fetches a snapshot from n1 or n2, installs it and
  consumes the stream after it: the same rows as the others (checksum), every acknowledged
  batch exactly once, writes through n3 go on;
- n3 stopped, more writes trim the stream past it, n3 restarted and killed (-9) as soon as it
  starts the bootstrap, restarted again: it converges the same way (the interrupted attempt
  is dropped, or finished when its copy was complete);
- a residency-local domain (vault, hosts n1 and n2 on different sites) is not served to n2,
  which stays in state trimmed saying why;
- an async domain (line, batches written through n1 and n2, both origins) trims its stream;
  n3 joins while both go on writing, bootstraps and converges (checksum, every batch exactly
  once on every host, writes through n3 reach the others); n3 stopped, more writes, killed
  with -9 twice during a bootstrap of it (writes going on), restarted: it converges the same way;
- the stream purged while n3 is down (nothing left to deliver): n3 bootstraps the same way;
- refused and audited: a malformed request, a request signed by a node that does not host the
  domain (n4, with its real key), one naming another node than its reply inbox, one with a bad
  signature, a replay; n4's NATS user may neither serve the domain's snapshot subject nor ask
  for another node's next frame.
Every nats-server and meshd started here is stopped at the end, also on failure.
"""
import json
import os
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsClient, NatsServer, fail, free_base, run_in_tmp  # noqa: E402

DOMAIN = "plant"
VAULT = "vault"  # residency local; n2 is on another site than n1
LINE = "line"  # async, hosts n1, n2 and n3
ROWS = 400  # rows per batch (one stream message each)
LROWS = 20  # rows per batch of LINE


def status(node):
    st, doc = node.json("GET", "/v1/status")
    return doc if st == 200 else {}


def repl(node):
    return status(node).get("replication", {}).get(DOMAIN, {})


def checksum(node):
    return node.rows("SELECT count(*), total(temp), count(DISTINCT device) FROM plant.readings")[0]


def write(node, key):
    body = [{"device": key, "ts": j, "temp": j % 50} for j in range(ROWS)]
    for _ in range(100):
        st, doc = node.post_rows(DOMAIN, "readings", body, headers={"Idempotency-Key": key})
        if st == 200:
            return
        if st != 503:
            fail("write %s: %d %s" % (key, st, doc))
        time.sleep(0.2)
    fail("write %s: still 503" % key)


def exactly_once(node, keys):
    have = {r[0]: r[1] for r in node.rows(
        "SELECT device, count(*) FROM plant.readings GROUP BY device")}
    missing = [k for k in keys if k not in have]
    wrong = [k for k, c in have.items() if c != ROWS]
    extra = [k for k in have if k not in keys]
    if missing or wrong or extra:
        fail("%s: %d batches missing (%s), %d with a wrong row count (%s), %d unknown" % (
            node.url, len(missing), missing[:3], len(wrong), wrong[:3], len(extra)))


class RawNats(NatsClient):
    """Requests with raw bytes: the reply's payload and its reply subject."""

    def raw_request(self, subject, data, reply=None):
        self.n += 1
        reply = reply or "%s.%d" % (self.inbox, self.n)
        self.ss.sendall(("PUB %s %s %d\r\n" % (subject, reply, len(data))).encode() + data +
                        b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line.startswith("-ERR"):
                return line, None
            if line == "PONG":
                continue
            if line.startswith("MSG "):
                parts = line.split()
                size = int(parts[-1])
                payload = self.f.read(size + 2)[:size]
                if parts[1] != reply:
                    continue
                return payload, parts[3] if len(parts) == 5 else None
            if line == "PING":
                self.ss.sendall(b"PONG\r\n")

    def raw(self, cmd):
        self.ss.sendall(cmd + b"PING\r\n")
        lines = []
        while True:
            line = self._line()
            if line == "PONG":
                return "\n".join(lines)
            lines.append(line)


def frame_error(payload):
    """(status, text) of an error frame; fails on anything else."""
    if not isinstance(payload, bytes) or payload[:4] != b"MSF1" or payload[4] != 1:
        fail("not an error frame: %r" % (payload,))
    n = struct.unpack("<I", payload[5:9])[0]
    return payload[9], payload[10:9 + n].decode()


def signed_request(seed, subject, node, domain, ts=None, nonce=None):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    js = json.dumps({"v": 1, "node": node, "domain": domain,
                     "ts": ts or time.time_ns(), "nonce": nonce or os.urandom(16).hex()},
                    separators=(",", ":")).encode()
    key = Ed25519PrivateKey.from_private_bytes(seed)
    sig = key.sign(b"meshd-snap-v1\n" + subject.encode() + b"\n" + js)
    return b"MSR1" + sig + js


def main():
    run_in_tmp("meshd-boot-test-", run)


def run(tmp, nodes):
    base = free_base(3)
    mdir = os.path.join(tmp, "mesh")
    out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1",
                          "--hub", "3", "--client-port", str(base),
                          "--cluster-port", str(base + 100), "--leafnode-port", str(base + 200),
                          "--node", "n1=%s,%s,%s" % (DOMAIN, VAULT, LINE),
                          "--node", "n2=%s,%s,%s" % (DOMAIN, VAULT, LINE),
                          "--node", "n3=%s,%s" % (DOMAIN, LINE), "--node", "n4"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail("mesh config: %s%s" % (out.stdout, out.stderr))
    for name in ("hub-1", "hub-2", "hub-3"):
        NatsServer(os.path.join(mdir, name, "nats.conf"), os.path.join(tmp, name + ".log")).start()

    def start(name):
        n = Node(data_dir=os.path.join(tmp, name),
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s",
                       "--mesh-stream-max-msgs", "30",
                       "--site", "ward-b" if name == "n2" else "ward-a"])
        nodes[name] = n.start()
        return n

    def create(n):
        st, doc = n.json("GET", "/v1/domains/" + DOMAIN)
        if st != 200:
            n.create_domain(DOMAIN, hosts=["n1", "n2", "n3"], replication="sync")

    n1, n2 = start("n1"), start("n2")
    for n in (n1, n2):
        create(n)
    # the hub forms slowly on a busy machine (streams cannot be placed until it has)
    if not wait_for(lambda: n1.apply(contract(domain=DOMAIN))[0] in (200, 201), timeout=150,
                    step=0.5):
        fail("contract never applied on n1: %s\n%s" % (
            repl(n1), "\n".join(l for l in n1.log if "comp=http" not in l)[-3000:]))

    if not wait_for(lambda: n2.json("GET", "/v1/domains/" + DOMAIN)[1].get("products"),
                    timeout=30, step=0.2):
        fail("the contract did not reach n2: %s" % repl(n2))

    # ---- writes trim the stream: its first records (the contract's too) are gone ----
    keys = []
    for i in range(60):
        keys.append("a%03d" % i)
        write(n1 if i % 2 else n2, keys[-1])
    last = repl(n1).get("stream_seq", 0)
    if last < 61:
        fail("stream sequence after 61 records: %s" % repl(n1))

    def caught_up(n, want):
        r = repl(n)
        return r.get("applied_seq", -1) >= want and r.get("state") == "consuming"

    # ---- a new replica joins: it bootstraps from a snapshot ----
    n3 = start("n3")
    create(n3)
    t0 = time.time()
    if not wait_for(lambda: caught_up(n3, last), timeout=60, step=0.2):
        fail("n3 did not catch up: %s\n%s" % (repl(n3), "\n".join(n3.log[-30:])))
    took = time.time() - t0
    if not any("installed a snapshot" in line for line in n3.log):
        fail("n3 caught up without a snapshot?\n%s" % "\n".join(n3.log[-30:]))
    for n in (n1, n2, n3):
        exactly_once(n, keys)
    if not (checksum(n1) == checksum(n2) == checksum(n3)):
        fail("checksums differ: %s %s %s" % (checksum(n1), checksum(n2), checksum(n3)))
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in
               os.walk(os.path.join(n3.data_dir, "bootstrap")) for f in fs)
    print("n3 bootstrapped and caught up in %.1f s (%d rows; %d bytes under bootstrap/)" % (
        took, checksum(n3)[0], size))
    # writes through the bootstrapped replica
    for i in range(5):
        keys.append("b%03d" % i)
        write(n3, keys[-1])
    last = repl(n3).get("stream_seq", 0)
    for n in (n1, n2):
        if not wait_for(lambda: caught_up(n, last), timeout=30, step=0.2):
            fail("%s behind after writes on n3: %s" % (n.url, repl(n)))
    for n in (n1, n2, n3):
        exactly_once(n, keys)

    # ---- kill -9 during a bootstrap (at several points), then a restart converges ----
    seen = set()
    for k, delay in enumerate((0, 0.02, 0.1, 0.3)):
        if n3.proc and n3.proc.poll() is None:
            n3.stop()
        for i in range(35):
            keys.append("c%d%03d" % (k, i))
            write(n1, keys[-1])
        n3 = start("n3")
        if not wait_for(lambda: any("asking another host for a snapshot" in line
                                    for line in n3.log), timeout=30, step=0.002):
            fail("n3 did not start a bootstrap:\n%s" % "\n".join(n3.log[-30:]))
        time.sleep(delay)
        n3.kill()
        left = sorted(os.listdir(os.path.join(n3.data_dir, "bootstrap")))
        seen.update(d.split(".")[1] for d in left if "." in d)
        print("killed n3 %.2f s into its bootstrap; it left %s" % (delay, left))
    n3 = start("n3")
    last = repl(n1).get("stream_seq", 0)
    if not wait_for(lambda: caught_up(n3, last), timeout=60, step=0.2):
        fail("n3 did not converge after the kills: %s\n%s" % (repl(n3), "\n".join(n3.log[-30:])))
    for n in (n1, n2, n3):
        exactly_once(n, keys)
    if not (checksum(n1) == checksum(n2) == checksum(n3)):
        fail("checksums differ after the kills: %s %s %s" % (checksum(n1), checksum(n2),
                                                             checksum(n3)))
    # a clean restart moves the copy installed live into domains/ and keeps every row
    n3.stop()
    n3 = start("n3")
    bdir = os.path.join(n3.data_dir, "bootstrap")
    if not os.path.isdir(os.path.join(n3.data_dir, "domains", DOMAIN)) or \
            [d for d in os.listdir(bdir) if d.startswith(DOMAIN + ".")]:
        fail("after a restart: domains/%s missing or copies left in %s" % (
            DOMAIN, os.listdir(bdir)))
    if not wait_for(lambda: caught_up(n3, last), timeout=30, step=0.2):
        fail("n3 after a clean restart: %s" % repl(n3))
    exactly_once(n3, keys)
    if checksum(n3) != checksum(n1):
        fail("n3 differs after a clean restart: %s %s" % (checksum(n3), checksum(n1)))
    print("kill points left: %s" % sorted(seen))

    # ---- a purged stream (nothing left to deliver, first sequence past n3's position) ----
    n3.stop()
    for i in range(5):
        keys.append("p%03d" % i)
        write(n1, keys[-1])
    pw1 = open(os.path.join(mdir, "nodes", "n1", "password")).read().strip()
    c1 = RawNats(base, "n1", pw1, "_INBOX_n1", os.path.join(mdir, "ca.pem"),
                 os.path.join(mdir, "nodes", "n1", "cert.pem"),
                 os.path.join(mdir, "nodes", "n1", "key.pem"))
    try:
        payload, _ = c1.raw_request("$JS.API.STREAM.PURGE.MESHD_DOM_" + DOMAIN, b"")
        if not isinstance(payload, bytes) or b'"success":true' not in payload:
            fail("purge: %r" % (payload,))
    finally:
        c1.close()
    n3 = start("n3")
    last = repl(n1).get("stream_seq", 0)
    if not wait_for(lambda: caught_up(n3, last) and checksum(n3) == checksum(n1), timeout=60,
                    step=0.2):
        fail("n3 after a purge: %s\n%s" % (repl(n3), "\n".join(n3.log[-30:])))
    exactly_once(n3, keys)
    if repl(n3).get("bootstraps", 0) < 1:
        fail("n3 caught up after a purge without a snapshot: %s" % repl(n3))

    # ---- refusals ----
    n4 = start("n4")
    subject = "meshd.dom.%s.req.snap" % DOMAIN
    seed = open(os.path.join(n4.data_dir, "node_sign.key"), "rb").read()
    if len(seed) != 32:
        fail("node_sign.key is not a 32-byte seed")
    wait_for(lambda: False, timeout=2)  # n4's registry entry (its key) is written
    pw = open(os.path.join(mdir, "nodes", "n4", "password")).read().strip()
    c = RawNats(base, "n4", pw, "_INBOX_n4", os.path.join(mdir, "ca.pem"),
                os.path.join(mdir, "nodes", "n4", "cert.pem"),
                os.path.join(mdir, "nodes", "n4", "key.pem"))
    try:
        cases = [
            ("malformed", b"MSR1" + b"\0" * 64 + b"{not json", "malformed request"),
            ("not a host", signed_request(seed, subject, "n4", DOMAIN), "is not a host"),
            ("another node's name", signed_request(seed, subject, "n3", DOMAIN),
             "not the inbox of the node"),
            ("bad signature", signed_request(os.urandom(32), subject, "n4", DOMAIN),
             "signature does not verify"),
            ("stale", signed_request(seed, subject, "n4", DOMAIN,
                                     ts=time.time_ns() - 120 * 10**9), "stale request"),
            ("another domain", signed_request(seed, subject, "n4", "other"),
             "names another domain"),
        ]
        for what, data, want in cases:
            payload, _ = c.raw_request(subject, data)
            code, text = frame_error(payload)
            if want not in text:
                fail("%s: refused with %r, expected %r" % (what, text, want))
        # the same signed request twice: the second is refused whichever host gets it
        req = signed_request(seed, subject, "n4", DOMAIN)
        c.raw_request(subject, req)
        frame_error(c.raw_request(subject, req)[0])
        # n4 may not serve the domain's snapshots, nor ask for frames of another node's session
        for cmd in (b"SUB meshd.dom.plant.req.snap 9\r\n",
                    b"PUB _INBOX_n1.snap.00000000000000000000000000000000.0 4\r\nnext\r\n"):
            reply = c.raw(cmd)
            if "Permissions Violation" not in reply:
                fail("n4 was not refused %r: %s" % (cmd, reply))
    finally:
        c.close()
    # refusals are audited (auth.fail, source node:n4) on the hosts that answered
    audited = 0
    for n in (n1, n2, n3):
        audited += n.scalar("SELECT count(*) FROM system.audit WHERE action = 'auth.fail' AND "
                            "source = 'node:n4' AND details LIKE '%snapshot%'")
    if audited < len(cases):
        fail("refusals audited: %d of at least %d" % (audited, len(cases)))
    print("%d refusals audited" % audited)

    # ---- a residency-local domain is never shipped to a node of another site ----
    st, doc = n1.json("POST", "/v1/domains", {"name": VAULT, "hosts": ["n1", "n2"],
                                              "replication": "sync", "residency": "local"})
    if st != 201:
        fail("create %s: %d %s" % (VAULT, st, doc))
    if not wait_for(lambda: n1.apply(contract(domain=VAULT))[0] in (200, 201), timeout=60,
                    step=0.5):
        fail("contract never applied on %s" % VAULT)
    for i in range(35):
        st, doc = n1.post_rows(VAULT, "readings", [{"device": "v%03d" % i, "ts": 1, "temp": 1}])
        if st != 200:
            fail("write to %s: %d %s" % (VAULT, st, doc))
    st, doc = n2.json("POST", "/v1/domains", {"name": VAULT, "hosts": ["n1", "n2"],
                                              "replication": "sync", "residency": "local"})
    if st != 201:
        fail("create %s on n2: %d %s" % (VAULT, st, doc))

    def refused():
        r = status(n2).get("replication", {}).get(VAULT, {})
        return r.get("state") == "trimmed" and "residency local" in r.get("last_error", "")
    if not wait_for(refused, timeout=30, step=0.3):
        fail("n2 got %s or was not refused for residency: %s" % (
            VAULT, status(n2).get("replication", {}).get(VAULT)))
    if n2.json("GET", "/v1/domains/" + VAULT)[1].get("products"):
        fail("n2 holds %s's products" % VAULT)

    # ---- an async domain bootstraps too: the copy carries every origin's chain position ----
    # n1 and n2 are both origins, so whichever serves the copy, it holds its own batches (some
    # still unpublished when the copy is taken, published after its stream sequence) and the
    # other's up to its chain position
    line_keys = []

    def lrepl(n):
        return status(n).get("replication", {}).get(LINE, {})

    def lwrite(n, key):
        body = [{"device": key, "ts": j, "temp": j % 7} for j in range(LROWS)]
        for _ in range(100):
            st, doc = n.post_rows(LINE, "readings", body)
            if st == 200:
                line_keys.append(key)
                return
            if st != 503:
                fail("write %s to %s: %d %s" % (key, LINE, st, doc))
            time.sleep(0.2)
        fail("write %s to %s: still 503" % (key, LINE))

    def lsum(n):
        st, doc = n.json("POST", "/v1/query", {"sql": "SELECT count(*), total(temp), "
                                               "count(DISTINCT device) FROM %s.readings" % LINE})
        return doc["rows"][0] if st == 200 else None  # 400: no table before the copy is in

    def lonce(n):
        have = {r[0]: r[1] for r in n.rows("SELECT device, count(*) FROM %s.readings "
                                           "GROUP BY device" % LINE)}
        bad = [k for k in line_keys if have.get(k) != LROWS]
        extra = [k for k in have if k not in line_keys]
        if bad or extra:
            fail("%s on %s: %d batches missing or not exactly once (%s), %d unknown" % (
                LINE, n.url, len(bad), [(k, have.get(k)) for k in bad[:3]], len(extra)))

    def lconverged(ns):
        if any(lrepl(n).get("outbox_pending") != 0 for n in ns):
            return False
        sums = [lsum(n) for n in ns]
        return sums[0] is not None and sums[0][0] == LROWS * len(line_keys) and \
            all(x == sums[0] for x in sums)

    for n in (n1, n2):
        st, doc = n.json("POST", "/v1/domains", {"name": LINE, "hosts": ["n1", "n2", "n3"],
                                                 "replication": "async"})
        if st != 201:
            fail("create %s on %s: %d %s" % (LINE, n.url, st, doc))
        if n is n1 and not wait_for(lambda: n1.apply(contract(domain=LINE))[0] in (200, 201),
                                    timeout=60, step=0.5):
            fail("contract never applied on %s" % LINE)
    if not wait_for(lambda: n2.json("GET", "/v1/domains/" + LINE)[1].get("products"),
                    timeout=30, step=0.2):
        fail("the contract of %s did not reach n2: %s" % (LINE, lrepl(n2)))
    for i in range(40):
        lwrite(n1 if i % 2 else n2, "l%03d" % i)
    if not wait_for(lambda: lconverged([n1, n2]), timeout=60, step=0.3):
        fail("%s: n1 and n2 do not converge: %s %s" % (LINE, lrepl(n1), lrepl(n2)))
    st, doc = n3.json("POST", "/v1/domains", {"name": LINE, "hosts": ["n1", "n2", "n3"],
                                              "replication": "async"})
    if st != 201:
        fail("create %s on n3: %d %s" % (LINE, st, doc))
    # writes through both origins while n3 bootstraps (their outboxes behind when a copy is
    # taken: its origin's own batches reach the stream after the copy's sequence)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() or i < 30:
            lwrite(n1 if i % 2 else n2, "m%03d" % i)
            i += 1
            # paced: unpaced under ASan the origins wrote ~7800 batches while their own
            # consumers lagged, so every copy was older than the trimmed stream's start
            time.sleep(0.02)
    t = threading.Thread(target=writer)
    t.start()
    try:
        booted = wait_for(lambda: lrepl(n3).get("bootstraps", 0) >= 1, timeout=60, step=0.1)
    finally:
        stop.set()
        t.join()
    if not booted:
        fail("n3 did not bootstrap %s: %s\n%s" % (LINE, lrepl(n3), "\n".join(n3.log[-30:])))
    if not wait_for(lambda: lconverged([n1, n2, n3]), timeout=90, step=0.3):
        fail("n3 on %s did not converge: %s\n%s" % (LINE, lrepl(n3), "\n".join(n3.log[-30:])))
    if lrepl(n3).get("bootstraps", 0) < 1:
        fail("n3 caught up on %s without a snapshot: %s" % (LINE, lrepl(n3)))
    for n in (n1, n2, n3):
        lonce(n)
    # writes through the bootstrapped replica: a new origin for the others
    for i in range(5):
        lwrite(n3, "n%03d" % i)
    if not wait_for(lambda: lconverged([n1, n2, n3]), timeout=60, step=0.3):
        fail("%s after writes on n3: %s %s %s" % (LINE, lrepl(n1), lrepl(n2), lrepl(n3)))
    for n in (n1, n2, n3):
        lonce(n)
    print("%s (async): n3 bootstrapped, %d batches exactly once on every host" % (
        LINE, len(line_keys)))

    # kill -9 during an async bootstrap, with writes through both origins on
    for k, delay in enumerate((0.05, 0.3)):
        if n3.proc and n3.proc.poll() is None:
            n3.stop()
        # more than the stream keeps (30 messages) past n3's position: async batches travel
        # in groups (decision 0040), so the writes go on until 35 messages were published
        def published():
            return sum(lrepl(n).get("published", 0) for n in (n1, n2))
        p0, i = published(), 0
        while published() - p0 < 35:
            if i == 1000:
                fail("35 messages never published for %d batches: %s %s" % (
                    i, lrepl(n1), lrepl(n2)))
            lwrite(n1 if i % 2 else n2, "k%d%03d" % (k, i))
            i += 1
        n3 = start("n3")
        if not wait_for(lambda: any("domain %s: the stream starts at" % LINE in line
                                    for line in n3.log), timeout=60, step=0.002):
            fail("n3 did not start a bootstrap of %s:\n%s" % (LINE, "\n".join(n3.log[-30:])))
        for i in range(4):
            lwrite(n1 if i % 2 else n2, "q%d%03d" % (k, i))
        time.sleep(delay)
        n3.kill()
        print("killed n3 %.2f s into its bootstrap of %s" % (delay, LINE))
    n3 = start("n3")
    if not wait_for(lambda: lconverged([n1, n2, n3]), timeout=90, step=0.3):
        fail("n3 on %s after the kills: %s\n%s" % (LINE, lrepl(n3), "\n".join(n3.log[-30:])))
    for n in (n1, n2, n3):
        lonce(n)
    print("bootstrap ok")


if __name__ == "__main__":
    main()
    print("ok")
