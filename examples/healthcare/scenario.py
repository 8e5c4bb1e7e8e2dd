"""Intensive care, end to end (examples/healthcare/run.sh runs this).

Eight bedside monitors of ICU 3 publish their patient's vitals once a second over MQTT (line
protocol on icu-3/monitors/BED/vitals) into icu-3.vitals. One patient desaturates: SpO2 below
90 % for a minute. The rule spo2-low (below 90 for 30 s, resolves above 92) pages the ward
through a signed webhook whose payload carries the patient's id MASKED (MASK_HASH: the same
hash SQL masks give, so the pager can group alerts per patient without learning who it is);
the bed number goes in clear (the rule lists it under `unmasked`).

The monitors' readings come from `meshctl generate health`, with times ending now; the
monitors publish them as fast as meshd acknowledges. `for: 30s` is measured in the rows'
own times, so the run does not wait 30 s of wall-clock time.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import edge  # noqa: E402


class Ward(edge.Scenario):
    def add_args(self, ap):
        ap.add_argument("--patients", type=int, default=8, help="patients (default 8)")
        ap.add_argument("--patient", default="P000003",
                        help="the patient who desaturates (default P000003)")
        ap.add_argument("--seed", type=int, default=1)


def main():
    s = Ward("healthcare")
    o = s.opts
    check = s.check
    seconds = 180
    start = int(time.time()) - seconds
    start_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    onset = 60  # the desaturation: from +60 s for 60 s
    gen = subprocess.run(
        [os.path.join(s.build, "meshctl"), "generate", "health", "--patients", str(o.patients),
         "--duration", "%ds" % seconds, "--start", start_iso, "--seed", str(o.seed),
         "--desaturate", "%s@+%ds/60s" % (o.patient, onset)],
        check=True, capture_output=True, text=True).stdout.splitlines()
    # vitals,patient_id=P,bed=B FIELDS TS: one monitor per bed, one message per reading
    msgs = []
    bed_of = {}
    for line in gen:
        tags = dict(kv.split("=", 1) for kv in line.split(" ", 1)[0].split(",")[1:])
        bed_of[tags["patient_id"]] = tags["bed"]
        msgs.append(("icu-3/monitors/%s/vitals" % tags["bed"], line))
    bed = bed_of.get(o.patient)
    check("%d monitors, %d readings" % (len(bed_of), len(msgs)),
          len(bed_of) == o.patients and len(msgs) == o.patients * seconds)

    port = s.broker()
    s.meshd(["--mqtt-url", "mqtt://127.0.0.1:%d" % port])
    hook = s.webhook()
    s.setup_domain("icu-3", "healthcare")
    s.rule("healthcare", "spo2-low", hook)
    s.mapping("vitals", "icu-3/monitors/+/vitals", "icu-3", "vitals", "lineprotocol")
    s.mqtt_ready()

    mon = s.mqtt("icu-3-monitors")
    check("%d readings published at QoS 1" % len(msgs), edge.publish_all(mon, msgs))
    check("meshd stored every reading",
          edge.wait_for(lambda: s.stored("vitals") >= len(msgs), 120), s.stored("vitals"))
    # the monitors' glitches (a lead off: SpO2 0, heart rate 0 or 400) go to the quarantine
    kept = s.scalar('SELECT (SELECT count(*) FROM "icu-3".vitals) + '
                    '(SELECT count(*) FROM "icu-3".vitals__quarantine) AS n')
    check("vitals + quarantine hold every reading", kept == len(msgs), kept)
    low = s.scalar("SELECT count(*) FROM \"icu-3\".vitals WHERE patient_id = '%s' AND spo2 < 90"
                   % o.patient)
    check("%s's SpO2 was below 90 %% for about a minute (%s readings)" % (o.patient, low),
          low is not None and 45 <= low <= 60, low)

    # ---- the page: fired once, for that patient, masked ---------------------------------------
    edge.wait_for(lambda: hook.events("spo2-low", "resolved"), 30)
    fired = hook.events("spo2-low", "fired")
    check("spo2-low fired once", len(fired) == 1, len(fired))
    if not fired:
        return s.finish()
    p = fired[0]
    pid = p["series"].get("patient_id", "")
    check("the webhook's patient id is masked (64 hex digits, MASK_HASH)",
          len(pid) == 64 and all(c in "0123456789abcdef" for c in pid), pid)
    check("the clear patient id appears nowhere in any webhook body",
          not any(o.patient.encode() in b for b in hook.raw()))
    check("the bed goes in clear (unmasked: [bed])", p["row"].get("bed") == bed, p["row"])
    check("patient_id is listed as masked, bed is not",
          "patient_id" in p["masked"] and "bed" not in p["masked"], p["masked"])
    check("it fired 30 s into the episode (row time)",
          start + onset + 29 <= p["time_ns"] // 10**9 <= start + onset + 32, p["time"])
    check("with a value below 90", p["value"] < 90, p["value"])
    check("every webhook request was signed correctly (HMAC-SHA256)", hook.bad_sig == 0)
    check("the alert resolved once SpO2 was back above 92",
          len(hook.events("spo2-low", "resolved")) == 1)

    # The hash is the one a masked analyst sees in SQL: the pager can match alerts to what a
    # masked dashboard shows, without either knowing the patient.
    s.must(201, "POST", "/v1/roles", {"name": "ward-analyst"})
    s.must(201, "POST", "/v1/grants", {"role": "ward-analyst", "action": "read",
                                       "domain": "icu-3", "product": "vitals"})
    s.must(201, "POST", "/v1/masks", {"domain": "icu-3", "product": "vitals",
                                      "column": "patient_id", "type": "MASK_HASH",
                                      "roles": ["ward-analyst"]})
    s.must(201, "POST", "/v1/principals", {"name": "ana", "kind": "user",
                                           "roles": ["ward-analyst"],
                                           "password": "ana-password-0123456789"})
    tok = s.must(201, "POST", "/v1/tokens", {"principal": "ana", "expires_in": "1h"})["token"]
    st, doc = s.api_as(tok, "POST", "/v1/query",
                       {"sql": "SELECT DISTINCT patient_id FROM \"icu-3\".vitals "
                               "WHERE bed = '%s'" % bed})
    seen = doc["rows"][0][0] if st == 200 and doc.get("rows") else doc
    check("the masked analyst sees the same hash for that bed in SQL", seen == pid, seen)
    alerts = s.query("SELECT series, state FROM \"icu-3\".alerts WHERE rule = 'spo2-low'")
    check("the alerts product holds one resolved alert for %s (admin: in clear)" % o.patient,
          len(alerts) == 1 and json.loads(alerts[0]["series"]) == {"patient_id": o.patient}
          and alerts[0]["state"] == "resolved", alerts)
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
