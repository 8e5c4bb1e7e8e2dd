"""The three edge scenarios of examples/ end to end, each by its one command (issue 6, part 5).

Each run.sh starts its own mosquitto broker (max_queued_messages 0), meshd, webhook receiver
(checking every HMAC signature) and MQTT devices (paho) on loopback ports it chooses, checks
the outcome and stops everything; it exits 0 only when every check passed. This test runs
them against the build under test (MESH_BUILD) and reads their summaries.

- factory: 1000 sensor nodes over MQTT; a failing bearing on M017 is alerted by the anomaly
  rule with the machine's id, on its 20 nodes, and no other machine is alerted;
- home: the too-cold rule sends a set point over MQTT to the simulated thermostat, whose
  reported temperature then rises until the alert resolves; with no mesh configured and
  with a configured mesh that cannot be reached;
- healthcare: SpO2 below 90 for 30 s (row time) pages a signed webhook with the patient's id
  masked (the MASK_HASH a masked analyst sees in SQL)."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import BUILD, SRC  # noqa: E402


def run(scenario, *args, timeout=500):
    env = dict(os.environ, MESH_BUILD=os.path.abspath(BUILD))
    p = subprocess.run([os.path.join(SRC, "examples", scenario, "run.sh")] + list(args),
                       env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


class EdgeScenarios(unittest.TestCase):
    def passed(self, scenario, out, at_least):
        m = re.search(r"# %s: (\d+) passed, (\d+) failed" % scenario, out)
        self.assertIsNotNone(m, out[-3000:])
        self.assertEqual(int(m.group(2)), 0, out[-3000:])
        self.assertGreaterEqual(int(m.group(1)), at_least, out[-3000:])
        self.assertNotIn("FAIL -", out)

    def test_factory(self):
        rc, out = run("factory")
        self.assertEqual(rc, 0, out[-3000:])
        self.passed("factory", out, 13)
        self.assertIn("ok   - 1000 sensor nodes, 60 readings each", out)
        self.assertIn("ok   - vibration-anomaly fired for M017 only", out)

    def test_home(self):
        rc, out = run("home")
        self.assertEqual(rc, 0, out[-3000:])
        self.passed("home", out, 24)
        self.assertIn("# hub with uplink: none", out)
        self.assertIn("# hub with uplink: unreachable", out)
        self.assertEqual(out.count("ok   - the thermostat got the set point 19.5"), 2, out)

    def test_healthcare(self):
        rc, out = run("healthcare")
        self.assertEqual(rc, 0, out[-3000:])
        self.passed("healthcare", out, 18)
        self.assertIn("ok   - the webhook's patient id is masked", out)
        self.assertIn("ok   - the clear patient id appears nowhere in any webhook body", out)

    def test_usage(self):
        for sc in ("factory", "home", "healthcare"):
            rc, out = run(sc, "--help", timeout=60)
            self.assertEqual(rc, 0, out)
            self.assertIn("--keep", out)
            rc, out = run(sc, "--no-such-option", timeout=60)
            self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
