#!/usr/bin/env bash
# bench/run.sh - meshd against InfluxDB 1.6, PostgreSQL 15 and a raw SQLite row store, side by
# side on this machine, in one run (issue 3). See BENCHMARKS.md for what is measured and how.
#
#   bench/run.sh                      default: 100 trucks x 6 h at 10 s (~390k rows), 3 runs, ~4 min
#   bench/run.sh --smoke              5 trucks x 10 min, 1 run of everything; fails on any error
#   bench/run.sh --scale 1000 --hours 16    ~10.4M rows: 4.1 GB of data in bench/build, up to 2 GB
#                                     in $TMPDIR, about 45 min with --runs 1 on 2 cores
#
# Options:
#   --scale N            trucks (default 100)              --hours H    hours of data (default 6)
#   --duration D         the generator's duration instead of --hours (10m, 6h, 2d)
#   --seed S             generator seed (default 42)       --runs N     ingest runs (default 3)
#   --query-runs N       timed runs per query after one warm-up (default 15)
#   --clients "1 4"      concurrent clients for ingest     --batch N    lines per request (5000)
#   --systems "meshd influxdb postgres sqlite"             the systems, in this order
#   --generator auto|meshctl|bench   `meshctl generate trucks` when it exists (auto), else
#                        bench/gen_trucks.c
#   --meshd-build DIR    use DIR/meshd and DIR/meshctl instead of building build/release
#   --meshctl PATH       the meshctl whose generator makes the data (default: the one built)
#   --meshd-args "..."   extra meshd flags (for experiments: "--sync full")
#   --meshd-no-last      ask meshd the latest-per-truck and hourly queries in plain SQL, not
#                        from __last and __agg
#   --http-client lean|stdlib  how meshd and InfluxDB are asked: a socket reading only the
#                        status, Content-Length and chunks (lean, default) or http.client
#   --out DIR            results directory (default bench/results/<UTC timestamp>)
#   --work DIR           helper programs and the cached data (default bench/build)
#   --publish            also copy the plot to bench/ingest.png (the one BENCHMARKS.md shows)
#   --keep               keep the temporary data directories (printed at the end)
#
# Every system is started here on 127.0.0.1 in a temporary directory and stopped at the end
# (also on Ctrl-C or an error: the EXIT trap). Needs: influxd (influxdb), PostgreSQL 15
# (postgresql), gnuplot (gnuplot-nox), /usr/bin/python3 with python3-psycopg2, cc, libcurl and
# libsqlite3 headers: `scripts/setup.sh --bench` installs them.
#
# Exit status: 0 all went well; 1 an error (a server did not start, a write was refused, ...);
# 3 the run finished but something is wrong with the results (rows missing after a load, or
# the systems' query answers differ): the problems are printed and kept in problems.txt.
set -euo pipefail

# Ctrl-C: bash acts on SIGINT only when its foreground child died of it, not when the child
# handled it (psql cancels its query and exits normally; servers shut down on SIGINT in the
# middle of a measurement). So the run happens in its own session, and this outer shell turns
# Ctrl-C (or a SIGTERM) into a SIGTERM to that whole session, then waits for its cleanup
# (EXIT trap below: every server stopped, the temporary directories removed).
if [ "${MESHD_BENCH_INNER:-}" != 1 ]; then
  MESHD_BENCH_INNER=1 setsid "$0" "$@" &
  inner=$! status=0 signalled=""
  trap 'signalled=130; echo "run.sh: interrupted: stopping everything" >&2; kill -TERM -- -"$inner" 2>/dev/null || true' INT
  trap 'signalled=143; echo "run.sh: terminated: stopping everything" >&2; kill -TERM -- -"$inner" 2>/dev/null || true' TERM HUP
  wait "$inner" || status=$?
  while kill -0 "$inner" 2>/dev/null; do wait "$inner" || status=$?; done
  exit "${signalled:-$status}"
fi

# The rest is one function, parsed whole before it runs, so editing this file during a run
# cannot change the run (bash reads a script as it goes).
main() {
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
PY=/usr/bin/python3

SCALE=100 DURATION=6h SEED=42 RUNS=3 QRUNS=15 CLIENTS="1 4" BATCH=5000
SYSTEMS="meshd influxdb postgres sqlite" GENERATOR=auto MESHD_BUILD="" MESHD_ARGS="" GEN_MESHCTL=""
OUT="" PUBLISH=0 KEEP=0 SMOKE=0 WORK=$BENCH/build QUERY_ARGS=()
TOKEN="bench-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1; SCALE=5; DURATION=10m; RUNS=1; QRUNS=1 ;;
    --scale) SCALE=$2; shift ;;
    --hours) DURATION="${2}h"; shift ;;
    --duration) DURATION=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --query-runs) QRUNS=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --generator) GENERATOR=$2; shift ;;
    --meshd-build) MESHD_BUILD=$2; shift ;;
    --meshd-args) MESHD_ARGS=$2; shift ;;
    --meshctl) GEN_MESHCTL=$2; shift ;;
    --meshd-no-last) QUERY_ARGS+=(--meshd-no-last) ;;
    --http-client) QUERY_ARGS+=(--http-client "$2"); shift ;;
    --out) OUT=$2; shift ;;
    --work) WORK=$2; shift ;;
    --publish) PUBLISH=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
  shift
