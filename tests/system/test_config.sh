#!/usr/bin/env bash
# meshd's options: the config file, environment and flags, their precedence, the errors
# (naming file:line and the reason), --help, --check-config, and the generated docs.
set -euo pipefail
B=${MESH_BUILD:?}; S=${MESH_SRC:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_in() { grep -qF -- "$1" <<<"$2" || fail "expected '$1' in: $2"; }

# --help and --version
out=$("$B/meshd" --help); expect_in "--data-dir DIR" "$out"; expect_in "MESHD_LISTEN" "$out"
expect_in "query_timeout" "$out"
"$B/meshd" --version | grep -q "^meshd [0-9]" || fail version

# the docs are generated from the option table
diff <("$B/meshd" --print-config-example) "$S/examples/meshd.conf" >/dev/null \
  || fail "examples/meshd.conf is stale: meshd --print-config-example > examples/meshd.conf"
"$B/meshd" --print-config-reference > "$T/ref.md"
grep -qF -f "$T/ref.md" "$S/docs/configuration.md" || true
while IFS= read -r line; do
  grep -qxF -- "$line" "$S/docs/configuration.md" || fail "docs/configuration.md is stale: $line"
done < "$T/ref.md"

# the annotated example loads as it is
"$B/meshd" --config "$S/examples/meshd.conf" --check-config >/dev/null || fail "example config"

# precedence: flag > environment > file > default
printf '# comment\nsite = "from file"  # trailing comment\nhttp_threads = 3\nquery_timeout = 10s\n' > "$T/a.conf"
out=$("$B/meshd" --config "$T/a.conf" --check-config)
expect_in "site = from file" "$out"; expect_in "http_threads = 3" "$out"
expect_in "query_timeout = 10000000000" "$out"
out=$(MESHD_SITE=env "$B/meshd" --config "$T/a.conf" --check-config)
expect_in "site = env" "$out"
out=$(MESHD_SITE=env "$B/meshd" --config "$T/a.conf" --site flag --check-config)
expect_in "site = flag" "$out"
out=$(MESHD_CONFIG="$T/a.conf" "$B/meshd" --check-config); expect_in "http_threads = 3" "$out"
# secrets are never printed
out=$("$B/meshd" --admin-token supersecret-token-123 --check-config)
expect_in "admin_token = ***" "$out"; grep -q supersecret <<<"$out" && fail "secret printed"

# errors name the place and the reason, exit 1
check_err() { # expected-substring command...
  local want=$1; shift
  set +e; out=$("$@" 2>&1); rc=$?; set -e
  [ "$rc" = 1 ] || fail "exit $rc for $*: $out"
  expect_in "$want" "$out"
}
printf 'site = ok\n\nquery_timeout = soon\n' > "$T/b.conf"
check_err "$T/b.conf:3: query_timeout = 'soon' is not a duration" "$B/meshd" --config "$T/b.conf" --check-config
printf 'lisen = 1\n' > "$T/c.conf"
check_err "$T/c.conf:1: unknown option 'lisen'" "$B/meshd" --config "$T/c.conf" --check-config
printf 'site = "unterminated\n' > "$T/d.conf"
check_err "$T/d.conf:1: unterminated" "$B/meshd" --config "$T/d.conf" --check-config
printf 'no equals sign\n' > "$T/e.conf"
check_err "$T/e.conf:1: expected 'name = value'" "$B/meshd" --config "$T/e.conf" --check-config
printf 'config = other.conf\n' > "$T/f.conf"
check_err "can only be given as a flag" "$B/meshd" --config "$T/f.conf" --check-config
check_err "out of range" env MESHD_HTTP_THREADS=0 "$B/meshd" --check-config
check_err "environment MESHD_HTTP_THREADS" env MESHD_HTTP_THREADS=x "$B/meshd" --check-config
check_err "is not a size" "$B/meshd" --max-body lots --check-config
check_err "unknown option 'nope'" "$B/meshd" --nope 1 --check-config
check_err "needs a value" "$B/meshd" --listen
check_err "is not one of log|full" "$B/meshd" --sync maybe --check-config
check_err "no-such.conf" "$B/meshd" --config "$T/no-such.conf" --check-config

# start-up failures exit 2 with a reason: a bad token, a busy port, a locked data dir
set +e
out=$("$B/meshd" --data-dir "$T/d1" --listen 127.0.0.1:0 --admin-token short 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "short token: exit $rc"; expect_in "admin token: a token has 16 to 256" "$out"

"$B/meshd" --data-dir "$T/d2" --listen 127.0.0.1:0 --admin-token tok-0123456789abcdef > "$T/n1.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$T/n1.log" && break; sleep 0.05; done
addr=$(sed -n 's/.*listening on https:\/\/\([^ ]*\).*/\1/p' "$T/n1.log")
set +e
out=$("$B/meshd" --data-dir "$T/d2" --listen 127.0.0.1:0 --admin-token tok-0123456789abcdef 2>&1); rc=$?
out2=$("$B/meshd" --data-dir "$T/d3" --listen "$addr" --admin-token tok-0123456789abcdef 2>&1); rc2=$?
set -e
[ "$rc" = 2 ] || fail "locked dir: exit $rc"; expect_in "in use by another meshd" "$out"
[ "$rc2" = 2 ] || fail "busy port: exit $rc2"; expect_in "cannot listen on" "$out2"

# SIGTERM: clean stop, exit 0, logged
kill -TERM "$pid"; wait "$pid" || fail "SIGTERM exit status $?"
grep -q 'msg="SIGTERM: shutting down"' "$T/n1.log" || fail "no shutdown log"
grep -q 'msg="stopped"' "$T/n1.log" || fail "no stopped log"
# the token never appears in logs
grep -q "tok-0123456789abcdef" "$T/n1.log" && fail "token in the log"

# first start without a token: one is generated and printed once, to stdout only. Encryption
# at rest is off so that the "not stored in clear" check below can fail: on an encrypted data
# dir no token would ever be found by grep, stored in clear or not.
"$B/meshd" --data-dir "$T/d4" --listen 127.0.0.1:0 --encryption off > "$T/out" 2> "$T/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$T/err" && break; sleep 0.05; done
kill -TERM "$pid"; wait "$pid"
tok=$(sed -n '2p' "$T/out")
[[ "$tok" == mesh_* ]] || fail "no generated token: $(cat "$T/out")"
grep -qF "$tok" "$T/err" && fail "generated token in the log"
# (the catalog lives in catalog.db and its WAL: all of the data dir is searched)
grep -qaF "CREATE TABLE tokens" "$T/d4/catalog.db"* || fail "the catalog is not plain text: the check below proves nothing"
grep -rqaF "$tok" "$T/d4" && fail "token stored in clear"
"$B/meshd" --data-dir "$T/d4" --listen 127.0.0.1:0 --encryption off > "$T/out2" 2> "$T/err2" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$T/err2" && break; sleep 0.05; done
addr=$(sed -n 's/.*listening on https:\/\/\([^ ]*\).*/\1/p' "$T/err2")
code=$(curl -s --cacert "$T/d4/tls/cert.pem" -o /dev/null -w '%{http_code}' \
  -H "Authorization: Bearer $tok" "https://$addr/v1/status")
kill -TERM "$pid"; wait "$pid"
[ "$code" = 200 ] || fail "generated token refused after restart: $code"
[ -s "$T/out2" ] && fail "a token was printed again on the second start"

# --admin-token-file: the token is read from the file's first line (what a container secret
# or a systemd credential gives), works, and is neither logged nor stored in clear
ftok=tok-from-a-file-0123456789
printf '%s\n' "$ftok" > "$T/admin.token"; chmod 600 "$T/admin.token"
"$B/meshd" --data-dir "$T/d6" --listen 127.0.0.1:0 --encryption off --tls off \
  --admin-token-file "$T/admin.token" > "$T/out6" 2> "$T/err6" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$T/err6" && break; sleep 0.05; done
addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$T/err6")
[ -n "$addr" ] || { kill -TERM "$pid"; fail "no node with --admin-token-file: $(cat "$T/err6")"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ftok" "http://$addr/v1/status")
bad=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${ftok}x" "http://$addr/v1/status")
kill -TERM "$pid"; wait "$pid" || fail "--admin-token-file node: exit status $?"
[ "$code" = 200 ] || fail "the token of --admin-token-file was refused: $code"
[ "$bad" = 401 ] || fail "another token was accepted: $bad"
[ -s "$T/out6" ] && fail "a token was printed although one was configured: $(cat "$T/out6")"
grep -qF "$ftok" "$T/err6" && fail "the token of --admin-token-file is in the log"
grep -qaF "admin (configured)" "$T/d6/catalog.db"* || fail "the catalog is not plain text"
grep -rqaF "$ftok" "$T/d6" && fail "the token of --admin-token-file is stored in clear"
set +e
printf 'short\n' > "$T/short.token"
out=$("$B/meshd" --data-dir "$T/d7" --listen 127.0.0.1:0 --admin-token-file "$T/short.token" 2>&1); rc=$?
out2=$("$B/meshd" --data-dir "$T/d7" --listen 127.0.0.1:0 --admin-token-file "$T/none.token" 2>&1); rc2=$?
set -e
[ "$rc" = 2 ] || fail "short token file: exit $rc"; expect_in "admin token: a token has 16 to 256" "$out"
[ "$rc2" != 0 ] || fail "missing token file: exit 0"; expect_in "$T/none.token" "$out2"

# log_levels per component and log_file, reopened on SIGHUP (logrotate's move, then HUP)
check_err "log_levels: 'http' is not comp=level" "$B/meshd" --log-levels http --check-config
check_err "log_levels: 'loud' is not a level" "$B/meshd" --log-levels http=loud --check-config
"$B/meshd" --data-dir "$T/d5" --listen 127.0.0.1:0 --admin-token tok-for-the-log-test-01 \
  --log-level warn --log-levels node=info --log-file "$T/meshd.log" > "$T/out5" 2> "$T/err5" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$T/meshd.log" 2>/dev/null && break; sleep 0.05; done
grep -q "comp=node msg=\"meshd .* listening on" "$T/meshd.log" || fail "node info line not in the log file"
grep -q "level=info comp=tls" "$T/meshd.log" && fail "tls info logged although log_level is warn"
grep -q "level=warn comp=crypt" "$T/meshd.log" || fail "a warning (the generated KEK) is missing"
[ -s "$T/err5" ] && fail "log lines went to stderr with log_file set: $(head -2 "$T/err5")"
[ "$(stat -c %a "$T/meshd.log")" = 640 ] || fail "log file mode $(stat -c %a "$T/meshd.log")"
mv "$T/meshd.log" "$T/meshd.log.1"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q "reopened" "$T/meshd.log" 2>/dev/null && break; sleep 0.05; done
grep -q "log file $T/meshd.log reopened" "$T/meshd.log" || fail "no new log file after SIGHUP"
grep -q "reopened" "$T/meshd.log.1" && fail "the moved file got lines after SIGHUP"
kill -TERM "$pid"; wait "$pid"
grep -q "shutting down" "$T/meshd.log" || fail "the stop was not logged to the new file"
echo "config tests passed"
