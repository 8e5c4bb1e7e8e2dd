"""A failed fsync of a domain's log (EIO): no retry-and-pretend (docs/decisions/0018).

An LD_PRELOAD shim, compiled by the test, makes fdatasync(2) of the domain log's segment
files fail with EIO while a flag file exists. The write that hit it gets 503 with a message
saying the domain is read-only until a restart and the write's outcome is unknown; the domain
then refuses every write, even after the fault is gone (a second fsync that succeeds would
prove nothing), while queries go on and /metrics shows meshd_domain_read_only 1. Other
domains keep taking writes. After a restart, writes resume; the failed batch, retried with its
Idempotency-Key, is there exactly once; every acknowledged row is there; meshd --verify finds
no damage. Exits 77 (skipped) when no C compiler can build the shim."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node, wait_for  # noqa: E402

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* fdatasync of a file under a log/ directory ending in .seg fails with EIO while the file
 * named by MESH_FAULT_FSYNC_FLAG exists */
int fdatasync(int fd)
{
    static int (*real)(int);
    if (real == NULL)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    const char *flag = getenv("MESH_FAULT_FSYNC_FLAG");
    if (flag && access(flag, F_OK) == 0) {
        char p[64], t[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, t, sizeof t - 1);
        if (n > 0) {
            t[n] = 0;
            size_t l = (size_t)n;
            if (strstr(t, "/log/") && l > 4 && strcmp(t + l - 4, ".seg") == 0) {
                errno = EIO;
                return -1;
            }
        }
    }
    return real(fd);
}
"""

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:%(d)s
version: 1.0.0
status: active
domain: %(d)s
schema:
  - name: events
    properties:
      - name: batch
        logicalType: integer
        required: true
      - name: i
        logicalType: integer
        required: true
"""
ROWS = 50


class FsyncFailureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="meshd-fsync-")
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            print("SKIP: no C compiler to build the fault-injection shim")
            sys.exit(77)
        src = os.path.join(self.tmp, "shim.c")
        with open(src, "w") as f:
            f.write(SHIM)
        self.shim = os.path.join(self.tmp, "shim.so")
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", self.shim, src, "-ldl"], check=True)
        self.flag = os.path.join(self.tmp, "fail-fsync")
        env = {"LD_PRELOAD": self.shim, "MESH_FAULT_FSYNC_FLAG": self.flag}
        # a sanitizer build wants its runtime first; the shim only wraps one libc call
        asan = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        self.node = Node(data_dir=os.path.join(self.tmp, "data"), env=env)
        self.acked = {"a": [], "b": []}
        self.batch = 0

    def tearDown(self):
        self.node.destroy()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, domain, b=None):
        if b is None:
            b = self.batch
            self.batch += 1
        body = "\n".join(json.dumps({"batch": b, "i": i}) for i in range(ROWS))
        st, doc = self.node.post_rows(domain, "events", body, "application/x-ndjson",
                                      headers={"Idempotency-Key": "%s-%d" % (domain, b)})
        if st == 200:
            self.acked[domain].append(b)
        return b, st, doc

    def check(self, domain, extra=()):
        rows = self.node.rows("SELECT batch, count(*) FROM %s.events GROUP BY batch" % domain)
        got = {r[0]: r[1] for r in rows}
        self.assertEqual(sorted(got), sorted(self.acked[domain] + list(extra)))
        for b, c in got.items():
            self.assertEqual(c, ROWS, "batch %d" % b)

    def metric(self, line_prefix):
        _, _, data = self.node.request("GET", "/metrics")
        for ln in data.decode().splitlines():
            if ln.startswith(line_prefix):
                return float(ln.rsplit(" ", 1)[1])
        self.fail("no metric " + line_prefix)

    def test_failed_fsync_makes_the_domain_read_only_until_restart(self):
        n = self.node.start()
        for d in ("a", "b"):
            n.create_domain(d)
            n.apply(CONTRACT % {"d": d}, expect=201)
        for _ in range(3):
            self.assertEqual(self.write("a")[1], 200)
            self.assertEqual(self.write("b")[1], 200)
        open(self.flag, "w").close()
        failed, st, doc = self.write("a")
        self.assertEqual(st, 503, doc)
        self.assertEqual(doc["error"]["code"], "UNAVAILABLE")
        msg = doc["error"]["message"]
        for part in ("domain a", "could not be made durable", "Input/output error",
                     "until meshd restarts", "same Idempotency-Key"):
            self.assertIn(part, msg)
        # logged before the answer; the test's reader thread may see it a little later
        self.assertTrue(wait_for(lambda: any("now read-only" in ln for ln in n.log), timeout=10))
        # the fault goes, but the domain does not pretend: still read-only
        os.unlink(self.flag)
        for _ in range(2):
            _, st, doc = self.write("a")
            self.assertEqual(st, 503, doc)
            self.assertIn("read-only", doc["error"]["message"])
        self.assertEqual(self.metric('meshd_domain_read_only{domain="a"}'), 1)
        self.assertEqual(self.metric('meshd_domain_read_only{domain="b"}'), 0)
        # queries go on; the other domain takes writes
        self.assertEqual(self.write("b")[1], 200)
        self.check("b")
        rows = n.rows("SELECT count(*) FROM a.events WHERE batch <> %d" % failed)
        self.assertEqual(rows[0][0], ROWS * len(self.acked["a"]))
        self.assertEqual(n.stop(), 0)
        rc, out = n.verify()
        self.assertEqual(rc, 0, out)
        # restart: writes resume; the failed batch retried with its key is there once
        n.start()
        self.assertEqual(self.metric('meshd_domain_read_only{domain="a"}'), 0)
        _, st, doc = self.write("a", failed)
        self.assertEqual(st, 200, doc)
        self.assertEqual(self.write("a")[1], 200)
        self.check("a")
        self.check("b")
        self.assertEqual(n.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
