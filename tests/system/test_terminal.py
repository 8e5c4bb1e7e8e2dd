#!/usr/bin/env python3
"""meshctl on a terminal and piped: the real meshctl against a real meshd, its output read
through a pseudo-terminal (Python's pty) exactly as a user's terminal would get it.

- ingest: on a terminal, a progress bar on stderr with the rows, rows/s and an ETA field;
  piped, nothing at all on stderr (and the same summary on stdout);
- query: an aligned table on a terminal, JSON when piped.
No assertion depends on timing: the ETA field is there from the first draw ("ETA -:--" until
a second of work has passed), so only its shape is checked.
"""
import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import MESHCTL, Node, contract  # noqa: E402

ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def run_on_pty(args, env, out_on_pty=True, cols=120, timeout=300):
    """Runs args with stderr (and stdout when out_on_pty) on a new pseudo-terminal of cols
    columns. Returns (exit status, what the terminal got, stdout if it was a pipe)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave if out_on_pty else subprocess.PIPE, stderr=slave,
                         close_fds=True)
    os.close(slave)
    term = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal has closed it
            break
        if not data:
            break
        term += data
    out = b""
    if p.stdout:
        out = p.stdout.read()
        p.stdout.close()
    rc = p.wait(timeout=timeout)
    os.close(master)
    return rc, term, out


class TerminalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.n = Node().start()
        cls.n.create_domain("factory")
        cls.n.apply(contract(), expect=201)
        cls.env = dict(os.environ)
        for k in ("MESH_CONFIG", "MESH_TOKEN_FILE", "MESH_PIN", "NO_COLOR"):
            cls.env.pop(k, None)
        cls.env.update({"MESH_URL": cls.n.url, "MESH_TOKEN": cls.n.token,
                        "MESH_CACERT": cls.n.cafile, "TERM": "xterm"})
        cls.tmp = cls.n.tmp
        # 200000 rows (a few MiB): several batches, so the bar is drawn more than once
        cls.csv = os.path.join(cls.tmp, "rows.csv")
        with open(cls.csv, "w") as f:
            f.write("device,ts,temp,status\n")
            for i in range(200000):
                f.write("tty%d,%d,%d.5,ok\n" % (i % 50, 1000000000 + i, i % 90))

    @classmethod
    def tearDownClass(cls):
        cls.n.stop()

    def test_ingest_progress_on_a_terminal(self):
        rc, term, out = run_on_pty([MESHCTL, "ingest", "factory.readings", self.csv],
                                   self.env, out_on_pty=False)
        self.assertEqual(rc, 0, term)
        frames = [ANSI.sub(b"", f).decode() for f in term.split(b"\r") if f.strip()]
        bars = [f for f in frames if "rows/s" in f]
        self.assertTrue(bars, "no progress bar on the terminal: %r" % term[-2000:])
        for bar in bars:
            # " 42% [=====>    ]  84.0k rows  52.3k rows/s  1.2 MiB / 3.0 MiB  ETA 0:02"
            self.assertRegex(bar, r"\d+% \[[=> ]+\]  [0-9.]+k? rows  [0-9.]+[kM]? rows/s  "
                                  r"[0-9.]+ [KMG]?i?B / [0-9.]+ [KMG]?i?B  ETA (-:--|\d+:\d\d)",
                             bar)
            self.assertLessEqual(len(bar), 120, "the bar is wider than the terminal")
        # the bar is erased at the end (\r ESC[K) so the summary starts on a clean line
        self.assertIn(b"\r\x1b[K", term)
        self.assertIn(b"200000", out + term)

    def test_ingest_piped_is_quiet(self):
        out = subprocess.run([MESHCTL, "ingest", "factory.readings", self.csv], env=self.env,
                             capture_output=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, b"", "stderr must be empty when piped")
        # stdout: the summary line alone, no bar and no escape sequence
        self.assertRegex(out.stdout.decode(), r"^factory\.readings: 200000 rows accepted, "
                                              r"0 quarantined, \d+ batches, [^\r\n]*\n$")
        self.assertNotIn(b"\x1b", out.stdout, "no escape sequences into a pipe")

    def test_query_table_on_a_terminal(self):
        self.n.post_rows("factory", "readings", [
            {"device": "tab-a", "ts": 1, "temp": 21.5, "status": "ok"},
            {"device": "tab-bb", "ts": 2, "temp": None, "status": "warn"}])
        sql = ("SELECT device, temp, status FROM factory.readings "
               "WHERE device LIKE 'tab-%' ORDER BY device")
        rc, term, _ = run_on_pty([MESHCTL, "query", sql], self.env)
        self.assertEqual(rc, 0, term)
        lines = [ANSI.sub(b"", ln).decode().rstrip() for ln in term.split(b"\r\n")]
        lines = [ln for ln in lines if ln]
        # header, rule, two rows aligned on the header's columns, then the count
        self.assertRegex(lines[0], r"^device +temp +status$")
        self.assertRegex(lines[1], r"^-+ +-+ +-+$")
        self.assertRegex(lines[2], r"^tab-a +21\.5 +ok$")
        self.assertRegex(lines[3], r"^tab-bb +NULL +warn$")
        temp, status = lines[0].index("temp"), lines[0].index("status")
        self.assertEqual([ln[temp:temp + 4] for ln in lines[2:4]], ["21.5", "NULL"], lines)
        self.assertEqual([ln[status:].strip() for ln in lines[2:4]], ["ok", "warn"], lines)
        self.assertRegex(lines[4], r"^\(2 rows")
        # piped: JSON, no table and no escape sequence
        out = subprocess.run([MESHCTL, "query", sql], env=self.env, capture_output=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn(b"\x1b", out.stdout)
        doc = json.loads(out.stdout)
        self.assertEqual(doc["rows"], [["tab-a", 21.5, "ok"], ["tab-bb", None, "warn"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
