#!/usr/bin/env bash
# The benchmark harness at a tiny scale (bench/run.sh --smoke: 5 trucks x 10 min, one run of
# everything), so it does not rot: it builds its helpers, generates the data, starts meshd,
# InfluxDB and PostgreSQL on loopback, loads all four systems with 1 and 4 clients, runs the
# queries, checks every system stored every row and gave the same answers, writes the tables
# and stops everything. No timing is asserted. Skipped (exit 0) when the peers are not
# installed (scripts/setup.sh --bench installs them).
set -euo pipefail
B=${MESH_BUILD:?}; S=${MESH_SRC:?}
if ! command -v influxd >/dev/null 2>&1; then
  echo "SKIP: influxd not installed (scripts/setup.sh --bench)"; exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "SKIP: PostgreSQL server not installed (scripts/setup.sh --bench)"; exit 0
fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
chmod 755 "$T" # PostgreSQL runs as the postgres user in $T/tmp
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$T/tmp" # the harness's servers run in $T/tmp/meshd-bench.*: found below if left behind
rc=0
TMPDIR=$T/tmp "$S/bench/run.sh" --smoke --meshd-build "$B" --work "$T/work" --out "$T/results" || rc=$?
[ $rc = 0 ] || fail "bench/run.sh --smoke exited with $rc"

# what a run must leave behind
for f in summary.json table.md ingest.csv queries.csv raw/machine.json raw/data.json; do
  [ -s "$T/results/$f" ] || fail "missing $f"
done
[ ! -s "$T/results/problems.txt" ] || fail "problems: $(cat "$T/results/problems.txt")"
for s in meshd influxdb postgres sqlite; do
  for c in 1 4; do
    [ -s "$T/results/raw/ingest-$s-c$c-r1.json" ] || fail "no ingest result for $s with $c clients"
  done
  [ -s "$T/results/raw/query-$s.json" ] || fail "no query results for $s"
  [ -s "$T/results/raw/size-$s.json" ] || fail "no size for $s"
done
/usr/bin/python3 - "$T/results/summary.json" <<'PY' || fail "summary.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert all(d["answers_agree"].values()) and len(d["answers_agree"]) == 5, d["answers_agree"]
for k, v in d["ingest"].items():
    assert v["median"] > 0 and v["rows"] == d["data"]["lp_rows"], (k, v)
PY
# nothing left running, and the temporary directories removed
if pgrep -f "$T/tmp/" >/dev/null 2>&1; then fail "processes left behind: $(pgrep -af "$T/tmp/")"; fi
[ -z "$(ls -A "$T/tmp")" ] || fail "temporary directories left behind: $(ls "$T/tmp")"
echo "bench smoke: ok"
