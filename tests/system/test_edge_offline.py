"""The mesh, part 5 (edge offline), on loopback.

`meshctl mesh config` writes a hub of 3 nats-servers and one edge leaf (JetStream domain
leaf-1); edge node e1 on the leaf hosts domain `edge` (sync, stream MESHD_DOM_edge in the
leaf's JetStream, R1) and domain `vault` (sync, residency local: --local-domain). Checked:
- e1 has the hub source its stream into MESHD_COPY_edge (R3, JetStream domain hub);
- writes on e1 are acknowledged while the uplink is down (all three hub servers stopped: the
  leaf loses its link): the domain's stream is the leaf's, and a query on e1 sees them;
- after the hubs come back, the hub's copy holds every acknowledged batch exactly once (by
  message id, read with the JetStream API by an operator user added to the hubs' MESH account);
- `vault` never appears on the hub: no stream of it in JetStream domain hub, and even that
  all-permitted hub user gets no answer from the leaf's JetStream API about vault's stream
  and sees none of its subjects, while the same requests about `edge` are answered.
Every nats-server and meshd started here is stopped at the end, also on failure.
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, contract, wait_for  # noqa: E402
from test_mesh import NatsClient, NatsServer, _servers, fail, free_base  # noqa: E402

EDGE, VAULT = "edge", "vault"
PROBE_PW = "probe-operator-password-0123456789"


class Probe(NatsClient):
    """An operator's client on a hub: requests with a time limit (no answer: None). Reads
    through its own buffer, so a timeout leaves the connection usable."""

    buf = b""

    def _recv_until(self, n_or_sep):
        while True:
            if isinstance(n_or_sep, int):
                if len(self.buf) >= n_or_sep:
                    out, self.buf = self.buf[:n_or_sep], self.buf[n_or_sep:]
                    return out
            else:
                k = self.buf.find(n_or_sep)
                if k >= 0:
                    out, self.buf = self.buf[:k], self.buf[k + len(n_or_sep):]
                    return out
            chunk = self.ss.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buf += chunk

    def _line(self):
        while True:
            line = self._recv_until(b"\r\n").decode(errors="replace").strip()
            if line == "PING":
                self.ss.sendall(b"PONG\r\n")
                continue
            if not line.startswith("INFO") and line != "+OK":
                return line

    def _next(self, timeout):
        """(subject, payload) of the next MSG, an -ERR line as (None, line), or None."""
        self.ss.settimeout(timeout)
        try:
            while True:
                line = self._line()
                if line.startswith("-ERR"):
                    return None, line
                if line.startswith("MSG "):
                    parts = line.split()
                    payload = self._recv_until(int(parts[-1]) + 2)[:-2]
                    return parts[1], payload, parts
        except (socket.timeout, TimeoutError):
            return None
        finally:
            self.ss.settimeout(10)

    def ask(self, subject, body=None, timeout=3.0):
        self.n += 1
        reply = "%s.%d" % (self.inbox, self.n)
        data = json.dumps(body).encode() if body is not None else b""
        self.ss.sendall(("PUB %s %s %d\r\n" % (subject, reply, len(data))).encode() + data +
                        b"\r\n")
        while True:
            got = self._next(timeout)
            if got is None:
                return None
            if got[0] is None:
                return got[1]
            parts = got[2]
            if parts[1] == reply:
                return json.loads(got[1]) if got[1] else {}
            # a late answer to an earlier request, or a watched subject: skip it

    def watch(self, subject, sid):
        self.ss.sendall(("SUB %s %d\r\nPING\r\n" % (subject, sid)).encode())
        while self._line() != "PONG":
            pass

    def drain(self, seconds):
        """The subjects of every MSG received within seconds."""
        got = []
        while True:
            m = self._next(seconds)
            if m is None:
                return got
            if m[0] is not None:
                got.append(m[2][1])


def add_probe_user(conf):
    """An operator user of account MESH with no permission limits (plain password)."""
    text = open(conf).read()
    new = text.replace("MESH {\n    jetstream: enabled\n    users: [\n",
                       "MESH {\n    jetstream: enabled\n    users: [\n"
                       "      { user: \"probe\", password: \"%s\" }\n" % PROBE_PW, 1)
    if new == text:
        fail("cannot add the probe user to " + conf)
    with open(conf, "w") as f:
        f.write(new)


def copy_ids(probe, stream):
    """{Nats-Msg-Id: count} of every message of stream in the hub's JetStream."""
    info = probe.ask("$JS.API.STREAM.INFO." + stream, timeout=5)
    if not isinstance(info, dict) or "state" not in info:
        return None, info
    ids = {}
    st = info["state"]
    for seq in range(max(1, st.get("first_seq", 1)), st.get("last_seq", 0) + 1):
        m = probe.ask("$JS.API.STREAM.MSG.GET." + stream, {"seq": seq}, timeout=5)
        if not isinstance(m, dict) or "message" not in m:
            return None, m
        hdrs = base64.b64decode(m["message"].get("hdrs", "")).decode(errors="replace")
        mid = re.search(r"Nats-Msg-Id:\s*(\S+)", hdrs)
        key = mid.group(1) if mid else "seq-%d" % seq
        ids[key] = ids.get(key, 0) + 1
    return ids, info


