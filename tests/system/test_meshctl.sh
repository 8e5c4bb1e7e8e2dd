#!/bin/bash
# test_meshctl.sh - meshctl against a real meshd: every command, every output format, the
# exit codes, settings precedence, URL failover, retries and the generated reference.
#
# Starts meshd on a free loopback port (--listen 127.0.0.1:0, address read from its log) in a
# temporary directory, plus two tiny Python stand-ins for failure cases (a server that never
# answers, one that answers 503 twice). Any failed expectation stops the test with a message.
#
# Environment (set by ctest): MESH_BUILD (build directory), MESH_SRC (source directory).
set -euo pipefail

SRC=${MESH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${MESH_BUILD:-$SRC/build/debug}
MESHD=$BUILD/meshd
CTL=$BUILD/meshctl
TOKEN=meshctl-test-token-0123456789

tmp=$(mktemp -d /tmp/meshctl-test.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- helpers --------------------------------------------------------------------------------

fail() {
    echo "FAIL - $*" >&2
    if [ -s "$tmp/out" ]; then
        echo "--- stdout:" >&2
        head -c 4000 "$tmp/out" >&2
    fi
    if [ -s "$tmp/err" ]; then
        echo "--- stderr:" >&2
        head -c 4000 "$tmp/err" >&2
    fi
    exit 1
}
# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
    if [ "$2" != "$3" ]; then
        fail "$1: got '$2', expected '$3'"
    fi
    echo "ok   - $1"
}
# run EXPECTED_RC ARGS...: runs meshctl, stdout to $tmp/out, stderr to $tmp/err
run() {
    local want=$1
    shift
    local rc=0
    "$CTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    cat "$tmp/out" "$tmp/err" >>"$tmp/all-output"
    if [ "$rc" != "$want" ]; then
        fail "meshctl $*: exit $rc, expected $want"
    fi
}
# run_in EXPECTED_RC INPUT_FILE ARGS...: the same with stdin from a file
run_in() {
    local want=$1 input=$2
    shift 2
    local rc=0
    "$CTL" "$@" >"$tmp/out" 2>"$tmp/err" <"$input" || rc=$?
    cat "$tmp/out" "$tmp/err" >>"$tmp/all-output"
    if [ "$rc" != "$want" ]; then
        fail "meshctl $* < $input: exit $rc, expected $want"
    fi
}
# expect_in NAME FILE TEXT: FILE holds TEXT (fixed string)
expect_in() {
    if ! grep -qF -- "$3" "$2"; then
        fail "$1: '$3' not in $(basename "$2")"
    fi
    echo "ok   - $1"
}
expect_not_in() {
    if grep -qF -- "$3" "$2"; then
        fail "$1: '$3' found in $(basename "$2")"
    fi
    echo "ok   - $1"
}
# q SQL: the single value a query returns (CSV, second line)
q() {
    "$CTL" query --format csv "$1" 2>>"$tmp/all-output" | tr -d '\r' | sed -n 2p
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- start meshd ----------------------------------------------------------------------------

: >"$tmp/meshd.log" # before meshd: the first read may come before its redirection
"$MESHD" --data-dir "$tmp/data" --listen 127.0.0.1:0 --admin-token "$TOKEN" \
    >"$tmp/meshd.out" 2>>"$tmp/meshd.log" &
pids+=($!)
addr=""
for _ in $(seq 1 150); do
    addr=$(sed -n 's/.*listening on https:\/\/\([^ "]*\).*/\1/p' "$tmp/meshd.log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/meshd.log" >&2; fail "meshd did not start"; }
URL=https://$addr
# the node's generated certificate, pinned by the fingerprint it logs at start
PIN=$(sed -n 's/.*fingerprint \(sha256:[0-9a-f]\{64\}\).*/\1/p' "$tmp/meshd.log" | head -n 1)
[ -n "$PIN" ] || fail "meshd logged no certificate fingerprint"
echo "meshd at $URL ($PIN)"

# a clean environment: nothing from the caller's settings or config file
unset MESH_URL MESH_TOKEN MESH_TOKEN_FILE MESH_CONFIG MESH_TIMEOUT MESH_CACERT MESH_PIN MESH_CERT MESH_KEY
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/xdg
mkdir -p "$HOME"
export MESH_URL=$URL MESH_TOKEN=$TOKEN MESH_PIN=$PIN

# ---- help, version, usage errors ------------------------------------------------------------

run 0 --help
expect_in "meshctl --help lists commands" "$tmp/out" "product quarantine"
expect_in "meshctl --help documents exit codes" "$tmp/out" "7  unavailable"
run 0 help
expect_in "meshctl help" "$tmp/out" "Usage: meshctl"
for cmd in status "domain create" "domain list" "domain show" "domain delete" "product apply" \
    "product list" "product show" "product export" "product history" "product diff" \
    "product delete" "product quarantine" \
    ingest query catalog; do
    # shellcheck disable=SC2086
    run 0 $cmd --help
    expect_in "meshctl $cmd --help" "$tmp/out" "Usage: meshctl $cmd"
    expect_in "meshctl $cmd --help has exit codes" "$tmp/out" "Exit codes:"
    # shellcheck disable=SC2086
    run 0 help $cmd
done
run 0 domain --help
expect_in "group help" "$tmp/out" "domain delete"
rc=0
"$CTL" generate --help >"$tmp/out" 2>"$tmp/err" || rc=$?
if [ "$rc" != 0 ]; then
    expect_eq "generate without its module exits 2" "$rc" 2
    expect_in "generate says it is missing" "$tmp/err" "not available"
else
    echo "ok   - meshctl generate --help"
fi
run 0 --version
expect_in "version" "$tmp/out" "meshctl "
run 0 help --markdown
if ! diff -u "$SRC/docs/meshctl.md" "$tmp/out" >"$tmp/doc.diff"; then
    head -40 "$tmp/doc.diff" >&2
    fail "docs/meshctl.md differs from 'meshctl help --markdown' (regenerate it)"
fi
echo "ok   - docs/meshctl.md is the generated reference"

run 2
run 2 frob
expect_in "unknown command" "$tmp/err" "no command 'frob'"
run 2 domain frob
run 2 status --bogus
expect_in "unknown option" "$tmp/err" "unknown option '--bogus'"
run 2 domain create
expect_in "missing argument" "$tmp/err" "missing arguments"
run 2 domain create "Bad Name"
expect_in "bad domain name" "$tmp/err" "is not a domain name"
run 2 domain list --format yaml
run 2 domain create x --format json
run 2 product show nodot
run 2 --timeout soon status
run 2 query
run 2 ingest a.b -
expect_in "stdin needs --format" "$tmp/err" "give --format"
run 1 ingest a.b "$tmp/no-such-file.csv"

# ---- status ---------------------------------------------------------------------------------

run 0 status
expect_eq "status: url" "$(sed -n 's/^url  *//p' "$tmp/out")" "$URL"
expect_eq "status: ready" "$(sed -n 's/^ready  *//p' "$tmp/out")" "yes"
expect_eq "status: principal" "$(sed -n 's/^principal  *//p' "$tmp/out")" "admin"
run 0 status --format json
expect_eq "status json" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ready"])' <"$tmp/out")" "True"

# ---- auth and reachability ------------------------------------------------------------------

run 4 --token wrong-token-000000000000 status
expect_in "wrong token" "$tmp/err" "[UNAUTHENTICATED]"
MESH_TOKEN="" run 4 status
dead=$(free_port)
run 7 --url "https://127.0.0.1:$dead" status
expect_in "unreachable" "$tmp/err" "cannot reach meshd at https://127.0.0.1:$dead"
run 0 --url "https://127.0.0.1:$dead,$URL" status
expect_eq "failover to the second URL" "$(sed -n 's/^url  *//p' "$tmp/out")" "$URL"
run 2 --url "ftp://example.com" status

# a server that accepts and never answers: the idle timeout
stall_port=$(free_port)
python3 - "$stall_port" <<'EOF' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)
EOF
pids+=($!)
for _ in $(seq 1 50); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $stall_port)).close()" 2>/dev/null && break
    sleep 0.1
