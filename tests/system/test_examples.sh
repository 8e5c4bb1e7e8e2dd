#!/bin/bash
# test_examples.sh - the example scenarios end to end against a real meshd.
#
# Starts meshd on a free loopback port in a temporary directory, creates the four example
# domains, applies every contract in examples/*/, generates a little data of each scenario with
# `meshctl generate`, loads it through /write (line protocol) and /v1/products/.../rows (CSV),
# then checks row counts and what the data should show: the anomalous machine vibrates most,
# the desaturating patient is the only one below 90 % SpO2, monitor glitches and TSBS's
# blanked truck names land in quarantine.
#
# Environment (set by ctest): MESH_BUILD (build directory), MESH_SRC (source directory).
set -euo pipefail

SRC=${MESH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${MESH_BUILD:-$SRC/build/debug}
MESHD=$BUILD/meshd
GEN=("$BUILD/meshctl" generate)
TOKEN=system-test-token-0123456789

tmp=$(mktemp -d /tmp/meshd-examples.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   - $*"; }
bad() {
    echo "FAIL - $*"
    fails=$((fails + 1))
}
# check NAME ACTUAL EXPECTED
check() {
    if [ "$2" == "$3" ]; then ok "$1 ($2)"; else bad "$1: got '$2', expected '$3'"; fi
}
# check_range NAME ACTUAL LOW HIGH (integers)
check_range() {
    if [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then
        ok "$1 ($2 in $3..$4)"
    else
        bad "$1: got $2, expected $3..$4"
    fi
}

# ---- start meshd ---------------------------------------------------------------------------
# the log exists before meshd starts: the child's redirection may come after the first read
# below, and a failing read in $(...) ends the script under set -e
: >"$tmp/meshd.log"
"$MESHD" --data-dir "$tmp/data" --listen 127.0.0.1:0 --admin-token "$TOKEN" \
    >"$tmp/meshd.out" 2>>"$tmp/meshd.log" &
pid=$!
addr=""
for _ in $(seq 1 150); do
    addr=$(sed -n '/listening on https:\/\//{s/.*listening on https:\/\/\([^ "]*\).*/\1/p;q}' "$tmp/meshd.log")
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "meshd did not start:"
    cat "$tmp/meshd.log"
    exit 1
fi
echo "# meshd at $addr"
base="https://$addr"
cacert=$tmp/data/tls/cert.pem # the node's generated certificate: the only one trusted

# api EXPECTED_CODE CURL_ARGS... : a request that must answer EXPECTED_CODE; prints the body.
api() {
    local want=$1
    shift
    local code
    code=$(curl -sS --cacert "$cacert" -o "$tmp/body" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" "$@")
    if [ "$code" != "$want" ]; then
        bad "HTTP $code (expected $want) for $*: $(head -c 600 "$tmp/body")"
        return 1
    fi
    cat "$tmp/body"
}

# q SQL : the first column of the first row of a query, as CSV text. (Name a computed column
# with AS when its SQL spans lines: the CSV header repeats it.)
q() {
    api 200 -H 'Content-Type: application/sql' -H 'Accept: text/csv' --data-binary "$1" \
        "$base/v1/query" | sed -n '2p' | cut -d, -f1 | tr -d '"\r'
}

# load DOMAIN FILE : writes a line protocol file through the InfluxDB v1 endpoint.
load() {
    api 204 --data-binary "@$2" "$base/write?db=$1" >/dev/null && ok "loaded $(wc -l <"$2") lines of $(basename "$2") into $1"
}

# load_csv DOMAIN PRODUCT FILE
load_csv() {
    api 200 -H 'Content-Type: text/csv' --data-binary "@$3" \
        "$base/v1/products/$1/$2/rows" >/dev/null && ok "loaded $(basename "$3") into $1.$2 as CSV"
}

# ---- domains and contracts -------------------------------------------------------------------
for d in factory-a home-42 icu-3 fleet; do
    api 201 -d "{\"name\":\"$d\"}" "$base/v1/domains" >/dev/null && ok "domain $d created"
done
ncontracts=0
for f in "$SRC"/examples/*/*.odcs.yaml; do
    if api 201 --data-binary "@$f" "$base/v1/contracts" >/dev/null; then
        ok "contract ${f#"$SRC"/} applied"
        ncontracts=$((ncontracts + 1))
    fi
done
check "contracts applied" "$ncontracts" 8
check "products in the catalog" "$(api 200 "$base/v1/products" | grep -o '"sql_name"' | wc -l)" 9

# ---- rules ------------------------------------------------------------------------------------
# Every example rule applies (its webhook hosts do not exist: deliveries fail and retry in the
# background without holding up the writes below).
nrules=0
for f in "$SRC"/examples/*/rules/*.yaml; do
    if MESH_TOKEN=$TOKEN "$BUILD/meshctl" --url "$base" --cacert "$cacert" -q rule create "$f"; then
        nrules=$((nrules + 1))
    else
        bad "rule ${f#"$SRC"/} refused"
    fi
done
check "example rules applied" "$nrules" "$(ls "$SRC"/examples/*/rules/*.yaml | wc -l)"

# ---- usage errors ------------------------------------------------------------------------------
set +e
"${GEN[@]}" nosuch >/dev/null 2>&1
check "unknown scenario exits 2 (invalid input)" "$?" 2
"${GEN[@]}" home --machines 3 >/dev/null 2>&1
check "an option of another scenario exits 2" "$?" 2
"${GEN[@]}" --help >"$tmp/help.txt"
check "--help exits 0" "$?" 0
check "--help has the Exit codes block of every command" "$(grep -c '^Exit codes:$' "$tmp/help.txt")" 1
check "--help lists the scenarios" "$(grep -cE '^  (factory|home|health|trucks) ' "$tmp/help.txt")" 4
set -e

# ---- factory ----------------------------------------------------------------------------------
# 6 machines x 4 sensor nodes for 10 minutes, M003's bearing fails at minute 5 for 60 s.
"${GEN[@]}" factory --all --machines 6 --sensors 4 --duration 10m --seed 7 \
    --anomaly M003@+5m/60s >"$tmp/factory.lp"
check "factory lines" "$(wc -l <"$tmp/factory.lp")" $((6 + 6 * 4 * 600 + 10))
"${GEN[@]}" factory --all --machines 6 --sensors 4 --duration 10m --seed 7 \
    --anomaly M003@+5m/60s >"$tmp/factory2.lp"
check "factory is deterministic" "$(cmp -s "$tmp/factory.lp" "$tmp/factory2.lp" && echo same)" same
load factory-a "$tmp/factory.lp"
check "telemetry rows" "$(q 'SELECT count(*) FROM "factory-a".telemetry')" 14400
check "machines rows" "$(q 'SELECT count(*) FROM "factory-a".machines')" 6
check "production_counts rows" "$(q 'SELECT count(*) FROM "factory-a".production_counts')" 10
check "the anomalous machine vibrates most" \
    "$(q 'SELECT machine FROM "factory-a".telemetry ORDER BY vibration_rms DESC LIMIT 1')" M003
check "only M003 is above 10 mm/s" \
    "$(q 'SELECT group_concat(DISTINCT machine) FROM "factory-a".telemetry WHERE vibration_rms > 10')" M003
check "M003 is above 10 mm/s for the 60 s of the anomaly on all 4 nodes" \
    "$(q "SELECT count(*) FROM \"factory-a\".telemetry WHERE machine = 'M003' AND vibration_rms > 10
          AND ts >= ts('2026-01-01T00:05:00Z') AND ts < ts('2026-01-01T00:06:00Z')")" 240
check "the anomaly reports fail" \
    "$(q "SELECT count(*) FROM \"factory-a\".telemetry WHERE machine = 'M003' AND status = 'fail'
          AND ts >= ts('2026-01-01T00:05:00Z') AND ts < ts('2026-01-01T00:06:00Z')")" 240
check "telemetry joins the registry" \
    "$(q 'SELECT count(*) FROM "factory-a".telemetry t JOIN "factory-a".machines m USING (machine)')" 14400
check_range "parts produced in 10 minutes" \
    "$(q 'SELECT sum(good + scrap) FROM "factory-a".production_counts')" 200 1300

# ---- home -------------------------------------------------------------------------------------
"${GEN[@]}" home --duration 1h --start 2026-01-01T06:00:00Z >"$tmp/home.lp"
check "home lines" "$(wc -l <"$tmp/home.lp")" $((360 * 7))
load home-42 "$tmp/home.lp"
"${GEN[@]}" home --duration 1h --start 2026-01-01T07:00:00Z --format csv --product energy \
    >"$tmp/energy.csv"
check "energy CSV lines" "$(wc -l <"$tmp/energy.csv")" 361
load_csv home-42 energy "$tmp/energy.csv"
check "climate rows" "$(q 'SELECT count(*) FROM "home-42".climate')" 2160
check "energy rows (line protocol + CSV)" "$(q 'SELECT count(*) FROM "home-42".energy')" 720
check "six rooms" "$(q 'SELECT count(DISTINCT room) FROM "home-42".climate')" 6
check "heating runs in the morning" \
    "$(q 'SELECT count(*) > 0 FROM "home-42".climate WHERE heating')" 1
check "rooms follow their setpoints (mean deviation under 1.5 degC)" \
    "$(q 'SELECT abs(avg(temperature - setpoint)) < 1.5 FROM "home-42".climate')" 1
check "the energy register grows" \
    "$(q 'SELECT max(energy_kwh) > min(energy_kwh) FROM "home-42".energy')" 1

# ---- healthcare -------------------------------------------------------------------------------
# 8 patients for 10 minutes; P000003 desaturates at minute 2 for 60 s; 1 % glitches.
"${GEN[@]}" health --all --patients 8 --duration 10m --glitch-rate 0.01 \
    --desaturate P000003@+2m >"$tmp/health.lp"
check "health lines" "$(wc -l <"$tmp/health.lp")" $((8 + 8 * 600))
glitches=$(grep -cE 'heart_rate=(0|400)i|spo2=0i|systolic=300i' "$tmp/health.lp" || true)
check_range "glitched readings generated" "$glitches" 20 80
load icu-3 "$tmp/health.lp"
check "vitals + quarantine = readings" \
    "$(q 'SELECT (SELECT count(*) FROM "icu-3".vitals) + (SELECT count(*) FROM "icu-3".vitals__quarantine)')" 4800
check "glitches are quarantined" "$(q 'SELECT count(*) FROM "icu-3".vitals__quarantine')" "$glitches"
check "only the desaturating patient is below 90 % SpO2" \
    "$(q 'SELECT group_concat(DISTINCT patient_id) FROM "icu-3".vitals WHERE spo2 < 90')" P000003
check_range "P000003's readings below 90 % in its 60 s episode" \
    "$(q "SELECT count(*) FROM \"icu-3\".vitals WHERE patient_id = 'P000003' AND spo2 < 90
          AND ts >= ts('2026-01-01T00:02:00Z') AND ts < ts('2026-01-01T00:03:00Z')")" 55 60
check "spo2-low fired once, for the desaturating patient only" \
    "$(q "SELECT count(*) || '/' || sum(series LIKE '%P000003%') FROM \"icu-3\".alerts WHERE rule = 'spo2-low'")" 1/1
check "vibration-high fired for M003 only" \
    "$(q "SELECT count(*) = sum(series LIKE '%M003%') AND count(*) > 0 FROM \"factory-a\".alerts WHERE rule = 'vibration-high'")" 1
check "admissions rows" "$(q 'SELECT count(*) FROM "icu-3".admissions')" 8
check "every reading has an admission" \
    "$(q 'SELECT count(*) = (SELECT count(*) FROM "icu-3".vitals) FROM "icu-3".vitals v JOIN "icu-3".admissions a USING (patient_id)')" 1

# ---- trucks (TSBS iot) --------------------------------------------------------------------------
# With TSBS's irregularities: about 11 % of the entries go missing, some arrive late, 1 % lose
# a tag; an entry that lost its name has no key and goes to quarantine.
"${GEN[@]}" trucks --scale 20 --duration 30m >"$tmp/trucks.lp"
lines=$(wc -l <"$tmp/trucks.lp")
check_range "trucks lines (nominal 7200, less the missing)" "$lines" 6100 6700
noname=$(grep -vc '^[a-z]*,name=' "$tmp/trucks.lp" || true)
load fleet "$tmp/trucks.lp"
check "readings + diagnostics + quarantine = lines" \
    "$(q 'SELECT (SELECT count(*) FROM fleet.readings) + (SELECT count(*) FROM fleet.diagnostics)
             + (SELECT count(*) FROM fleet.readings__quarantine)
             + (SELECT count(*) FROM fleet.diagnostics__quarantine) AS n')" "$lines"
check "rows without a name are quarantined" \
    "$(q 'SELECT (SELECT count(*) FROM fleet.readings__quarantine) + (SELECT count(*) FROM fleet.diagnostics__quarantine)')" \
    "$noname"
# The regular form, one day later: every truck at every interval.
"${GEN[@]}" trucks --scale 20 --duration 30m --regular --start 2026-01-02T00:00:00Z \
    >"$tmp/trucks-regular.lp"
load fleet "$tmp/trucks-regular.lp"
check "regular readings" \
    "$(q "SELECT count(*) FROM fleet.readings WHERE time >= ts('2026-01-02T00:00:00Z')")" 3600
check "regular diagnostics" \
    "$(q "SELECT count(*) FROM fleet.diagnostics WHERE time >= ts('2026-01-02T00:00:00Z')")" 3600
# CSV of one product, two days later.
"${GEN[@]}" trucks --scale 20 --duration 30m --regular --start 2026-01-03T00:00:00Z \
    --format csv --product diagnostics >"$tmp/diagnostics.csv"
load_csv fleet diagnostics "$tmp/diagnostics.csv"
check "CSV diagnostics" \
    "$(q "SELECT count(*) FROM fleet.diagnostics WHERE time >= ts('2026-01-03T00:00:00Z')")" 3600
check "20 trucks" "$(q 'SELECT count(DISTINCT name) FROM fleet.readings')" 20
check "TSBS ranges hold" \
    "$(q 'SELECT count(*) FROM fleet.readings WHERE velocity < 0 OR velocity > 100 OR latitude < -90 OR latitude > 90')" 0
check_range "TSBS last-loc: trucks of the East fleet with a location" \
    "$(q "SELECT count(*) FROM (SELECT name, max(time) FROM fleet.readings WHERE fleet = 'East' AND latitude IS NOT NULL GROUP BY name)")" 1 20

if ! kill -0 "$pid" 2>/dev/null; then
    bad "meshd died"
    cat "$tmp/meshd.log"
fi
if [ "$fails" -ne 0 ]; then
    echo "# $fails check(s) failed"
    tail -n 20 "$tmp/meshd.log"
    exit 1
fi
echo "# all checks passed"