done
[[ "$SCALE" =~ ^[0-9]+$ && "$RUNS" =~ ^[0-9]+$ && "$QRUNS" =~ ^[0-9]+$ && "$SEED" =~ ^[0-9]+$ ]] \
  || { echo "run.sh: --scale, --seed, --runs and --query-runs take whole numbers" >&2; exit 1; }
for s in $SYSTEMS; do
  case $s in meshd|influxdb|postgres|sqlite) ;; *) echo "run.sh: unknown system $s" >&2; exit 1 ;; esac
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
problem() { log "PROBLEM: $*"; echo "$*" >> "$OUT/problems.txt"; }
now_ns() { date +%s%N; }

# ---- prerequisites ------------------------------------------------------------------------
PGBIN=""
for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
  [ -x "$d/postgres" ] && { PGBIN=$d; break; }
done
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2 (scripts/setup.sh --bench)"; }
for s in $SYSTEMS; do
  case $s in
    influxdb) need influxd "package influxdb" ;;
    postgres) [ -n "$PGBIN" ] || die "PostgreSQL server not found (package postgresql)"
              need psql "package postgresql-client"
              $PY -c 'import psycopg2' 2>/dev/null || die "python3-psycopg2 missing (scripts/setup.sh --bench)" ;;
  esac
done
need cc "package build-essential"; need curl "package curl"; need du coreutils
[ -x $PY ] || die "$PY missing (package python3)"
[ "$SMOKE" = 1 ] || need gnuplot "package gnuplot-nox"

if [ -z "$OUT" ]; then
  if [ "$SMOKE" = 1 ]; then OUT=$WORK/results-smoke/$(date -u +%Y%m%dT%H%M%SZ)
  else OUT=$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ); fi
fi
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/problems.txt"

# ---- cleanup: no process left behind ----------------------------------------------------------
RUNTMP=$(mktemp -d "${TMPDIR:-/tmp}/meshd-bench.XXXXXX")
chmod 755 "$RUNTMP" # the postgres user must reach its cluster
if [ "$(id -u)" = 0 ] && [[ " $SYSTEMS " == *" postgres "* ]] && ! runuser -u postgres -- test -x "$RUNTMP"; then
  rmdir "$RUNTMP" # a parent of $TMPDIR is closed to the postgres user: use /tmp
  RUNTMP=$(mktemp -d /tmp/meshd-bench.XXXXXX); chmod 755 "$RUNTMP"
fi
SERVER_PIDS=()      # meshd, influxd, memwatch: our children
PG_RUNNING=()       # PostgreSQL data directories with a running postmaster
# Runs a command as the postgres user, in the background and waited for: `wait` returns at once
# on a trapped signal (a foreground command would first run to its end), and cleanup stops it.
AS_PG_PID=""
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@" & else "$@" & fi
  AS_PG_PID=$!
  local rc=0; wait "$AS_PG_PID" || rc=$?
  AS_PG_PID=""; return $rc
}