done
run 6 --url "http://127.0.0.1:$stall_port" --timeout 500ms status
expect_in "stalled server times out" "$tmp/err" "no answer from meshd"

# ---- domains --------------------------------------------------------------------------------

run 0 domain create factory --description "Plant A sensors" --owner ops@example.com \
    --owner data@example.com
expect_eq "domain create" "$(cat "$tmp/out")" "created domain factory"
run 5 domain create factory
expect_in "domain exists" "$tmp/err" "[CONFLICT]"
run 0 domain create scratch
run 0 domain list
expect_in "domain list" "$tmp/out" "Plant A sensors"
expect_eq "domain list header" "$(head -1 "$tmp/out" | tr -s ' ')" "NAME PRODUCTS ROWS STORAGE OWNERS DESCRIPTION"
run 0 domain list --format json
expect_eq "domain list json" "$(python3 -c 'import json,sys; print(sorted(d["name"] for d in json.load(sys.stdin)["domains"]))' <"$tmp/out")" "['factory', 'scratch']"
run 0 domain list --format csv
expect_eq "domain list csv header" "$(head -1 "$tmp/out" | tr -d '\r')" "name,products,rows,storage_bytes,owners,description"
expect_in "domain list csv owners" "$tmp/out" "ops@example.com;data@example.com"
run 0 domain show factory
expect_eq "domain show owners" "$(sed -n 's/^owners  *//p' "$tmp/out")" "ops@example.com, data@example.com"
run 3 domain show nowhere
expect_in "no such domain" "$tmp/err" "[NOT_FOUND]"
run 0 domain delete scratch
expect_eq "domain delete" "$(cat "$tmp/out")" "deleted domain scratch"
run 3 domain delete scratch