def main():
    tmp = tempfile.mkdtemp(prefix="meshd-edge-test-")
    nodes = {}
    probes = []
    try:
        run(tmp, nodes, probes)
    except BaseException:
        for name, n in nodes.items():
            sys.stderr.write("---- %s's last log lines:\n%s\n" % (name, "\n".join(n.log[-40:])))
        raise
    finally:
        for p in probes:
            try:
                p.close()
            except Exception:
                pass
        for n in nodes.values():
            n.destroy()
        for s in list(_servers):
            s.stop()
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, nodes, probes):
    base = free_base(3)
    cport = base
    mdir = os.path.join(tmp, "mesh")
    out = subprocess.run([MESHCTL, "mesh", "config", "--out", mdir, "--bind", "127.0.0.1",
                          "--hub", "3", "--leaf", "1", "--client-port", str(cport),
                          "--cluster-port", str(base + 100), "--leafnode-port", str(base + 200),
                          "--node", "e1@leaf-1=%s,%s" % (EDGE, VAULT), "--node", "h1",
                          "--local-domain", VAULT], capture_output=True, text=True)
    if out.returncode != 0:
        fail("mesh config: %s%s" % (out.stdout, out.stderr))
    bad = subprocess.run([MESHCTL, "mesh", "config", "--out", os.path.join(tmp, "bad"),
                          "--leaf", "1", "--local-domain", "not a domain"],
                         capture_output=True, text=True)
    if bad.returncode != 2 or os.path.exists(os.path.join(tmp, "bad", "ca.pem")):
        fail("--local-domain with a bad name: exit %d %s" % (bad.returncode, bad.stderr))
    leafconf = open(os.path.join(mdir, "leaf-1", "nats.conf")).read()
    if "deny_imports" not in leafconf or "MESHD_DOM_vault" not in leafconf or \
            "MESHD_DOM_edge" in leafconf.split("deny_imports", 1)[1].split("]", 1)[0]:
        fail("the leaf config does not keep vault (and only vault) off the link:\n" + leafconf)
    hubconf = open(os.path.join(mdir, "hub-1", "nats.conf")).read()
    if "MESHD_COPY_edge" not in leafconf or "MESHD_COPY_vault" in leafconf + hubconf:
        fail("e1's permissions: a copy of edge only")
    hubs = {}
    for name in ("hub-1", "hub-2", "hub-3"):
        add_probe_user(os.path.join(mdir, name, "nats.conf"))
    for name in ("hub-1", "hub-2", "hub-3", "leaf-1"):
        hubs[name] = NatsServer(os.path.join(mdir, name, "nats.conf"),
                                os.path.join(tmp, name + ".log")).start()
    leaf = hubs.pop("leaf-1")

    e1 = Node(data_dir=os.path.join(tmp, "e1"),
              args=["--config", os.path.join(mdir, "nodes", "e1", "meshd.conf"),
                    "--mesh-heartbeat", "500ms", "--mesh-ttl", "2s"])
    nodes["e1"] = e1.start()
    for bad in ("elsewhere", 1, None, ["local"]):
        st, doc = e1.json("POST", "/v1/domains", {"name": "bad", "residency": bad})
        if st != 400:
            fail("residency %r: %d %s" % (bad, st, doc))
    st, doc = e1.json("POST", "/v1/domains", {"name": EDGE, "hosts": ["e1"],
                                              "replication": "sync"})
    if st != 201:
        fail("create edge: %d %s" % (st, doc))
    out = subprocess.run([MESHCTL, "domain", "create", VAULT, "--hosts", "e1",
                          "--residency", "local"], capture_output=True, text=True,
                         env=dict(os.environ, MESH_URL=e1.url, MESH_CACERT=e1.cafile,
                                  MESH_TOKEN=e1.token))
    if out.returncode != 0:
        fail("meshctl domain create --residency local: %s%s" % (out.stdout, out.stderr))
    if e1.json("GET", "/v1/domains/" + VAULT)[1].get("residency") != "local":
        fail("vault's residency")

    def applied(dom):
        st, _ = e1.apply(contract(domain=dom))
        return st in (200, 201)
    for dom in (EDGE, VAULT):
        if not wait_for(lambda: applied(dom), timeout=60, step=0.5):
            fail("contract of %s never applied: %s\n%s" % (dom, e1.apply(contract(domain=dom)),
                                                          "\n".join(e1.log[-20:])))

    def status():
        return e1.json("GET", "/v1/status")[1].get("replication", {})

    def copy_state():
        return status().get(EDGE, {}).get("hub_copy", {})
    if not wait_for(lambda: copy_state().get("state") == "sourcing", timeout=90, step=0.5):
        fail("the hub's copy was not made: %s" % status())
    if status()[EDGE].get("replicas") != 1 or copy_state().get("leaf_domain") != "leaf-1":
        fail("the edge stream is not the leaf's R1: %s" % status())
    if "hub_copy" in status().get(VAULT, {}):
        fail("a copy of the residency-local domain: %s" % status())

    acked = []

    def write(i, dom=EDGE):
        key = "%s-%05d" % (dom, i)
        st, doc = e1.post_rows(dom, "readings", [{"device": key, "ts": i, "temp": i % 100}],
                               headers={"Idempotency-Key": key})
        if st != 200:
            fail("write %s on the edge: %d %s" % (key, st, doc))
        if dom == EDGE:
            acked.append(key)
    for i in range(1, 21):
        write(i)
        write(i, VAULT)

    probe = Probe(cport, "probe", PROBE_PW, "_INBOX_probe", os.path.join(mdir, "ca.pem"),
                  os.path.join(mdir, "nodes", "h1", "cert.pem"),
                  os.path.join(mdir, "nodes", "h1", "key.pem"))
    probes.append(probe)

    def copy_has(keys):
        ids, _ = copy_ids(probe, "MESHD_COPY_" + EDGE)
        return ids is not None and all(ids.get("k:" + k) == 1 for k in keys)
    if not wait_for(lambda: copy_has(acked), timeout=30, step=0.5):
        fail("the hub's copy did not get the first writes: %s" % (copy_ids(probe,
                                                                           "MESHD_COPY_edge"),))

    # ---- the uplink goes down: every hub server stops, the leaf loses its link ----
    probe.close()
    probes.remove(probe)
    for h in hubs.values():
        h.stop()
    if not wait_for(lambda: leaf.log().count("Leafnode connection closed") >= 1, timeout=20,
                    step=0.2):
        fail("the leaf did not lose its link:\n" + leaf.log()[-2000:])
    for i in range(21, 61):  # acknowledged by the leaf alone
        write(i)
        write(i, VAULT)
    got = e1.query("SELECT count(*) FROM edge.readings")["rows"]
    if got != [[60]]:
        fail("edge rows while offline: %s" % got)

    # ---- the uplink comes back: the hub's copy catches up, nothing twice ----
    for name in ("hub-1", "hub-2", "hub-3"):
        hubs[name] = NatsServer(os.path.join(mdir, name, "nats.conf"),
                                os.path.join(tmp, name + ".restart.log")).start()

    def connect_probe():
        try:
            p = Probe(cport, "probe", PROBE_PW, "_INBOX_probe", os.path.join(mdir, "ca.pem"),
                      os.path.join(mdir, "nodes", "h1", "cert.pem"),
                      os.path.join(mdir, "nodes", "h1", "key.pem"))
        except Exception:
            return None
        probes.append(p)
        return p
    if not wait_for(lambda: connect_probe() is not None, timeout=20, step=0.5):
        fail("hub-1 did not come back")
    probe = probes[-1]
    for i in range(61, 71):  # and a few more with the link back
        write(i)
        write(i, VAULT)
    last = {}

    def caught_up():
        ids, info = copy_ids(probe, "MESHD_COPY_" + EDGE)
        last["ids"], last["info"] = ids, info
        return ids is not None and all(ids.get("k:" + k, 0) >= 1 for k in acked)
    if not wait_for(caught_up, timeout=60, step=1):
        fail("the hub's copy did not catch up: %s" % last)
    ids = last["ids"]
    twice = [k for k, c in ids.items() if c != 1]
    missing = [k for k in acked if ids.get("k:" + k) != 1]
    if twice or missing:
        fail("hub copy: %d twice (%s), %d missing (%s)" % (len(twice), twice[:5], len(missing),
                                                           missing[:5]))
    if last["info"]["config"].get("num_replicas") != 3:
        fail("the hub's copy is not R3: %s" % last["info"]["config"])
    leafinfo = probe.ask("$JS.leaf-1.API.STREAM.INFO.MESHD_DOM_" + EDGE, timeout=5)
    if not isinstance(leafinfo, dict) or \
            leafinfo.get("state", {}).get("last_seq") != last["info"]["state"]["last_seq"]:
        fail("the copy and the leaf's stream differ: %s / %s" % (leafinfo, last["info"]))
    print("edge: %d acknowledged batches (40 with the uplink down), hub copy seq %d, each "
          "once" % (len(acked), last["info"]["state"]["last_seq"]))

    # ---- the residency-local domain never reaches the hub ----
    names = None
    for _ in range(5):  # a loaded hub may miss one answer: ask again (no answer is no proof)
        names = probe.ask("$JS.API.STREAM.NAMES", {}, timeout=5)
        if isinstance(names, dict):
            break
    if not isinstance(names, dict) or any(VAULT in s for s in (names.get("streams") or [])):
        fail("hub streams: %s" % names)
    for subj in ("$JS.leaf-1.API.STREAM.INFO.MESHD_DOM_" + VAULT,
                 "$JS.leaf-1.API.STREAM.MSG.GET.MESHD_DOM_" + VAULT,
                 "$JS.leaf-1.API.CONSUMER.CREATE.MESHD_DOM_" + VAULT):
        body = {"seq": 1} if "MSG.GET" in subj else (
            {"stream_name": "MESHD_DOM_" + VAULT, "config": {"deliver_policy": "all",
                                                              "ack_policy": "none"}}
            if "CONSUMER" in subj else None)
        r = probe.ask(subj, body, timeout=3)
        if r is not None:
            fail("the hub got an answer about %s's stream (%s): %s" % (VAULT, subj, r))
    probe.watch("meshd.dom.%s.>" % VAULT, 90)
    probe.watch("$JS.*.API.>", 91)  # nothing of the leaf's API traffic about vault either
    for i in range(71, 76):
        write(i, VAULT)
    seen = [m for m in probe.drain(2) if VAULT in m]
    if seen:
        fail("the hub saw vault's traffic: %s" % seen[:3])
    got = e1.query("SELECT count(*) FROM vault.readings")["rows"]
    if got != [[75]]:
        fail("vault rows: %s" % got)
    print("vault: 75 batches, never on the hub")


if __name__ == "__main__":
    main()
    print("ok")
