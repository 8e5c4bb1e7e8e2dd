"""Helpers for system tests: start a real meshd on a free loopback port and talk HTTP to it.

Standard library only (Debian's /usr/bin/python3). Every process a test starts is stopped
by Node.stop() / Node.kill() and, as a last resort, by an atexit hook.

TLS is on by default, as in meshd: requests go over HTTPS and trust exactly the node's own
generated certificate (DATA_DIR/tls/cert.pem, checked with its host name, 127.0.0.1).
Node(tls=False) starts the node with --tls off and speaks plain HTTP.
"""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("MESH_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "debug")
SRC = os.environ.get("MESH_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
MESHD = os.path.join(BUILD, "meshd")
MESHCTL = os.path.join(BUILD, "meshctl")
TOKEN = "system-test-token-0123456789"

_live = []


def _cleanup():
    for n in list(_live):
        try:
            n.kill()
        except Exception:
            pass


atexit.register(_cleanup)


class Node:
    """One meshd process with its own data directory."""

    def __init__(self, data_dir=None, args=(), env=None, token=TOKEN, keep_dir=False, tls=True,
                 cafile=None):
        self.tmp = None
        if data_dir is None:
            self.tmp = tempfile.mkdtemp(prefix="meshd-test-")
            data_dir = os.path.join(self.tmp, "data")
        self.data_dir = data_dir
        self.args = list(args)
        self.env = env
        self.token = token
        self.keep_dir = keep_dir
        self.tls = tls
        # the CA file that verifies the node: its generated certificate unless given
        self.cafile = cafile or os.path.join(data_dir, "tls", "cert.pem")
        self._ssl = None
        self.proc = None
        self.addr = None
        self.scheme = None
        self.url = None
        self.fingerprint = None
        self.log = []
        self.stdout = []

    def start(self, timeout=15):
        cmd = [MESHD, "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"] + self.args
        if not self.tls:
            cmd += ["--tls", "off"]
        if self.token:
            cmd += ["--admin-token", self.token]
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.log = []
        self.addr = self.fingerprint = None
        self._ssl = None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True)
        _live.append(self)
        ready = threading.Event()

        def pump(stream, sink, watch):
            for line in stream:
                sink.append(line.rstrip("\n"))
                if watch:
                    m = re.search(r"fingerprint (sha256:[0-9a-f]{64})", line)
                    if m:
                        self.fingerprint = m.group(1)
                    m = re.search(r"listening on (https?)://([^\s\"]+)", line)
                    if m:
                        self.scheme, self.addr = m.group(1), m.group(2)
                        ready.set()
            ready.set()

        threading.Thread(target=pump, args=(self.proc.stderr, self.log, True),
                         daemon=True).start()
        threading.Thread(target=pump, args=(self.proc.stdout, self.stdout, False),
                         daemon=True).start()
        ready.wait(timeout)
        if self.addr is None:
            self.kill()
            raise RuntimeError("meshd did not start:\n" + "\n".join(self.log))
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)
        self.url = "%s://%s" % (self.scheme, self.addr)
        return self

    def ssl_context(self):
        """A client context that trusts the node's certificate (self.cafile) only."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.cafile)
        return self._ssl

    def curl_tls_args(self):
        """curl flags that trust the node's certificate (none for plain HTTP)."""
        return ["--cacert", self.cafile] if self.scheme == "https" else []

    def _report_death(self):
        """A process that died on its own: show why (sanitizer reports land in its log)."""
        rc = self.proc.poll()
        if rc is not None:
            sys.stderr.write("meshd exited by itself with status %s; its last log lines:\n%s\n" %
                             (rc, "\n".join(self.log[-80:])))
        return rc

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self._report_death() is not None:
            rc = self.proc.returncode
            self._forget()
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._forget()
        return rc

    def kill(self):
        """SIGKILL: no chance to flush anything."""
        if self.proc is None:
            return
        self._report_death()
        self.proc.kill()
        self.proc.wait()
        self._forget()

    def _forget(self):
        if self in _live:
            _live.remove(self)
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except Exception:
                pass
        self.proc = None

    def verify(self, extra_args=(), env=None):
        """`meshd --verify` on this node's data directory (the node must be stopped): the
        offline check that every page and log record authenticates and the databases pass
        SQLite's integrity check. Returns (exit status, output)."""
        e = dict(os.environ)
        if self.env:
            e.update(self.env)
        if env:
            e.update(env)
        out = subprocess.run([MESHD, "--data-dir", self.data_dir, "--verify"] + list(self.args) +
                             list(extra_args), capture_output=True, text=True, env=e)
        return out.returncode, out.stdout + out.stderr

    def destroy(self):
        if self.proc:
            self.kill()
        if self.tmp and not self.keep_dir:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- HTTP ----

    def request(self, method, path, body=None, headers=None, token=None, timeout=60):
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if headers:
            h.update(headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data

    def curl(self, method, path, data=None, headers=None, token=None):
        """A request through the real curl client (it sends Expect: 100-continue for big
        bodies, so a refusal arrives before the body is sent). Returns (status, body)."""
        cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method]
        cmd += self.curl_tls_args()
        tok = self.token if token is None else token
        if tok:
            cmd += ["-H", "Authorization: Bearer " + tok]
        for k, v in (headers or {}).items():
            cmd += ["-H", "%s: %s" % (k, v)]
        tmp = None
        if data is not None:
            tmp = tempfile.NamedTemporaryFile(delete=False)
            tmp.write(data if isinstance(data, bytes) else data.encode())
            tmp.close()
            cmd += ["--data-binary", "@" + tmp.name]
        cmd.append(self.url + path)
        out = subprocess.run(cmd, capture_output=True)
        if tmp:
            os.unlink(tmp.name)
        body, _, code = out.stdout.rpartition(b"\n")
        return int(code or 0), body

    def json(self, method, path, body=None, headers=None, token=None, expect=None):
        st, h, data = self.request(method, path, body, headers, token)
        doc = json.loads(data) if data and data.strip() else None
        if expect is not None and st != expect:
            raise AssertionError("%s %s -> %d (expected %d): %s" %
                                 (method, path, st, expect, data[:2000]))
        return st, doc

    def query(self, sql, expect=200, **opts):
        body = {"sql": sql}
        body.update(opts)
        st, doc = self.json("POST", "/v1/query", body)
        if st != expect:
            raise AssertionError("query %r -> %d: %s" % (sql, st, doc))
        return doc

    def rows(self, sql):
        return self.query(sql)["rows"]

    def scalar(self, sql):
        return self.rows(sql)[0][0]

    def create_domain(self, name, **kw):
        body = {"name": name}
        body.update(kw)
        return self.json("POST", "/v1/domains", body, expect=201)[1]

    def apply(self, yaml_text, expect=None):
        st, doc = self.json("POST", "/v1/contracts", yaml_text,
                            headers={"Content-Type": "application/yaml"})
        if expect is not None and st != expect:
            raise AssertionError("apply -> %d: %s" % (st, doc))
        return st, doc

    def write_lp(self, domain, text, precision=None, headers=None):
        path = "/write?db=" + domain + ("&precision=" + precision if precision else "")
        return self.request("POST", path, text, headers=headers)

    def post_rows(self, domain, product, body, ctype="application/json", headers=None, query=""):
        h = {"Content-Type": ctype}
        if headers:
            h.update(headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        st, hh, data = self.request("POST", "/v1/products/%s/%s/rows%s" % (domain, product, query),
                                    body, headers=h)
        return st, (json.loads(data) if data.strip() else None)


def contract(domain="factory", version="1.0.0", product="readings", cid=None, extra_props="",
             object_extra="", status="active"):
    """A time-series contract: device + ts key, temp with a range, status enum."""
    cid = cid or "urn:test:%s:%s" % (domain, product)
    return """apiVersion: v3.1.0
kind: DataContract
id: %(cid)s
version: %(version)s
status: %(status)s
domain: %(domain)s
name: %(product)s
description:
  purpose: Test readings.
schema:
  - name: %(product)s
    logicalType: object
    description: One row per device per reading.
%(object_extra)s    properties:
      - name: device
        logicalType: string
        primaryKey: true
        primaryKeyPosition: 1
        description: Device id.
      - name: ts
        logicalType: timestamp
        primaryKey: true
        primaryKeyPosition: 2
      - name: temp
        logicalType: number
        logicalTypeOptions:
          minimum: -50
          maximum: 200
        customProperties:
          - property: unit
            value: celsius
      - name: status
        logicalType: string
        customProperties:
          - property: enum
            value: [ok, warn, fail]
%(extra_props)s""" % locals()


def free_ports(n):
    """n distinct loopback ports free now, below the ephemeral range (32768-60999 here): a port
    the kernel hands out for ":0" or for an outgoing connection could be taken again between
    this check and the server binding it."""
    import random
    import socket
    ports = []
    for _ in range(1000):
        if len(ports) == n:
            return ports
        p = random.randrange(20000, 32768)
        if p in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        ports.append(p)
    raise RuntimeError("no free ports")


def free_port():
    return free_ports(1)[0]


def wait_for(pred, timeout=10, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False