# ---- contracts and products -----------------------------------------------------------------

contract() { # VERSION [extra property lines]
    cat <<EOF
apiVersion: v3.1.0
kind: DataContract
id: urn:meshd:contract:factory.telemetry
name: telemetry
version: $1
status: active
domain: factory
tags: ['iot']
description:
  purpose: Temperature readings of the production line sensors.
schema:
  - name: readings
    physicalType: table
    logicalType: object
    description: One row per sensor reading.
    properties:
      - name: device
        logicalType: string
        required: true
        primaryKey: true
        primaryKeyPosition: 1
        description: Sensor id
      - name: ts
        logicalType: timestamp
        required: true
        primaryKey: true
        primaryKeyPosition: 2
      - name: temp
        logicalType: number
        description: Temperature
        logicalTypeOptions:
          minimum: -50
          maximum: 200
        customProperties:
          - property: unit
            value: C
EOF
    [ $# -lt 2 ] || printf '%s\n' "$2"
}
status_col='      - name: status
        logicalType: string
        classification: internal'
contract 1.0.0 >"$tmp/c1.yaml"
contract 1.1.0 "$status_col" >"$tmp/c2.yaml"
contract 1.2.0 >"$tmp/c3.yaml" # drops status: breaking without 2.0.0
cat >"$tmp/alarms.yaml" <<'EOF'
apiVersion: v3.1.0
kind: DataContract
id: urn:meshd:contract:factory.alarms
name: alarms
version: 1.0.0
status: active
domain: factory
tags: ['alerts']
description:
  purpose: Alarms raised by the line.
schema:
  - name: alarms
    physicalType: table
    logicalType: object
    description: Alarm events.
    customProperties:
      - property: onInvalid
        value: quarantine
    properties:
      - name: ts
        logicalType: timestamp
        required: true
        primaryKey: true
      - name: level
        logicalType: integer
        logicalTypeOptions:
          minimum: 1
          maximum: 5
EOF
sed 's/domain: factory/domain: nowhere/' "$tmp/c1.yaml" >"$tmp/nodomain.yaml"
printf 'apiVersion: [\n' >"$tmp/broken.yaml"

run 0 product apply "$tmp/c1.yaml"
expect_in "apply: created" "$tmp/out" "c1.yaml: created urn:meshd:contract:factory.telemetry 1.0.0 (factory.readings)"
expect_in "apply: change line" "$tmp/out" "  product factory.readings created"
run 0 product apply "$tmp/c1.yaml"
expect_in "apply: unchanged" "$tmp/out" "c1.yaml: unchanged"
run 0 product apply --dry-run "$tmp/c2.yaml"
expect_in "apply --dry-run: would be updated" "$tmp/out" "c2.yaml: would be updated urn:meshd:contract:factory.telemetry 1.1.0"
expect_in "apply --dry-run: the change" "$tmp/out" "column status: added"
run 0 product show factory.readings --format json
expect_in "apply --dry-run applied nothing" "$tmp/out" '"version":"1.0.0"'
run 0 product apply "$tmp/c2.yaml" "$tmp/alarms.yaml"
expect_in "apply: updated" "$tmp/out" "c2.yaml: updated urn:meshd:contract:factory.telemetry 1.1.0"
expect_in "apply: added column" "$tmp/out" "column status: added"
expect_in "apply: second file" "$tmp/out" "alarms.yaml: created"
run 5 product apply --dry-run "$tmp/c3.yaml"
expect_in "apply --dry-run: breaking refused" "$tmp/err" "column status: dropped (breaking)"
run 5 product apply "$tmp/c3.yaml"
expect_in "apply: breaking refused" "$tmp/err" "[BREAKING]"
expect_in "apply: breaking change listed" "$tmp/err" "column status: dropped (breaking)"
run 5 product apply "$tmp/c1.yaml"
expect_in "apply: older version" "$tmp/err" "[CONFLICT]"
run 2 product apply "$tmp/broken.yaml"
expect_in "apply: malformed YAML" "$tmp/err" "[PARSE]"
run 3 product apply "$tmp/nodomain.yaml"
run 1 product apply "$tmp/missing.yaml"
run_in 0 "$tmp/c2.yaml" product apply -
expect_in "apply from stdin" "$tmp/out" "(stdin): unchanged"

run 0 product list
expect_in "product list" "$tmp/out" "factory.readings"
expect_in "product list: second product" "$tmp/out" "factory.alarms"
run 0 product list --domain factory --format json
expect_eq "product list json" "$(python3 -c 'import json,sys; print(sorted(p["sql_name"] for p in json.load(sys.stdin)["products"]))' <"$tmp/out")" "['factory.alarms', 'factory.readings']"
run 0 product show factory.readings
expect_eq "product show: schema header" "$(grep '^NAME' "$tmp/out" | tr -s ' ')" "NAME TYPE REQUIRED KEY UNIT CONSTRAINTS DESCRIPTION CLASS"
expect_eq "product show: temp" "$(grep '^temp ' "$tmp/out" | tr -s ' ')" "temp number no C >= -50, <= 200 Temperature"
expect_eq "product show: ts" "$(grep '^ts ' "$tmp/out" | tr -s ' ')" "ts timestamp yes 2 time column"
expect_in "product show: contract" "$tmp/out" "urn:meshd:contract:factory.telemetry 1.1.0 (active, ODCS v3.1.0)"
expect_eq "product show: rows" "$(sed -n 's/^rows  *//p' "$tmp/out")" "0"
run 3 product show factory.nothing
run 0 product export factory.readings
expect_in "export: ODCS" "$tmp/out" "apiVersion: v3.1.0"
expect_in "export: schema" "$tmp/out" "- name: readings"
run 0 product export factory.alarms --whole
expect_in "export --whole" "$tmp/out" "urn:meshd:contract:factory.alarms"
run 0 product export factory.readings --version 1.0.0
expect_in "export --version: that version" "$tmp/out" 'version: "1.0.0"'
if grep -q "name: status" "$tmp/out"; then fail "export --version 1.0.0 holds the column 1.1.0 added"; fi
run 3 product export factory.readings --version 0.0.9
run 0 product history factory.readings
expect_eq "history: versions" "$(awk '$1 ~ /^1\./ {print $1}' "$tmp/out" | tr '\n' ' ')" "1.0.0 1.1.0 "
expect_in "history: current" "$tmp/out" "(current)"
run 0 product history factory.readings --format csv
expect_eq "history csv" "$(tr -d '\r' <"$tmp/out" | cut -d, -f1,4 | tr '\n' ' ')" "version,current 1.0.0,false 1.1.0,true "
run 3 product history factory.nothing
run 0 product diff factory.readings 1.0.0
expect_in "diff: summary" "$tmp/out" "factory.readings: 1.0.0 -> 1.1.0: 1 change, compatible with consumers"
expect_in "diff: the change" "$tmp/out" "  + column status: added"
run 0 product diff factory.readings 1.0.0 1.1.0 --fail-on-breaking
run 0 product diff factory.readings 1.1.0 1.0.0 --format json
expect_eq "diff json: backwards breaks" "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["breaking"], [c["change"] for c in d["changes"] if c["breaking"]])' <"$tmp/out")" "True ['column status: dropped']"
run 5 product diff factory.readings 1.1.0 1.0.0 --fail-on-breaking
expect_in "diff --fail-on-breaking: still printed" "$tmp/out" "  ! column status: dropped"
run 3 product diff factory.readings 9.9.9
run 2 product diff factory.readings

# ---- ingest ---------------------------------------------------------------------------------

python3 - "$tmp" <<'EOF'
import json, sys
d = sys.argv[1]
with open(f"{d}/r.csv", "w") as f:  # 12000 rows; row 8 has a quoted line break
    f.write("device,ts,temp,status\n")
    for i in range(12000):
        st = '"two\nlines"' if i == 7 else "ok"
        f.write(f"csv{i % 10},2026-01-01T00:00:00.{i:06d}Z,{20 + i % 50},{st}\n")
with open(f"{d}/r.ndjson", "w") as f:  # 3000 rows and a blank line
    for i in range(3000):
        f.write(json.dumps({"device": f"nd{i % 7}", "ts": f"2026-01-02T00:00:00.{i:06d}Z", "temp": 1.5}) + "\n")
        if i == 5:
            f.write("\n")
rows = [{"device": f"js{i % 7}", "ts": f"2026-01-03T00:00:00.{i:06d}Z", "temp": 2.5,
         "status": "a,]}\"[{ \\"} for i in range(2500)]
with open(f"{d}/r.json", "w") as f:  # 2500 rows, pretty-printed, tricky strings
    f.write("[\n" + ",\n".join(json.dumps(r, indent=1) for r in rows) + "\n]\n")
with open(f"{d}/r.lp", "w") as f:  # 1500 rows and a comment
    f.write("# line protocol\n")
    for i in range(1500):
        f.write(f"readings,device=lp{i % 5} temp={i % 90}.5 {1767225600000000000 + i * 1000000000}\n")
with open(f"{d}/i.lp", "w") as f:  # 700 rows for /write
    for i in range(700):
        f.write(f"readings,device=ix{i % 5} temp={i % 90}.5 {1767312000000000000 + i * 1000000000}\n")
with open(f"{d}/bad.csv", "w") as f:  # 7000 rows; file line 6102 is above the maximum
    f.write("device,ts,temp\n")
    for i in range(7000):
        f.write(f"bad{i},2026-01-05T00:00:00Z,{250 if i == 6100 else 21}\n")
with open(f"{d}/unclosed.csv", "w") as f:
    f.write('device,ts,temp\nu1,2026-01-06T00:00:00Z,"1\nu2,2026-01-06T00:00:01Z,2\n')
with open(f"{d}/alarms.csv", "w") as f:  # line 4 goes to the quarantine
    f.write("ts,level\n2026-01-07T00:00:00Z,1\n2026-01-07T00:00:01Z,2\n2026-01-07T00:00:02Z,9\n")
EOF

run 0 ingest factory.readings "$tmp/r.csv"
expect_in "ingest csv: summary" "$tmp/out" "factory.readings: 12000 rows accepted, 0 quarantined, 3 batches,"
expect_eq "ingest csv: rows" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'csv%'")" "12000"
expect_eq "ingest csv: quoted line break" "$(q "SELECT status FROM factory.readings WHERE device = 'csv7' AND status <> 'ok'" | tr -d '"')" "two"
run 0 ingest factory.readings "$tmp/r.ndjson" --batch-rows 1000
expect_in "ingest ndjson: summary" "$tmp/out" "3000 rows accepted, 0 quarantined, 3 batches"
expect_eq "ingest ndjson: rows" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'nd%'")" "3000"
run 0 ingest factory.readings "$tmp/r.json" --batch-rows 1000
expect_in "ingest json: summary" "$tmp/out" "2500 rows accepted, 0 quarantined, 3 batches"
expect_eq "ingest json: rows" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'js%'")" "2500"
expect_eq "ingest json: strings" "$(q "SELECT count(*) FROM factory.readings WHERE status = 'a,]}\"[{ \\'")" "2500"
run 0 ingest factory.readings "$tmp/r.lp" --batch-rows 1000
expect_in "ingest lp: summary" "$tmp/out" "1500 rows accepted, 0 quarantined, 2 batches"
expect_eq "ingest lp: rows" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'lp%'")" "1500"
run 0 ingest factory "$tmp/i.lp" --influx --batch-rows 300
expect_in "ingest --influx: summary" "$tmp/out" "factory: 700 rows accepted, 0 quarantined, 3 batches"
expect_eq "ingest --influx: rows" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'ix%'")" "700"
run_in 0 "$tmp/r.lp" ingest factory.readings - --format lp -q
expect_eq "ingest stdin, quiet" "$(cat "$tmp/out" "$tmp/err")" ""
run 0 ingest factory.readings "$tmp/r.lp" --run-id rerun-1
run 0 ingest factory.readings "$tmp/r.lp" --run-id rerun-1
expect_in "rerun with the same run id skips applied batches" "$tmp/out" "1 already applied before"

run 2 ingest factory.readings "$tmp/bad.csv"
expect_in "refused batch: code" "$tmp/err" "[VALIDATION] batch 2 (lines 5002-7001 of"
expect_in "refused batch: message" "$tmp/err" "1 of 2000 rows violate the contract"
expect_in "refused batch: the line in the file" "$tmp/err" "line 6102 (line 1102 of the batch), column temp: value 250 is above the maximum 200"
expect_in "refused batch: summary" "$tmp/out" "5000 rows accepted, 0 quarantined, 1 batch,"
expect_eq "refused batch: the batch before it stays" "$(q "SELECT count(*) FROM factory.readings WHERE device LIKE 'bad%'")" "5000"
run 2 ingest factory.readings "$tmp/bad.csv" --continue --batch-rows 3000
expect_in "--continue: summary" "$tmp/out" "6000 rows accepted, 0 quarantined, 2 batches"
expect_in "--continue: refused count" "$tmp/out" "1 refused"
run 2 ingest factory.readings "$tmp/unclosed.csv"
expect_in "unclosed quote" "$tmp/err" "line 2: a quoted field is never closed"
run 3 ingest factory.nothing "$tmp/r.csv"

run 0 ingest factory.alarms "$tmp/alarms.csv"
expect_in "quarantine: summary" "$tmp/out" "2 rows accepted, 1 quarantined"
expect_in "quarantine: the line" "$tmp/err" "line 4 (line 4 of the batch), column level"
run 0 product quarantine factory.alarms
expect_in "product quarantine: reason" "$tmp/out" "above the maximum 5"
run 0 product quarantine factory.alarms --format json --limit 1
expect_eq "product quarantine json" "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["rows"]))' <"$tmp/out")" "1"
run 2 product quarantine factory.alarms --limit 0

# a node that answers 503 twice: the batch is retried with the same Idempotency-Key
busy_port=$(free_port)
python3 - "$busy_port" "$tmp/keys" <<'EOF' &
import http.server, json, sys
seen = []
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        seen.append(self.headers.get("Idempotency-Key"))
        with open(sys.argv[2], "w") as f:
            f.write("\n".join(seen) + "\n")
        if len(seen) < 3:
            code, body = 503, {"error": {"code": "BUSY", "message": "try again"}}
        else:
            code, body = 200, {"accepted": 2, "quarantined": 0, "duplicate": False}
        b = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
pids+=($!)
for _ in $(seq 1 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $busy_port)).close()" 2>/dev/null && break
    sleep 0.1