stop_pid() { # pid [seconds]: SIGTERM, then SIGKILL after the grace period
  local pid=$1 grace=${2:-30} i=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $i -lt $((grace * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop in ${grace}s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
forget_pid() { local p rest=(); for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done; SERVER_PIDS=("${rest[@]}"); }
pg_stop() { # datadir
  as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 || {
    local pid; pid=$(head -1 "$1/postmaster.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null || true
  }
  local p rest=(); for p in "${PG_RUNNING[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done; PG_RUNNING=("${rest[@]}")
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ $rc = 0 ] || [ $rc = 3 ] || echo "this run did not finish (exit status $rc)" > "$OUT/INCOMPLETE"
  local p
  [ -z "$AS_PG_PID" ] || stop_pid "$AS_PG_PID" 10
  for p in "${PG_RUNNING[@]}"; do pg_stop "$p"; done
  for p in "${SERVER_PIDS[@]}"; do stop_pid "$p" 10; done
  if [ "$KEEP" = 1 ]; then log "kept temporary data in $RUNTMP"; else rm -rf "$RUNTMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- build ------------------------------------------------------------------------------------
if [ -n "$MESHD_BUILD" ]; then
  MESHD=$MESHD_BUILD/meshd MESHCTL=$MESHD_BUILD/meshctl
else
  log "building meshd (cmake --preset release)"
  (cd "$REPO" && cmake --preset release >/dev/null && cmake --build build/release >/dev/null) \
    || die "meshd build failed (cd $REPO && cmake --preset release && cmake --build build/release)"
  MESHD=$REPO/build/release/meshd MESHCTL=$REPO/build/release/meshctl
fi
[ -x "$MESHD" ] || die "$MESHD not found"
[ -z "$GEN_MESHCTL" ] || MESHCTL=$GEN_MESHCTL
mkdir -p "$WORK"
HB=$(cd "$WORK" && pwd)
CFLAGS="-std=c11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wno-format-truncation"
build_helper() { # name libs...
  local name=$1; shift
  if [ ! -x "$HB/$name" ] || [ "$BENCH/$name.c" -nt "$HB/$name" ]; then
    cc $CFLAGS -o "$HB/$name.tmp" "$BENCH/$name.c" "$@" || die "cc $name.c failed"
    mv "$HB/$name.tmp" "$HB/$name"
  fi
}
build_helper loader -lcurl -lpthread
build_helper sqlite_rowstore -lsqlite3 -lpthread
build_helper gen_trucks -lm

# ---- data -------------------------------------------------------------------------------------
if [ "$GENERATOR" = auto ]; then
  gen_help=$([ -x "$MESHCTL" ] && "$MESHCTL" generate --help 2>&1 || true)
  if grep -q trucks <<<"$gen_help"; then GENERATOR=meshctl; else GENERATOR=bench; fi
fi
case $GENERATOR in
  meshctl) GEN=("$MESHCTL" generate trucks) ;;
  bench) GEN=("$HB/gen_trucks" trucks) ;;
  *) die "--generator takes auto, meshctl or bench" ;;
esac
GENSUM=$(sha256sum "${GEN[0]}" | cut -c1-10)
DATA=$HB/data/trucks-$SCALE-$DURATION-seed$SEED-$GENERATOR-$GENSUM
gen() { "${GEN[@]}" --scale "$SCALE" --duration "$DURATION" --interval 10s --seed "$SEED" "$@"; }
if [ ! -f "$DATA/.complete" ]; then
  log "generating data with $GENERATOR: $SCALE trucks x $DURATION at 10 s, seed $SEED"
  rm -rf "$DATA"; mkdir -p "$DATA"
  gen --format lp > "$DATA/fleet.lp" || die "generator failed (lp)"
  for p in readings diagnostics; do
    gen --format csv --product $p > "$DATA/$p.csv" || die "generator failed (csv $p)"
    head -1 "$DATA/$p.csv" | grep -q '^time,' || die "$p.csv: the header must start with time"
  done
  # facts about the data: rows per product, rows with a key (a name tag), time range, and the
  # truck with the newest reading (its last hour is the "one truck" query)
  awk -v out="$DATA/facts.json" '
    { split($1, a, ","); m = a[1]; total[m]++
      keyed_line = ($1 ~ /,name=/); if (keyed_line) keyed[m]++
      if (m == "readings" && keyed_line) {
        t = "" $NF
        if (tmin == "" || (length(t) < length(tmin) || (length(t) == length(tmin) && t < tmin))) tmin = t
        if (tmax == "" || (length(t) > length(tmax) || (length(t) == length(tmax) && t > tmax))) {
          tmax = t; for (i in a) if (a[i] ~ /^name=/) truck = substr(a[i], 6) } } }
    END { printf "{\"lp_rows\": %d, \"readings_rows\": %d, \"diagnostics_rows\": %d, \"readings_keyed\": %d, \"diagnostics_keyed\": %d, \"tmin\": %s, \"tmax\": %s, \"truck\": \"%s\"}\n",
          NR, total["readings"], total["diagnostics"], keyed["readings"], keyed["diagnostics"], tmin, tmax, truck > out }' "$DATA/fleet.lp"
  for p in readings diagnostics; do
    [ "$(($(wc -l < "$DATA/$p.csv") - 1))" = "$($PY -c "import json;print(json.load(open('$DATA/facts.json'))['${p}_rows'])")" ] \
      || die "the generator's CSV of $p and its line protocol do not hold the same number of rows"
  done
  sha256sum "$DATA/fleet.lp" | cut -c1-16 > "$DATA/fleet.lp.sha256"
  touch "$DATA/.complete"
fi
for n in $CLIENTS; do # the parts of the CSV files for n parallel COPY streams (no header)
  [ "$n" -gt 1 ] && [ ! -f "$DATA/parts-$n/.complete" ] || continue
  rm -rf "$DATA/parts-$n"; mkdir -p "$DATA/parts-$n"
  for p in readings diagnostics; do
    tail -n +2 "$DATA/$p.csv" > "$DATA/parts-$n/$p.body"
    (cd "$DATA/parts-$n" && split -n "l/$n" -d -a 3 "$p.body" "$p." && rm "$p.body")
  done
  touch "$DATA/parts-$n/.complete"
done
fact() { $PY -c "import json,sys;print(json.load(open('$DATA/facts.json'))[sys.argv[1]])" "$1"; }
LP_ROWS=$(fact lp_rows)
CSV_ROWS=$(( $(fact readings_rows) + $(fact diagnostics_rows) ))
KEYED_R=$(fact readings_keyed) KEYED_D=$(fact diagnostics_keyed)
cp "$DATA/facts.json" "$OUT/raw/data.json"
log "data: $LP_ROWS rows ($(du -sh "$DATA/fleet.lp" | cut -f1) of line protocol) in $DATA"

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
vmhwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
wait_http() { # url expected-code seconds
  local i=0
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = "$2" ]; do
    i=$((i + 1)); [ $i -lt $(($3 * 20)) ] || return 1; sleep 0.05
  done
}
dir_kb() { du -sk "$1" | cut -f1; }
dir_bytes() { du -sb "$1" | cut -f1; }
jstr() { $PY -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# ---- meshd ------------------------------------------------------------------------------------
M_PID="" M_ADDR=""
meshd_start() { # dir
  mkdir -p "$1"
  local before; before=$(grep -c 'listening on http://' "$1/meshd.log" 2>/dev/null || true)
  # shellcheck disable=SC2086
  # plain HTTP (--tls off), like the peers: the comparison is of the stores, not of TLS.
  # Encryption at rest stays on (the default), with a KEK for this run given as users should
  # (from outside the data directory), so the numbers are those of an encrypted node.
  [ -n "${BENCH_KEK:-}" ] || BENCH_KEK=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  MESHD_KEK=$BENCH_KEK "$MESHD" --data-dir "$1/data" --listen 127.0.0.1:0 --tls off --admin-token "$TOKEN" $MESHD_ARGS \
    >> "$1/meshd.out" 2>> "$1/meshd.log" &
  M_PID=$!; SERVER_PIDS+=("$M_PID")
  local i=0
  until M_ADDR=$(grep -o 'listening on http://[^ ]*' "$1/meshd.log" 2>/dev/null | sed -n "$((${before:-0} + 1))s|.*http://||p") && [ -n "$M_ADDR" ]; do
    kill -0 $M_PID 2>/dev/null || die "meshd exited: $(tail -5 "$1/meshd.log")"
    i=$((i + 1)); [ $i -lt 300 ] || die "meshd did not start in 15 s"; sleep 0.05
  done
  wait_http "http://$M_ADDR/readyz" 200 30 || die "meshd not ready"
}
mcurl() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
meshd_prepare() {
  local code
  code=$(mcurl -o "$RUNTMP/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"name":"fleet","description":"TSBS iot benchmark"}' "http://$M_ADDR/v1/domains")
  [ "$code" = 201 ] || die "meshd: create domain: HTTP $code $(cat "$RUNTMP/resp")"
  code=$(mcurl -o "$RUNTMP/resp" -w '%{http_code}' -X POST -H 'Content-Type: application/yaml' \
    --data-binary @"$REPO/examples/trucks/trucks.odcs.yaml" "http://$M_ADDR/v1/contracts")
  [ "$code" = 201 ] || die "meshd: apply contract: HTTP $code $(cat "$RUNTMP/resp")"
}
meshd_sql() { # sql -> the first cell
  mcurl -X POST -H 'Content-Type: application/json' -d "{\"sql\": $(jstr "$1")}" "http://$M_ADDR/v1/query" \
    | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["rows"][0][0] if "rows" in d else "ERROR %s" % d)'
}
meshd_stop() { stop_pid "$M_PID" 60; forget_pid "$M_PID"; M_PID=""; }

# ---- InfluxDB ---------------------------------------------------------------------------------
I_PID="" I_PORT=""
influx_start() { # dir
  mkdir -p "$1"
  [ -f "$1/influxdb.conf" ] || {
    I_PORT=$(free_port); local rpc; rpc=$(free_port)
    cat > "$1/influxdb.conf" <<EOF
# generated by bench/run.sh: loopback only, everything in this directory, no auth
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$1/meta"
  logging-enabled = false
[data]
  dir = "$1/data"
  wal-dir = "$1/wal"
  query-log-enabled = false
  # after the load: snapshot the cache to TSM and compact fully once writes stop (defaults
  # 10m and 4h), so the size on disk is measured at rest; no effect while writes keep coming
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "2s"
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$I_PORT"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[retention]
  enabled = false
[shard-precreation]
  enabled = false
EOF
  }
  I_PORT=$(sed -n '/^\[http\]/,/^\[/ s/.*bind-address = "127.0.0.1:\([0-9]*\)".*/\1/p' "$1/influxdb.conf")
  influxd run -config "$1/influxdb.conf" >> "$1/influxd.log" 2>&1 &
  I_PID=$!; SERVER_PIDS+=("$I_PID")
  wait_http "http://127.0.0.1:$I_PORT/ping" 204 60 || die "influxd did not start: $(tail -5 "$1/influxd.log")"
}
influx_q() { # influxql -> raw JSON
  curl -sS -G "http://127.0.0.1:$I_PORT/query" --data-urlencode db=fleet --data-urlencode "q=$1"
}
influx_count() { # measurement -> rows with a name (see influx_queries in queries.py)
  influx_q "SELECT count(n) FROM (SELECT \"name\" AS n, load_capacity, fuel_capacity FROM \"$1\" WHERE \"name\" != '')" | $PY -c '
import json,sys; d=json.load(sys.stdin)["results"][0]
print(sum(v[1] for s in d.get("series", []) for v in s["values"]) if "error" not in d else "ERROR " + d["error"])'
}
influx_prepare() {
  local r; r=$(curl -sS -X POST "http://127.0.0.1:$I_PORT/query" --data-urlencode "q=CREATE DATABASE fleet")
  if grep -q error <<<"$r"; then die "influxdb: CREATE DATABASE failed: $r"; fi
  return 0
}
influx_settle() { # dir: wait until the WAL is snapshotted and compactions are over (max 180 s)
  local prev="" cur i=0 stable=0
  while [ $i -lt 180 ]; do
    cur=$(find "$1/data" "$1/wal" -type f -printf '%p %s\n' 2>/dev/null | sort)
    local walb; walb=$(find "$1/wal" -type f -name '*.wal' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    if [ "$walb" = 0 ] && ! grep -q '\.tmp ' <<<"$cur" && [ "$cur" = "$prev" ]; then
      stable=$((stable + 1)); [ $stable -ge 3 ] && return 0
    else stable=0; fi
    prev=$cur; sleep 1; i=$((i + 1))
  done
  problem "influxdb: WAL not flushed / compaction not finished after 180 s; size measured anyway"
}
influx_stop() { stop_pid "$I_PID" 60; forget_pid "$I_PID"; I_PID=""; }

# ---- PostgreSQL -------------------------------------------------------------------------------
P_PORT="" P_DIR=""
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$P_DIR" -p "$P_PORT" -U postgres -d postgres "$@"; }
pg_start() { # dir
  P_DIR=$1
  if [ ! -d "$1/data" ]; then
    mkdir -p "$1"; [ "$(id -u)" = 0 ] && chown postgres "$1"
    as_pg "$PGBIN/initdb" -D "$1/data" -U postgres --auth=trust -E UTF8 --no-locale >"$1/initdb.log" 2>&1 \
      || die "initdb failed: $(tail -5 "$1/initdb.log")"
    P_PORT=$(free_port); echo "$P_PORT" > "$1/port"
  fi
  P_PORT=$(cat "$1/port")
  as_pg "$PGBIN/pg_ctl" -D "$1/data" -l "$1/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $P_PORT -k $1" start >/dev/null || die "PostgreSQL did not start: $(tail -5 "$1/postgres.log")"
  PG_RUNNING+=("$1/data")
}
pg_cols() { head -1 "$DATA/$1.csv"; }
pg_prepare() {
  local p cols ddl c
  for p in readings diagnostics; do
    cols=$(pg_cols $p); ddl=""
    for c in ${cols//,/ }; do
      case $c in
        time) ddl+="time timestamptz NOT NULL" ;;
        name|fleet|driver|model|device_version) ddl+=", $c text" ;;
        status) ddl+=", $c integer" ;;
        *) ddl+=", $c double precision" ;;
      esac
    done
    psql_ -c "CREATE TABLE $p ($ddl)" -c "CREATE INDEX ${p}_name_time ON $p (name, time)"
  done
}
pg_count() { psql_ -At -c "SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM diagnostics)"; }
pg_stop_cur() { pg_stop "$P_DIR/data"; }

