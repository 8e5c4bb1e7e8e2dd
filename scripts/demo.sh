#!/usr/bin/env bash
# The demo: installs what is missing, builds meshd, starts a node on the embedded default
# (one node, no external service) and walks through the three scenarios of the brief:
# a smart factory, a smart home and an intensive care unit. Their contracts come from
# examples/, their data from `meshctl generate`.
#
#   scripts/demo.sh           run the demo, then stop the node
#   scripts/demo.sh --keep    leave the node running (it prints how to reach it)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1

scripts/setup.sh
echo "== building (release)"
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc)" >/dev/null
B=$PWD/build/release

D=$PWD/.demo
rm -rf "$D"
mkdir -p "$D"
TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
# the token goes through the environment (MESHD_ADMIN_TOKEN for meshd, MESH_TOKEN for
# meshctl), never on a command line, where ps would show it to every user
export MESH_TOKEN=$TOKEN
MESHD_ADMIN_TOKEN=$TOKEN "$B/meshd" --data-dir "$D/data" --listen 127.0.0.1:0 --node-name demo \
  --site lab > "$D/meshd.out" 2> "$D/meshd.log" &
PID=$!
stop() { kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; }
[ "$keep" = 1 ] || trap stop EXIT
for _ in $(seq 200); do grep -q "listening on" "$D/meshd.log" && break; sleep 0.05; done
ADDR=$(sed -n 's/.*listening on https:\/\/\([^ ]*\).*/\1/p' "$D/meshd.log")
[ -n "$ADDR" ] || { cat "$D/meshd.log"; exit 1; }
# TLS is on: the node generated a self-signed certificate and logged its fingerprint, which
# meshctl pins (MESH_PIN); MESH_CACERT=$D/data/tls/cert.pem would do as well
PIN=$(sed -n 's/.*fingerprint \(sha256:[0-9a-f]*\).*/\1/p' "$D/meshd.log")
export MESH_URL=https://$ADDR MESH_PIN=$PIN
ctl() { "$B/meshctl" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
q() { printf '\n$ meshctl query %q\n' "$1"; ctl query --format table "$1"; }

say "a node: $MESH_URL (TLS certificate $MESH_PIN)"
ctl status

say "domains and their contracts (examples/*/*.odcs.yaml)"
ctl domain create factory-a --description "Plant A: four production lines" --owner ops@plant-a.example
ctl domain create home-42 --description "A family home hub" --owner owner@home-42.example
ctl domain create icu-3 --description "Intensive care unit, ward 3" --owner ward3@hospital.example
ctl product apply examples/factory/*.odcs.yaml
ctl product apply examples/home/*.odcs.yaml
ctl product apply examples/healthcare/*.odcs.yaml
ctl product list

say "data: 1000 factory sensors at 1 s for 10 minutes, a home for a day, 20 ICU patients for 30 minutes"
ctl generate factory --duration 10m --anomaly M017@2026-01-01T00:07:00Z --all > "$D/factory.lp"
ctl generate home --duration 24h > "$D/home.lp"
ctl generate health --duration 30m --desaturate P000007@2026-01-01T00:20:00Z > "$D/health.lp"
# the same patients' admissions (the same options give the same patients)
ctl generate health --duration 30m --product admissions > "$D/admissions.lp"
ctl ingest factory-a.telemetry "$D/factory.lp" --influx
ctl ingest home-42.climate "$D/home.lp" --influx
ctl ingest icu-3.vitals "$D/health.lp" --influx
ctl ingest icu-3.admissions "$D/admissions.lp" --influx

say "smart factory: which machine vibrates most, minute by minute around the anomaly"
q 'SELECT machine, round(max(vibration_rms), 2) AS peak_vibration, round(avg(temperature), 1) AS avg_temp
   FROM "factory-a".telemetry GROUP BY machine ORDER BY peak_vibration DESC LIMIT 5'
q 'SELECT iso(time_bucket('"'"'1m'"'"', ts)) AS minute, round(max(vibration_rms), 2) AS vibration
   FROM "factory-a".telemetry WHERE machine = '"'"'M017'"'"' GROUP BY minute ORDER BY minute'

say "smart home: hourly temperature and heating per room (first 6 hours)"
q 'SELECT iso(time_bucket('"'"'1h'"'"', ts)) AS hour, room, round(avg(temperature), 1) AS temp,
          round(100.0 * avg(heating), 0) AS heating_pct
   FROM "home-42".climate WHERE ts < ts('"'"'2026-01-01T06:00:00Z'"'"')
   GROUP BY hour, room ORDER BY hour, room LIMIT 12'

say "healthcare: who desaturated (SpO2 < 90), and the monitor glitches kept in quarantine"
q 'SELECT v.patient_id, a.diagnosis, count(*) AS seconds_below_90, min(v.spo2) AS lowest
   FROM "icu-3".vitals v JOIN "icu-3".admissions a ON a.patient_id = v.patient_id
   WHERE v.spo2 < 90 GROUP BY v.patient_id, a.diagnosis'
q 'SELECT count(*) AS quarantined, min(reason) AS a_reason FROM "icu-3".vitals__quarantine'

say "classification discovery: what icu-3.vitals holds, from values sampled on its node (none leaves it)"
ctl discover icu-3.vitals --sample 2000 --approve patient_id

say "a bad batch is refused whole, with the line, the column and the reason"
grep -m 3 '^telemetry' "$D/factory.lp" > "$D/bad.lp" # -m: no SIGPIPE under pipefail
echo 'telemetry,site=plant-a,line=L01,machine=M001,sensor=S01 temperature=9999,vibration_rms=1.2,status="exploded" 1767225700000000000' >> "$D/bad.lp"
ctl ingest factory-a.telemetry "$D/bad.lp" --influx || echo "(meshctl exited $?: nothing of the batch was written)"

say "the catalog: everything classified restricted"
ctl catalog --classification restricted

if [ "$keep" = 1 ]; then
  say "the node keeps running (pid $PID). Try:"
  echo "  export MESH_URL=$MESH_URL MESH_PIN=$MESH_PIN MESH_TOKEN=$TOKEN"
  echo "  $B/meshctl catalog"
  echo "  kill $PID   # to stop it"
else
  say "done: stopping the node"
fi