done
printf 'device,ts\na,2026-01-01T00:00:00Z\nb,2026-01-01T00:00:00Z\n' >"$tmp/two.csv"
run 0 --url "http://127.0.0.1:$busy_port" ingest f.r "$tmp/two.csv"
expect_in "503: retried" "$tmp/err" "[BUSY] batch 1"
expect_eq "503: three tries" "$(wc -l <"$tmp/keys")" "3"
expect_eq "503: one Idempotency-Key" "$(sort -u "$tmp/keys" | wc -l)" "1"
expect_in "503: key shape" "$tmp/keys" "meshctl-"

# ---- query ----------------------------------------------------------------------------------

sql="SELECT device, temp, ts FROM factory.readings WHERE device = 'csv3' ORDER BY ts LIMIT 2"
run 0 query --format json "$sql"
expect_eq "query json" "$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["row_count"], j["rows"][0])' <"$tmp/out")" \
    "2 ['csv3', 23.0, '2026-01-01T00:00:00.000003Z']"
run 0 query "$sql" # stdout is not a terminal: json
expect_in "query default format off a terminal" "$tmp/out" '"columns":'
run 0 query --format csv "$sql"
expect_eq "query csv" "$(tr -d '\r' <"$tmp/out")" "device,temp,ts
csv3,23.0,2026-01-01T00:00:00.000003Z
csv3,33.0,2026-01-01T00:00:00.000013Z"
run 0 query --format ndjson --time-format ns "$sql"
expect_eq "query ndjson, ns" "$(head -1 "$tmp/out")" '{"device":"csv3","temp":23.0,"ts":1767225600000003000}'
run 0 query --format table "SELECT 'a' AS s, 5 AS n, NULL AS z UNION ALL SELECT 'bbb', 12345, 1.5"
expect_eq "query table" "$(cat "$tmp/out")" "s        n     z
---  -----  ----
a        5  NULL
bbb  12345   1.5
(2 rows, $(sed -n 's/^(2 rows, \(.*\) ms)$/\1/p' "$tmp/out") ms)"
run 0 --format table query "$sql"
expect_eq "query table: shape" "$(sed -n 1,2p "$tmp/out" | tr -s ' ')" "device temp ts
------ ---- ---------------------------"
expect_in "query table: footer" "$tmp/out" "(2 rows, "
echo "SELECT count(*) AS n FROM factory.alarms" >"$tmp/q.sql"
run 0 query -f "$tmp/q.sql" --format csv
expect_eq "query -f" "$(tr -d '\r' <"$tmp/out" | sed -n 2p)" "2"
run_in 0 "$tmp/q.sql" query - --format ndjson
expect_eq "query from stdin" "$(cat "$tmp/out")" '{"n":2}'
run 2 query "SELECT * FROM factory.nothing"
expect_in "query: no such table" "$tmp/err" "[PARSE]"
run 4 query "SELECT * FROM sqlite_master"
expect_in "query: outside the sandbox" "$tmp/err" "[FORBIDDEN]"
endless="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
run 6 query --format json --max-rows 5 "$endless"
expect_in "query json: error after rows" "$tmp/err" "[LIMIT] the query failed after rows were sent"
expect_in "query json: rows before the error" "$tmp/out" '"rows":[[1],[2],[3],[4],[5]]'
run 6 query --format ndjson --max-rows 5 "$endless"
expect_eq "query ndjson: rows before the error" "$(grep -c '^{"x"' "$tmp/out")" "5"
run 6 query --format table --max-rows 5 "$endless"
expect_in "query table: error after rows" "$tmp/err" "[LIMIT]"
run 8 query --format csv --max-rows 100000 "$endless"
expect_in "query csv: cut short" "$tmp/err" "CSV cannot carry the reason"
run 6 query --format csv --timeout-ms 100 "SELECT count(*) FROM ($endless)"
expect_in "query: timeout" "$tmp/err" "[TIMEOUT]"

