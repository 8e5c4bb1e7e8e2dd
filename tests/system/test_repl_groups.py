"""Async batches in groups (decision 0040) against a hub whose max payload is small, on loopback.

`meshctl mesh config` writes a hub of one nats-server, to which this test adds
`max_payload: 32768`; nodes n1 and n2 host domain `field` with replication async. Checked:
- with the hub stopped, 24 batches written on n1 wait in its outbox; each alone fits the hub's
  max payload, together they do not: when the hub is back, n1's group is refused as too large
  and the batches go out alone (n1 says so in its log); n2 then holds every batch exactly once;
- under a steady load with the hub up, n1 publishes fewer messages than batches (groups), and
  n2 again holds every batch exactly once;
- a batch larger than the max payload even packed is refused (413) while n1 knows the max
  payload; written while n1 does not know it yet (restarted with the hub down), after three
  small ones, it is taken: the three reach n2 and are not published again, the large one
  stays in n1's outbox (pending, a warning in the log); nothing applied twice.
Every process started here is stopped at the end, also on failure.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node, contract, wait_for  # noqa: E402
from test_mesh import NatsServer, fail, one_hub_config, run_in_tmp  # noqa: E402

DOMAIN = "field"
ROWS = 40  # rows per batch
MAX_PAYLOAD = 32768


def repl(node):
    st, doc = node.json("GET", "/v1/status")
    return doc.get("replication", {}).get(DOMAIN, {}) if st == 200 else {}


def per_device(node):
    """Rows per batch key (a device is the batch's key, '/', random hex)."""
    return {r[0]: r[1] for r in node.rows(
        "SELECT substr(device, 1, instr(device, '/') - 1) AS k, count(*) FROM field.readings "
        "GROUP BY k")}


def batch(key, rows=ROWS, noise=120):
    """rows rows of batch key, each its own device with noise random bytes in hex: zstd
    cannot shrink a batch to much less than half."""
    return [{"device": "%s/%s" % (key, os.urandom(noise).hex()), "ts": t, "temp": t % 50,
             "status": "ok"} for t in range(rows)]


def main():
    run_in_tmp("meshd-repl-groups-", run)


def run(tmp, nodes):
    mdir = one_hub_config(tmp, ["n1=" + DOMAIN, "n2=" + DOMAIN])
    conf = os.path.join(mdir, "hub-1", "nats.conf")
    with open(conf, "a") as f:
        f.write("\nmax_payload: %d\n" % MAX_PAYLOAD)
    hub = NatsServer(conf, os.path.join(tmp, "hub.log")).start()

    def start(name):
        n = Node(data_dir=os.path.join(tmp, name), keep_dir=True,
                 args=["--config", os.path.join(mdir, "nodes", name, "meshd.conf"),
                       "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s"])
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
        fail("contract never applied on n1:\n%s" % "\n".join((n1.log + n1.stdout)[-20:]))

    def has_product(n):
        st, doc = n.json("GET", "/v1/domains/" + DOMAIN)
        return st == 200 and any(p["name"] == "readings" for p in doc["products"])
    if not wait_for(lambda: has_product(n2), timeout=20, step=0.2):
        fail("the contract did not reach n2: %s" % repl(n2))

    acked = []

    def write(key, rows=ROWS):
        st, doc = n1.post_rows(DOMAIN, "readings", batch(key, rows, 120 if rows == ROWS else 8))
        if st != 200 or doc.get("accepted") != rows:
            fail("async write %s: %d %s" % (key, st, doc))
        acked.append(key)

    def exactly_once(rows_of):
        have = per_device(n2)
        return all(have.get(k) == rows_of(k) for k in acked) and len(have) == len(acked)

    # ---- 24 batches pending while the hub is down: too large together, sent alone ----
    hub.stop()
    for k in range(24):
        write("%03d" % k)
    if repl(n1).get("outbox_pending", 0) <= 0:
        fail("writes with the hub down should be pending: %s" % repl(n1))
    r0 = repl(n1)
    hub.start()
    if not wait_for(lambda: exactly_once(lambda k: ROWS), timeout=40, step=0.3):
        fail("n2 does not hold the 24 batches exactly once: %s / %s" % (repl(n1), repl(n2)))
    r1 = repl(n1)
    alone = [line for line in n1.log + n1.stdout
             if "larger than the mesh servers' max payload" in line]
    if not alone:
        fail("n1 should say its group was too large and its batches went alone (%s):\n%s" % (r1,
             "\n".join(l for l in n1.log + n1.stdout if "mesh" in l)[-3000:]))
    sent = r1["published"] - r0.get("published", 0)
    carried = r1["published_batches"] - r0.get("published_batches", 0)
    if carried != 24 or sent != 24:
        fail("the 24 batches should have gone alone: %d messages for %d batches (%s)"
             % (sent, carried, r1))

    # ---- a steady load with the hub up: groups, every batch once ----
    r0 = repl(n1)
    for k in range(60):
        write("s%03d" % k, 5)
    if not wait_for(lambda: exactly_once(lambda k: 5 if k.startswith("s") else ROWS),
                    timeout=40, step=0.3):
        fail("n2 does not hold the steady batches exactly once: %s / %s" % (repl(n1), repl(n2)))
    r1 = repl(n1)
    sent = r1["published"] - r0["published"]
    carried = r1["published_batches"] - r0["published_batches"]
    if carried != 60 or sent > carried:
        fail("60 batches published as %d messages carrying %d (%s)" % (sent, carried, r1))
    print("steady load: 60 batches in %d messages" % sent)

    # ---- a batch too large even alone, the servers' max payload known: refused (413) ----
    st, doc = n1.post_rows(DOMAIN, "readings", batch("big", 2, MAX_PAYLOAD))
    if st != 413 or "max payload" not in doc.get("error", {}).get("message", ""):
        fail("a batch that could never be published should be refused: %d %s" % (st, doc))

    # ---- the same while n1 does not know the max payload (restarted, the hub down): taken;
    # the three before it go, it stays pending, and the three are not published again ----
    hub.stop()
    nodes["n1"].kill()
    n1 = start("n1")
    for k in range(3):
        write("t%03d" % k, 5)
    st, doc = n1.post_rows(DOMAIN, "readings", batch("big", 2, MAX_PAYLOAD))
    if st != 200:
        fail("the large async write with the max payload unknown: %d %s" % (st, doc))
    hub.start()

    def three_there():
        have = per_device(n2)
        return all(have.get("t%03d" % k) == 5 for k in range(3))
    if not wait_for(three_there, timeout=40, step=0.3):
        fail("the three batches before the large one did not reach n2: %s / %s"
             % (repl(n1), repl(n2)))
    if not wait_for(lambda: any("exceeds the mesh servers' max payload" in line
                                for line in n1.log + n1.stdout), timeout=20, step=0.3):
        fail("n1 should warn that the large batch cannot be published:\n%s"
             % "\n".join((n1.log + n1.stdout)[-20:]))
    if repl(n1).get("outbox_pending", 0) <= 0:
        fail("the large batch should stay pending in n1's outbox: %s" % repl(n1))
    # the outbox moved past the three acknowledged: its retries (every second) do not publish
    # them again (the stream's last sequence stays)
    seq0 = repl(n1)["stream_seq"]
    time.sleep(3.5)  # not a timing assertion: three retries of the outbox
    if repl(n1)["stream_seq"] != seq0:
        fail("n1 publishes the batches before the large one again: %d -> %s"
             % (seq0, repl(n1)))
    have = per_device(n2)
    if "big" in have or any(have.get(k) != (5 if k[0] in "st" else ROWS)
                                                      for k in acked):
        fail("n2's rows after the large batch: %s" % sorted(have.items())[:5])
    print("ok")


if __name__ == "__main__":
    main()