keep_logs() { # dir name: the servers' logs go to the results (for warnings and errors)
  mkdir -p "$OUT/logs"
  local f
  for f in "$1"/*.log; do [ -s "$f" ] && cp "$f" "$OUT/logs/$2-$(basename "$f")"; done
  return 0
}

# ---- one ingest run ---------------------------------------------------------------------------
# ingest SYSTEM CLIENTS RUN KEEP: a fresh instance, the timed load, the checks; with KEEP=1 the
# instance is left in $RUNTMP/$SYSTEM-final for the size measurement and the queries.
ingest() {
  local sys=$1 n=$2 run=$3 keep=$4 dir res mem extra="" t0 t1 got
  dir=$RUNTMP/$sys-c$n-r$run; [ "$keep" = 1 ] && dir=$RUNTMP/$sys-final
  local raw=$OUT/raw/ingest-$sys-c$n-r$run.json
  case $sys in
    meshd)
      meshd_start "$dir"; meshd_prepare
      res=$("$HB/loader" --url "http://$M_ADDR/write?db=fleet" --token "$TOKEN" --clients "$n" --batch "$BATCH" "$DATA/fleet.lp") \
        || die "meshd refused a write (clients=$n run=$run); log: $dir/meshd.log"
      mem=$(vmhwm_kb "$M_PID")
      local pr pd qr qd
      pr=$(meshd_sql "SELECT count(*) FROM fleet.readings"); pd=$(meshd_sql "SELECT count(*) FROM fleet.diagnostics")
      qr=$(meshd_sql "SELECT count(*) FROM fleet.readings__quarantine"); qd=$(meshd_sql "SELECT count(*) FROM fleet.diagnostics__quarantine")
      extra="\"stored\": {\"readings\": \"$pr\", \"diagnostics\": \"$pd\", \"readings_quarantine\": \"$qr\", \"diagnostics_quarantine\": \"$qd\"},"
      [ "$pr" = "$KEYED_R" ] && [ "$pd" = "$KEYED_D" ] \
        || problem "meshd (clients=$n run=$run): stored readings=$pr diagnostics=$pd, expected $KEYED_R and $KEYED_D rows with a name"
      if [[ "$pr$pd$qr$qd" =~ ^[0-9]+$ ]] && [ "$((pr + pd + qr + qd))" = "$LP_ROWS" ]; then :; else
        problem "meshd (clients=$n run=$run): stored + quarantined = $pr+$pd+$qr+$qd, expected $LP_ROWS"
      fi
      [ "$keep" = 1 ] || { meshd_stop; keep_logs "$dir" "c$n-r$run"; rm -rf "$dir"; }
      ;;
    influxdb)
      influx_start "$dir"; influx_prepare
      res=$("$HB/loader" --url "http://127.0.0.1:$I_PORT/write?db=fleet" --clients "$n" --batch "$BATCH" "$DATA/fleet.lp") \
        || die "influxdb refused a write (clients=$n run=$run)"
      mem=$(vmhwm_kb "$I_PID")
      local cr cdg
      cr=$(influx_count readings); cdg=$(influx_count diagnostics)
      [[ "$cr$cdg" =~ ^[0-9]+$ ]] && got=$((cr + cdg)) || got="$cr / $cdg"
      extra="\"stored_keyed\": \"$got\","
      [ "$got" = "$((KEYED_R + KEYED_D))" ] || problem "influxdb (clients=$n run=$run): $got rows with a name stored, expected $((KEYED_R + KEYED_D))"
      [ "$keep" = 1 ] || { influx_stop; keep_logs "$dir" "c$n-r$run"; rm -rf "$dir"; }
      ;;
    postgres)
      pg_start "$dir"; pg_prepare
      local pm; pm=$(head -1 "$dir/data/postmaster.pid")
      $PY "$BENCH/memwatch.py" --pid "$pm" --out "$dir/mem.json" --interval 0.1 &
      local mw=$!; SERVER_PIDS+=("$mw"); sleep 0.2
      local pids=() i p cols_r cols_d
      cols_r=$(pg_cols readings); cols_d=$(pg_cols diagnostics)
      t0=$(now_ns)
      if [ "$n" = 1 ]; then
        psql_ -c "\\copy readings ($cols_r) FROM '$DATA/readings.csv' WITH (FORMAT csv, HEADER true)" \
              -c "\\copy diagnostics ($cols_d) FROM '$DATA/diagnostics.csv' WITH (FORMAT csv, HEADER true)" &
        pids+=($!)
      else
        for ((i = 0; i < n; i++)); do
          p=$(printf '%03d' $i)
          psql_ -c "\\copy readings ($cols_r) FROM '$DATA/parts-$n/readings.$p' WITH (FORMAT csv)" \
                -c "\\copy diagnostics ($cols_d) FROM '$DATA/parts-$n/diagnostics.$p' WITH (FORMAT csv)" &
          pids+=($!)
        done
      fi
      local failed=0; for p in "${pids[@]}"; do wait "$p" || failed=1; done
      t1=$(now_ns)
      stop_pid "$mw" 10; forget_pid "$mw"
      [ $failed = 0 ] || die "PostgreSQL COPY failed (clients=$n run=$run): $(tail -5 "$dir/postgres.log")"
      res=$($PY -c "import sys; r=$CSV_ROWS; s=($t1-$t0)/1e9; print('{\"rows\": %d, \"clients\": $n, \"seconds\": %.6f, \"rows_per_s\": %.1f}' % (r, s, r/s))")
      mem=$($PY -c "import json; print(json.load(open('$dir/mem.json'))['peak_pss_sum_kb'])")
      extra="\"memwatch\": $(cat "$dir/mem.json"),"
      got=$(pg_count)
      [ "$got" = "$CSV_ROWS" ] || problem "postgres (clients=$n run=$run): $got rows stored, expected $CSV_ROWS"
      [ "$keep" = 1 ] || { pg_stop_cur; keep_logs "$dir" "c$n-r$run"; rm -rf "$dir"; }
      ;;
    sqlite)
      mkdir -p "$dir"
      res=$("$HB/sqlite_rowstore" --db "$dir/rowstore.db" --clients "$n" --batch "$BATCH" \
            readings="$DATA/readings.csv" diagnostics="$DATA/diagnostics.csv") || die "sqlite_rowstore failed (clients=$n run=$run)"
      mem=$($PY -c "import json,sys; print(json.loads(sys.argv[1])['vmhwm_kb'])" "$res")
      got=$($PY -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(sum(c.execute('SELECT count(*) FROM '+t).fetchone()[0] for t in ('readings','diagnostics')))" "$dir/rowstore.db")
      [ "$got" = "$CSV_ROWS" ] || problem "sqlite (clients=$n run=$run): $got rows stored, expected $CSV_ROWS"
      [ "$keep" = 1 ] || rm -rf "$dir"
      ;;
  esac
  printf '{"kind": "ingest", "system": "%s", "clients": %d, "run": %d, %s "peak_rss_kb": %s, "load": %s}\n' \
    "$sys" "$n" "$run" "$extra" "${mem:-0}" "$res" > "$raw"
  log "  $sys clients=$n run=$run: $($PY -c "import json,sys; d=json.loads(sys.argv[1]); print('%.0f rows/s (%d rows in %.2f s)' % (d['rows_per_s'], d['rows'], d['seconds']))" "$res"), peak memory $((${mem:-0} / 1024)) MiB"
}

# ---- size at rest, then the queries -------------------------------------------------------------
finish() { # system: flush, measure the size on disk, restart, run the queries, stop
  local sys=$1 dir=$RUNTMP/$1-final size_kb size_b detail="{}" qargs=()
  case $sys in
    meshd)
      meshd_stop # a clean stop: checkpoint; the size is then measured at rest
      size_kb=$(dir_kb "$dir/data"); size_b=$(dir_bytes "$dir/data")
      detail=$(cd "$dir/data" && find . -type f -printf '"%P": %s,\n' | sort | tr -d '\n' | sed 's/,$//; s/^/{/; s/$/}/')
      meshd_start "$dir"; qargs=(--url "http://$M_ADDR" --token "$TOKEN")
      ;;
    influxdb)
      influx_settle "$dir"; influx_stop
      size_kb=$(( $(dir_kb "$dir/data") + $(dir_kb "$dir/wal") + $(dir_kb "$dir/meta") ))
      size_b=$(( $(dir_bytes "$dir/data") + $(dir_bytes "$dir/wal") + $(dir_bytes "$dir/meta") ))
      detail="{\"data_kb\": $(dir_kb "$dir/data"), \"wal_kb\": $(dir_kb "$dir/wal"), \"meta_kb\": $(dir_kb "$dir/meta"), \"tsm_files\": $(find "$dir/data" -name '*.tsm' | wc -l)}"
      influx_start "$dir"; qargs=(--url "http://127.0.0.1:$I_PORT")
      ;;
    postgres)
      psql_ -c "VACUUM ANALYZE" -c "CHECKPOINT"
      local rel; rel=$(psql_ -At -c "SELECT pg_total_relation_size('readings') + pg_total_relation_size('diagnostics')")
      pg_stop_cur
      size_b=$rel; size_kb=$((rel / 1024))
      detail="{\"tables_and_indexes_bytes\": $rel, \"cluster_du_kb\": $(dir_kb "$dir/data"), \"pg_wal_du_kb\": $(dir_kb "$dir/data/pg_wal"), \"base_du_kb\": $(dir_kb "$dir/data/base")}"
      pg_start "$dir"; qargs=(--pghost "$dir" --pgport "$P_PORT")
      ;;
    sqlite)
      size_kb=$(dir_kb "$dir"); size_b=$(dir_bytes "$dir")
      detail=$(cd "$dir" && find . -type f -printf '"%P": %s,\n' | sort | tr -d '\n' | sed 's/,$//; s/^/{/; s/$/}/')
      qargs=(--db "$dir/rowstore.db")
      ;;
  esac
  printf '{"kind": "size", "system": "%s", "disk_kb": %s, "apparent_bytes": %s, "detail": %s}\n' \
    "$sys" "$size_kb" "$size_b" "$detail" > "$OUT/raw/size-$sys.json"
  log "  $sys: $((size_kb / 1024)) MiB on disk after the load; queries ($QRUNS runs after a warm-up)"
  $PY "$BENCH/queries.py" --system "$sys" --runs "$QRUNS" --bounds "$DATA/facts.json" "${qargs[@]}" ${QUERY_ARGS[@]+"${QUERY_ARGS[@]}"} \
    > "$OUT/raw/query-$sys.json" || die "$sys: a query failed"
  case $sys in
    meshd) meshd_stop ;;
    influxdb) influx_stop ;;
    postgres) pg_stop_cur ;;
  esac
  keep_logs "$dir" "final"
  [ "$KEEP" = 1 ] || rm -rf "$dir"
}

# ---- the run ----------------------------------------------------------------------------------
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$REPO" status --porcelain 2>/dev/null | wc -l)
sqlite_ver=$($PY -c 'import sqlite3; print(sqlite3.sqlite_version)')
cat > "$OUT/raw/machine.json" <<EOF
{"cores": $(nproc), "cpu": $(jstr "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"),
 "mem_total_kb": $(awk '/^MemTotal:/ {print $2}' /proc/meminfo), "kernel": $(jstr "$(uname -r)"),
 "os": $(jstr "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"),
 "meshd": $(jstr "$("$MESHD" --version 2>&1 | head -1)"), "repo_commit": $(jstr "$git_rev"), "worktree_changes": $git_dirty,
 "meshd_binary": $(jstr "$MESHD"), "meshd_binary_sha256": $(jstr "$(sha256sum "$MESHD" | cut -c1-16)"),
 "meshd_binary_built": $(jstr "$(date -u -r "$MESHD" +%Y-%m-%dT%H:%M:%SZ)"),
 "meshd_args": $(jstr "$MESHD_ARGS"),
 "influxd": $(jstr "$(influxd version 2>/dev/null | head -1 || echo absent)"),
 "postgres": $(jstr "$([ -n "$PGBIN" ] && "$PGBIN/postgres" --version | head -1 || echo absent)"),
 "sqlite": $(jstr "$sqlite_ver"), "generator": $(jstr "$GENERATOR"),
 "data_sha256": $(jstr "$(cat "$DATA/fleet.lp.sha256" 2>/dev/null)"),
 "scale": $SCALE, "duration": $(jstr "$DURATION"), "seed": $SEED, "runs": $RUNS, "query_runs": $QRUNS,
 "clients": [$(echo $CLIENTS | tr ' ' ',')], "batch": $BATCH, "smoke": $SMOKE,
 "command": $(jstr "bench/run.sh $*"), "started": $(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")}
EOF
log "results in $OUT"
CLIENTS_REV=$(echo $CLIENTS | tr ' ' '\n' | sort -rn | tr '\n' ' ')
LAST_N=$(echo $CLIENTS | tr ' ' '\n' | sort -n | head -1)
for sys in $SYSTEMS; do
  log "== $sys: ingest, $RUNS run(s) each with $CLIENTS client(s)"
  # interleave client counts across runs; the last run (fewest clients) is kept for the queries
  for ((r = 1; r <= RUNS; r++)); do
    for n in $CLIENTS_REV; do
      keep=0; [ "$r" = "$RUNS" ] && [ "$n" = "$LAST_N" ] && keep=1
      ingest "$sys" "$n" "$r" "$keep"
    done
  done
  finish "$sys"
done

log "== report"
rc=0
$PY "$BENCH/report.py" "$OUT" || rc=$?
if [ -s "$OUT/ingest.dat" ] && command -v gnuplot >/dev/null; then
  gnuplot -e "datafile='$OUT/ingest.dat'; outfile='$OUT/ingest.png'; clients='$CLIENTS'; subtitle='$(cat "$OUT/plot-subtitle.txt" 2>/dev/null)'" \
    "$BENCH/ingest.gp" || die "gnuplot failed"
  log "plot: $OUT/ingest.png"
fi
if [ "$PUBLISH" = 1 ]; then
  cp "$OUT/ingest.png" "$BENCH/ingest.png"
  log "published bench/ingest.png"
fi
if [ -s "$OUT/problems.txt" ]; then
  log "PROBLEMS (see $OUT/problems.txt):"; cat "$OUT/problems.txt" >&2; [ $rc = 0 ] && rc=3
fi
[ $rc = 0 ] && log "done: $OUT"
exit $rc
}
main "$@"; exit $?