# ---- catalog --------------------------------------------------------------------------------

run 0 catalog temperature
expect_in "catalog: term" "$tmp/out" "factory.readings"
expect_not_in "catalog: term filters" "$tmp/out" "factory.alarms"
run 0 catalog --tag alerts
expect_in "catalog: tag" "$tmp/out" "factory.alarms"
run 0 catalog --classification internal --format csv
expect_eq "catalog: classification csv" "$(tr -d '\r' <"$tmp/out" | cut -d, -f1)" "product
factory.readings"
run 0 catalog --domain factory --format json
expect_eq "catalog json" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' <"$tmp/out")" "2"
run 0 catalog zzz-nothing
expect_in "catalog: nothing" "$tmp/out" "no products match"

# ---- settings: config file, environment, flags, token file ----------------------------------

mkdir -p "$XDG_CONFIG_HOME/meshctl"
printf '# test\nurl = %s\ntoken = %s\ntimeout = 30s\n' "$URL" "$TOKEN" >"$XDG_CONFIG_HOME/meshctl/config"
chmod 600 "$XDG_CONFIG_HOME/meshctl/config"
unset MESH_URL MESH_TOKEN
run 0 status
expect_eq "config file" "$(sed -n 's/^url  *//p' "$tmp/out")" "$URL"
expect_eq "config file: no warning when private" "$(cat "$tmp/err")" ""
chmod 644 "$XDG_CONFIG_HOME/meshctl/config"
run 0 status
expect_in "config file readable by others" "$tmp/err" "chmod 600"
chmod 600 "$XDG_CONFIG_HOME/meshctl/config"
MESH_TOKEN=wrong-token-000000000000 run 4 status # environment beats the file
MESH_TOKEN=wrong-token-000000000000 run 0 --token "$TOKEN" status # a flag beats both
echo "$TOKEN" >"$tmp/token"
MESH_TOKEN=wrong-token-000000000000 run 0 --token-file "$tmp/token" status
MESH_URL="http://127.0.0.1:$dead" run 7 status # environment beats the file for url too
run 2 --token x --token-file "$tmp/token" status
expect_in "token and token file at one level" "$tmp/err" "give both a token and a token file"
printf 'url = %s\nbogus = 1\n' "$URL" >"$tmp/bad.conf"
run 2 --config "$tmp/bad.conf" status
expect_in "config error names file:line" "$tmp/err" "bad.conf:2: unknown option 'bogus'"
run 1 --config "$tmp/none.conf" status
MESH_CONFIG="$tmp/bad.conf" run 2 status
export MESH_URL=$URL MESH_TOKEN=$TOKEN

