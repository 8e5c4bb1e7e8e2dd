"""Rule states across kill -9 (decision 0028): states are persisted at checkpoints, and after a
crash the committed records after them are evaluated again without writing or sending
anything. Two real meshd nodes are fed the same rows; one is killed with SIGKILL mid-stream
and restarted. Its alerts, alert history and webhook deliveries must equal those of the node
that ran uninterrupted: no transition lost, none emitted twice, no row counted twice.

No timing assertions: every wait is a polling deadline. The timed checkpoints are an hour
apart; the states are persisted mid-stream, at a known record, by acknowledging an alert
(an alert operation persists them, like rule and contract records)."""
import json
import math
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from meshlib import Node, wait_for  # noqa: E402
from test_rules import SECRET, Receiver, ts_contract  # noqa: E402

SEC = 10**9
SERIES = 20
STEPS = 60
PER_BATCH = 5  # steps per batch: 12 batches of 100 rows

RULES = """name: win-hot
domain: plant
product: telemetry
kind: window
function: avg
period: 10s
column: temp
above: 60
clear: 55
actions:
  - {type: webhook, url: "%(url)s", secret: "%(secret)s"}
---
name: zs
domain: plant
product: telemetry
kind: anomaly
method: zscore
samples: 20
warmup: 5
sensitivity: 4
clear: 2
column: temp
actions:
  - {type: webhook, url: "%(url)s", secret: "%(secret)s"}
---
name: cnt
domain: plant
product: telemetry
kind: window
function: count
period: 1h
above: 45
---
name: quiet
domain: plant
product: telemetry
kind: absence
after: 1h
actions:
  - {type: webhook, url: "%(url)s", secret: "%(secret)s"}
"""


def value(k, i):
    if k in (3, 11) and i == 30:
        return 90.0  # an anomaly, before the crash
    if k == 11 and i == 57:
        return 95.0  # and one after it: its |z| depends on the rebuilt baseline
    if k in (5, 7) and 40 <= i <= 52:
        return 75.0  # hot across the crash: the window average crosses 60, then clears
    return round(50 + 2 * math.sin(i * 0.7 + k), 3)