# ---- deletes --------------------------------------------------------------------------------

# the quarantine: resubmit a fixed row, drop the rest
run 0 product quarantine factory.alarms --format json
qid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["id"])' <"$tmp/out")
run 2 product quarantine factory.alarms --resubmit "$qid"
expect_in "resubmit: a CSV row needs the fix" "$tmp/err" "give the fixed row as a JSON object"
run 2 product quarantine factory.alarms --resubmit "$qid" --row '{"ts":"2026-01-07T00:00:02Z","level":7}'
expect_in "resubmit: still invalid is refused" "$tmp/err" "above the maximum 5"
run 0 product quarantine factory.alarms --resubmit "$qid" --row '{"ts":"2026-01-07T00:00:02Z","level":5}'
expect_in "resubmit: written" "$tmp/out" "written (seq "
expect_eq "resubmit: the row is in the product" "$(q "SELECT level FROM factory.alarms WHERE ts = ts('2026-01-07T00:00:02Z')")" "5"
run 0 product quarantine factory.alarms
expect_in "resubmit: the quarantine is empty" "$tmp/out" "no quarantined rows"
run 3 product quarantine factory.alarms --resubmit "$qid" --row '{"ts":"2026-01-07T00:00:02Z","level":5}'
run 2 product quarantine factory.alarms --drop x
run 2 product quarantine factory.alarms --drop 1 --drop-all
run 0 product quarantine factory.alarms --drop-all
expect_in "drop-all" "$tmp/out" "dropped 0 quarantined rows"
run 0 product delete factory.alarms
expect_eq "product delete" "$(cat "$tmp/out")" "deleted product factory.alarms"
run 3 product delete factory.alarms
run 5 domain delete factory
expect_in "domain with products" "$tmp/err" "[CONFLICT]"
run 0 domain delete factory --force
run 0 domain list --format json
expect_eq "all gone" "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["domains"]))' <"$tmp/out")" "0"

# ---- the token never shows ------------------------------------------------------------------

expect_not_in "the token is never printed" "$tmp/all-output" "$TOKEN"

echo "all meshctl tests passed"