class RuleStateTest(unittest.TestCase):
    maxDiff = None

    def node(self, rx):
        n = Node(args=["--rules-tick", "200ms", "--checkpoint-interval", "1h"]).start()
        n.create_domain("plant")
        n.apply(ts_contract("plant", "telemetry", "temp", "machine"), expect=201)
        for doc in (RULES % {"url": rx.url(), "secret": SECRET}).split("---\n"):
            st, body = n.json("POST", "/v1/rules", doc,
                              headers={"Content-Type": "application/yaml"})
            self.assertEqual(st, 201, body)
        return n

    def write(self, n, rows):
        st, doc = n.post_rows("plant", "telemetry", rows)
        self.assertEqual(st, 200, doc)

    def firing(self, n, rule):
        al = n.json("GET", "/v1/alerts?domain=plant&state=open&rule=" + rule, expect=200)[1]
        return len(al["alerts"])

    # an absence alert's value is the silence the node's clock saw at the tick: the two
    # nodes tick at their own times, so it is left out (for fired and acknowledged events)
    def history(self, n):
        rows = n.rows("SELECT e.alert_id, e.rule, e.event, e.value, a.rule FROM "
                      "plant.alert_events e JOIN plant.alerts a ON a.alert_id = e.alert_id "
                      "ORDER BY e.alert_id, e.time, e.event")
        return [[r[0], r[1], r[2], None if r[4] == "quiet" else r[3]] for r in rows]

    def alerts(self, n):
        al = n.json("GET", "/v1/alerts?domain=plant&state=all", expect=200)[1]["alerts"]
        return sorted((a["alert_id"], a["rule"], a["series"], a["state"],
                       None if a["rule"] == "quiet" else a["value"]) for a in al)

    def test_kill_mid_stream_same_as_uninterrupted(self):
        base = (time.time_ns() // SEC - 600) * SEC  # row times end before now: no clock skew
        batches = []
        for b in range(STEPS // PER_BATCH):
            rows = [{"machine": "m%02d" % k, "time": base + i * SEC, "temp": value(k, i)}
                    for i in range(b * PER_BATCH, (b + 1) * PER_BATCH) for k in range(SERIES)]
            batches.append(rows)
        # devices that go quiet: one before the first checkpoint, one after it (the tick that
        # fires it is then among the records a restart evaluates again)
        gone = {0: "g0", 6: "g1"}

        rxa, rxb = Receiver(), Receiver()
        a = self.node(rxa)
        b = self.node(rxb)
        try:
            for i, rows in enumerate(batches):
                if i in gone:
                    rows = rows + [{"machine": gone[i], "time": base - 7200 * SEC, "temp": 50}]
                for n in (a, b):
                    self.write(n, rows)
                if i in gone:
                    want = 1 + list(gone).index(i)
                    for n in (a, b):
                        self.assertTrue(wait_for(lambda: self.firing(n, "quiet") == want, 30))
                if i == 4:
                    # states persisted here: the restart loads them and re-evaluates after
                    for n in (a, b):
                        al = n.json("GET", "/v1/alerts?domain=plant&state=open&rule=quiet",
                                    expect=200)[1]["alerts"]
                        path = "/v1/alerts/%s/ack" % urllib.parse.quote(al[0]["alert_id"], "")
                        st, doc = n.json("POST", path, {"note": "seen"})
                        self.assertEqual(st, 200, doc)
                if i == 8:
                    # every action so far delivered, then SIGKILL: what a restart re-evaluates
                    # must not be sent again
                    owed = len([r for r in self.history(b) if r[1] != "cnt"])
                    self.assertTrue(wait_for(lambda: len(rxb.got) >= owed, 30))
                    time.sleep(0.5)
                    before_kill = {h["X-Meshd-Delivery"] for h, _ in rxb.got}
                    b.kill()
                    b.start()
                    self.assertTrue(any("rule states: re-evaluated log records" in line
                                        for line in b.log), "\n".join(b.log[-40:]))
            for n, rx in ((a, rxa), (b, rxb)):
                owed = len([r for r in self.history(n) if r[1] != "cnt"])
                self.assertTrue(wait_for(lambda: len({h["X-Meshd-Delivery"]
                                                      for h, _ in rx.got}) >= owed, 30))

            ha, hb = self.history(a), self.history(b)
            self.assertEqual(hb, ha)
            self.assertEqual(self.alerts(b), self.alerts(a))
            # the scenario does what it says: each rule fired, and some of it after the crash
            rules = {r[1] for r in ha if r[2] == "fired"}
            self.assertEqual(rules, {"win-hot", "zs", "cnt", "quiet"}, ha)
            self.assertEqual(len([r for r in ha if r[1] == "cnt" and r[2] == "fired"]), SERIES)
            for r in ha:
                if r[1] == "cnt":
                    self.assertEqual(r[3], 46)  # no row counted twice by the replay
            # deliveries: the same ones; a delivery id seen twice can only be an action that
            # was owed (in the outbox) at the kill, sent again at least once by design
            ids_a = sorted(h["X-Meshd-Delivery"] for h, _ in rxa.got)
            ids_b = [h["X-Meshd-Delivery"] for h, _ in rxb.got]
            self.assertEqual(sorted(set(ids_b)), ids_a)
            again = [i for i in set(ids_b) if ids_b.count(i) > 1]
            self.assertTrue(all(i in before_kill for i in again), again)
            self.assertEqual(rxb.bad_sig, 0)
            # the states the restart rebuilt matched the store's alert numbering
            self.assertFalse(any("rebuilt states differ" in line for line in b.log))
            for n in (a, b):
                self.assertEqual(n.stop(), 0)
        finally:
            a.destroy()
            b.destroy()
            rxa.close()
            rxb.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
