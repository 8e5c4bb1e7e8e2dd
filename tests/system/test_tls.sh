#!/bin/bash
# test_tls.sh - TLS on meshd's listener, with real clients: openssl s_client, curl and meshctl.
#
# - A node with no certificate configured generates a self-signed one (key 0600, the expected
#   names), logs its fingerprint (the same openssl computes), shows it in /v1/status, and
#   reuses it after a restart.
# - TLS 1.0 and 1.1 are refused, 1.2 and 1.3 accepted; weak ciphers (RSA key exchange, CBC)
#   are refused; plain HTTP to the TLS port gets no answer; keep-alive requests are not
#   delayed by Nagle.
# - curl and meshctl: a certificate from another CA is refused; meshctl accepts the pinned
#   fingerprint and refuses a wrong pin, and without a pin or CA says how to get one.
# - Plain HTTP works only with --tls off (and the log says so loudly).
# - A configured certificate and key (from a test CA made here) are used: curl --resolve
#   checks its name, s_client shows its subject.
# - Client certificates: with require, no certificate and one from another CA are refused and
#   one from the configured CA is accepted; with optional, no certificate is fine.
# - Bad certificate, key or CA files stop the start with exit status 2 and name the file.
#
# Test CAs and certificates are made with the openssl CLI in a temporary directory. Every
# process started here is stopped on exit.
#
# Environment (set by ctest): MESH_BUILD (build directory), MESH_SRC (source directory).
set -euo pipefail

SRC=${MESH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${MESH_BUILD:-$SRC/build/debug}
MESHD=$BUILD/meshd
CTL=$BUILD/meshctl
TOKEN=tls-test-token-0123456789

tmp=$(mktemp -d /tmp/meshd-tls-test.XXXXXX)
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

# a clean meshctl environment
unset MESH_URL MESH_TOKEN MESH_TOKEN_FILE MESH_CONFIG MESH_TIMEOUT MESH_CACERT MESH_PIN MESH_CERT MESH_KEY
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/xdg MESH_TOKEN=$TOKEN
mkdir -p "$HOME"

fail() {
    echo "FAIL - $*" >&2
    for f in out err; do
        if [ -s "$tmp/$f" ]; then
            echo "--- $f:" >&2
            head -c 3000 "$tmp/$f" >&2
        fi
    done
    exit 1
}
ok() { echo "ok   - $*"; }
expect_in() { # NAME FILE TEXT
    grep -qF -- "$3" "$2" || fail "$1: '$3' not in $(basename "$2")"
    ok "$1"
}
expect_eq() { # NAME ACTUAL EXPECTED
    [ "$2" == "$3" ] || fail "$1: got '$2', expected '$3'"
    ok "$1"
}

# ---- test CAs and certificates (openssl CLI) -------------------------------------------------

pki=$tmp/pki
mkdir -p "$pki"
make_ca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=meshd test $1" -keyout "$pki/$1.key" -out "$pki/$1.pem" 2>/dev/null
}
make_cert() { # NAME CA KEYSPEC EXTENSIONS
    local name=$1 ca=$2 keyspec=$3 ext=$4
    # shellcheck disable=SC2086
    openssl req -new -newkey $keyspec -nodes -subj "/CN=$name/O=meshd tests" \
        -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
    printf '%b' "$ext" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.pem" -CAkey "$pki/$ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$pki/$name.ext" \
        -out "$pki/$name.pem" 2>/dev/null
    chmod 600 "$pki/$name.key"
}
make_ca ca1
make_ca ca2
make_cert meshd.test ca1 rsa:2048 \
    'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:meshd.test,IP:127.0.0.1\n'
make_cert client1 ca1 "ec -pkeyopt ec_paramgen_curve:P-256" \
    'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'
make_cert rogue ca2 "ec -pkeyopt ec_paramgen_curve:P-256" \
    'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'
ok "test CAs and certificates made"

# ---- helpers ---------------------------------------------------------------------------------

# start NAME ARGS...: starts meshd on a free port with data dir $tmp/NAME; sets PID, ADDR,
# PORT, FP (the logged fingerprint, "" without TLS) and SCHEME.
start() {
    local name=$1
    shift
    # emptied here, not by the child's redirection: the loop below must never read the log
    # of this node's previous run
    : >"$tmp/$name.log"
    "$MESHD" --data-dir "$tmp/$name" --listen 127.0.0.1:0 --admin-token "$TOKEN" "$@" \
        >"$tmp/$name.out" 2>>"$tmp/$name.log" &
    PID=$!
    pids+=("$PID")
    local url=""
    for _ in $(seq 1 150); do
        # the whole line (it ends with the domain count), scheme and address in one read
        url=$(sed -n 's/.*listening on \(https\{0,1\}:\/\/[^ "]*\) .* domains=[0-9].*/\1/p' \
            "$tmp/$name.log")
        [ -n "$url" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$url" ] || { cat "$tmp/$name.log" >&2; fail "meshd $name did not start"; }
    SCHEME=${url%%://*}
    ADDR=${url#*://}
    PORT=${ADDR##*:}
    FP=$(sed -n 's/.*fingerprint \(sha256:[0-9a-f]\{64\}\).*/\1/p' "$tmp/$name.log" | tail -n 1)
}
stop() { # PID
    kill -TERM "$1"
    wait "$1" || fail "meshd exit status $? on SIGTERM"
}
# ctl EXPECTED_RC ARGS...: meshctl, stdout to $tmp/out, stderr to $tmp/err
ctl() {
    local want=$1 rc=0
    shift
    "$CTL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
    [ "$rc" == "$want" ] || fail "meshctl $*: exit $rc, expected $want"
}
# code CURL_ARGS...: the HTTP status curl got, or "xNN" for curl's exit code NN
code() {
    local c rc=0
    c=$(curl -sS -o "$tmp/body" -w '%{http_code}' "$@" 2>"$tmp/err") || rc=$?
    if [ "$rc" != 0 ]; then echo "x$rc"; else echo "$c"; fi
}
# sclient ARGS...: openssl s_client against $ADDR, output to $tmp/out; returns its status
sclient() {
    timeout 20 openssl s_client -connect "$ADDR" "$@" </dev/null >"$tmp/out" 2>&1
}
fp_of() { # PEM file -> sha256:hex, as meshd writes it
    openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' |
        tr 'A-F' 'a-f' | sed 's/^/sha256:/'
}

# ---- a node with a generated certificate -----------------------------------------------------

start gen
gen_pid=$PID
cert=$tmp/gen/tls/cert.pem
expect_eq "TLS is on by default" "$SCHEME" "https"
expect_in "first start generates a certificate" "$tmp/gen.log" "generated a self-signed certificate"
expect_eq "the logged fingerprint is the certificate's" "$FP" "$(fp_of "$cert")"
expect_eq "key file is 0600" "$(stat -c %a "$tmp/gen/tls/key.pem")" "600"
expect_eq "tls dir is 0700" "$(stat -c %a "$tmp/gen/tls")" "700"
if grep -q "PRIVATE KEY" "$tmp/gen.log" "$tmp/gen.out"; then fail "private key in the output"; fi
ok "no key material in the log"
openssl x509 -in "$cert" -noout -ext subjectAltName,basicConstraints,keyUsage >"$tmp/out"
for want in "DNS:$(hostname)" "DNS:localhost" "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1" \
    "CA:FALSE" "Digital Signature"; do
    expect_in "generated certificate has $want" "$tmp/out" "$want"
done
openssl x509 -in "$cert" -noout -text >"$tmp/out"
expect_in "generated key is EC P-256" "$tmp/out" "NIST CURVE: P-256"
end=$(date -d "$(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2)" +%s)
days=$(((end - $(date +%s)) / 86400))
[ "$days" -ge 360 ] && [ "$days" -le 366 ] || fail "validity: $days days"
ok "valid for about a year ($days days)"

# protocol versions (the client is allowed everything, so the refusal is the server's)
for v in tls1 tls1_1; do
    if sclient -"$v" -cipher 'DEFAULT:@SECLEVEL=0' -CAfile "$cert"; then
        fail "s_client -$v was accepted"
    fi
    expect_in "s_client -$v refused by the server" "$tmp/out" "alert protocol version"
done
for v in "tls1_2 TLSv1.2" "tls1_3 TLSv1.3"; do
    set -- $v
    sclient -"$1" -CAfile "$cert" -verify_return_error || fail "s_client -$1 failed: $(tail -5 "$tmp/out")"
    expect_in "s_client -$1 accepted" "$tmp/out" "New, $2, Cipher is"
    expect_in "s_client -$1 verifies with the certificate as CA file" "$tmp/out" "Verify return code: 0 (ok)"
done
# ciphers: CBC (even with ECDHE) and anything without ECDHE are refused; AEAD accepted
for c in ECDHE-ECDSA-AES128-SHA ECDHE-ECDSA-AES256-SHA384 AES128-GCM-SHA256 AES128-SHA; do
    if sclient -tls1_2 -cipher "$c:@SECLEVEL=0" -CAfile "$cert"; then
        fail "weak cipher $c accepted"
    fi
    expect_in "TLS 1.2 cipher $c refused" "$tmp/out" "alert handshake failure"
done
sclient -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305 -CAfile "$cert" || fail "chacha20 refused"
expect_in "TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305 accepted" "$tmp/out" "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305"

# curl: the certificate as CA file, by IP and by name; 1.2 and 1.3; no CA, wrong CA
expect_eq "curl --cacert (127.0.0.1)" "$(code --cacert "$cert" "https://$ADDR/healthz")" 200
expect_eq "curl --cacert (localhost)" "$(code --cacert "$cert" "https://localhost:$PORT/healthz")" 200
expect_eq "curl TLS 1.2" "$(code --cacert "$cert" --tlsv1.2 --tls-max 1.2 "https://$ADDR/healthz")" 200
expect_eq "curl TLS 1.3" "$(code --cacert "$cert" --tlsv1.3 "https://$ADDR/healthz")" 200
expect_eq "curl without a CA refuses the self-signed node" "$(code "https://$ADDR/healthz")" x60
expect_eq "curl with another CA refuses it" "$(code --cacert "$pki/ca1.pem" "https://$ADDR/healthz")" x60
# plain HTTP to the TLS port: no answer at all
c=$(code "http://$ADDR/healthz")
[ "$c" == x52 ] || [ "$c" == x56 ] || fail "plain HTTP to the TLS port: $c"
ok "plain HTTP to the TLS port gets no answer ($c)"

# keep-alive requests are not held back by Nagle (~40 ms each without TCP_NODELAY)
urls=()
for _ in $(seq 1 20); do urls+=("https://$ADDR/v1/status"); done
curl -sS --cacert "$cert" -H "Authorization: Bearer $TOKEN" -o /dev/null \
    -w '%{num_connects} %{time_total} %{time_pretransfer}\n' "${urls[@]}" >"$tmp/times"
slow=$(awk 'NR > 1 && $1 == 0 && ($2 - $3) > 0.030 {n++} END {print n + 0}' "$tmp/times")
[ "$slow" -le 3 ] || fail "$slow of 19 keep-alive requests took over 30 ms: $(cat "$tmp/times")"
ok "keep-alive HTTPS requests answer without a Nagle delay ($slow slow)"

# the fingerprint in /v1/status and meshctl status
ctl 0 --url "https://$ADDR" --pin "$FP" status --format json
expect_eq "/v1/status tls.fingerprint" \
    "$(/usr/bin/python3 -c 'import json,sys; t=json.load(sys.stdin)["tls"]; print(t["enabled"], t["fingerprint"], t["certificate"])' <"$tmp/out")" \
    "True $FP self-signed"
ctl 0 --url "https://$ADDR" --pin "$FP" status
expect_in "meshctl status shows the fingerprint" "$tmp/out" "$FP"

# meshctl: no trust given: a clear error with the way out
ctl 4 --url "https://$ADDR" status
expect_in "meshctl without pin or CA: says why" "$tmp/err" "cannot verify the TLS certificate"
expect_in "meshctl without pin or CA: says how (pin)" "$tmp/err" "--pin sha256:HEX"
expect_in "meshctl without pin or CA: says how (CA file)" "$tmp/err" "--cacert"
expect_in "meshctl without pin or CA: shows what the node presented" "$tmp/err" "$FP"
# pins
colon=$(openssl x509 -in "$cert" -noout -fingerprint -sha256 | sed 's/.*=/sha256:/')
ctl 0 --url "https://$ADDR" --pin "$colon" status
ok "meshctl accepts the pin as openssl prints it"
MESH_PIN=$FP ctl 0 --url "https://$ADDR" status
ok "meshctl accepts the pin from MESH_PIN"
wrong=sha256:$(printf '%064d' 0)
ctl 4 --url "https://$ADDR" --pin "$wrong" status
expect_in "meshctl refuses a wrong pin" "$tmp/err" "matches no pinned fingerprint"
ctl 0 --url "https://$ADDR" --pin "$wrong,$FP" status
ok "meshctl accepts a pin list holding the node's"
ctl 2 --url "https://$ADDR" --pin "sha256:1234" status
expect_in "meshctl refuses a malformed pin" "$tmp/err" "64 hex digits"
ctl 2 --url "https://$ADDR" --pin "md5:$(printf '%032d' 0)" status
expect_in "meshctl refuses another algorithm" "$tmp/err" "expected sha256:HEX"
# the pin from meshctl's config file; an empty MESH_PIN overrides it with none
mkdir -p "$XDG_CONFIG_HOME/meshctl"
printf 'url = https://%s\npin = %s\n' "$ADDR" "$FP" >"$XDG_CONFIG_HOME/meshctl/config"
ctl 0 status
ok "meshctl takes the pin from its config file"
MESH_PIN= ctl 4 status
ok "an empty MESH_PIN overrides the config file's pin"
rm "$XDG_CONFIG_HOME/meshctl/config"
# CA files
ctl 0 --url "https://$ADDR" --cacert "$cert" status
ok "meshctl --cacert with the node's certificate"
ctl 0 --url "https://localhost:$PORT" --cacert "$cert" status
ok "meshctl --cacert by name"
ctl 4 --url "https://$ADDR" --cacert "$pki/ca1.pem" status
expect_in "meshctl refuses a certificate from another CA" "$tmp/err" "with --cacert"
ctl 4 --url "https://$ADDR" --cacert "$cert" --pin "$wrong" status
ok "meshctl with --cacert and --pin needs both"
ctl 1 --url "https://$ADDR" --cacert "$tmp/none.pem" status
expect_in "meshctl names a missing CA file" "$tmp/err" "none.pem"
ctl 7 --url "http://$ADDR" status
expect_in "meshctl http:// to a TLS node: hint" "$tmp/err" "https://"

# the certificate is reused after a restart
stop "$gen_pid"
start gen
gen_pid=$PID
expect_eq "same fingerprint after a restart" "$FP" "$(fp_of "$cert")"
[ "$(grep -c "generated a self-signed certificate" "$tmp/gen.log")" == 0 ] || fail "generated again"
ok "the restart did not generate a new certificate"
ctl 0 --url "https://$ADDR" --pin "$(fp_of "$cert")" status
ok "the old pin still works"
stop "$gen_pid"
gen_fp=$FP

# ---- plain HTTP only when asked for ----------------------------------------------------------

start plain --tls off
expect_eq "--tls off listens on http://" "$SCHEME" "http"
expect_in "--tls off is logged loudly" "$tmp/plain.log" "level=warn comp=node msg=\"TLS IS OFF"
[ ! -e "$tmp/plain/tls" ] || fail "a certificate was generated with tls off"
expect_eq "plain HTTP works with --tls off" "$(code "http://$ADDR/healthz")" 200
c=$(code -k "https://$ADDR/healthz")
[ "${c:0:1}" == x ] || fail "https to a plain node: $c"
ok "https to the plain node fails ($c)"
ctl 0 --url "http://$ADDR" status
ctl 0 --url "http://$ADDR" --pin "$gen_fp" status
expect_in "meshctl warns that a pin does not protect http://" "$tmp/err" "https:// URLs only"
ctl 7 --url "https://$ADDR" --pin "$gen_fp" status
expect_in "meshctl https:// to a plain node: hint" "$tmp/err" "does not answer in TLS"
stop "$PID"
MESHD_TLS=off start plain
expect_eq "MESHD_TLS=off" "$SCHEME" "http"
stop "$PID"
printf 'tls = off\n' >"$tmp/plain.conf"
start plain --config "$tmp/plain.conf"
expect_eq "tls = off in the config file" "$SCHEME" "http"
stop "$PID"

# ---- a configured certificate and key --------------------------------------------------------

start conf --tls-cert "$pki/meshd.test.pem" --tls-key "$pki/meshd.test.key"
expect_eq "configured certificate's fingerprint logged" "$FP" "$(fp_of "$pki/meshd.test.pem")"
[ ! -e "$tmp/conf/tls" ] || fail "a certificate was generated although one is configured"
ok "nothing generated with a configured certificate"
expect_eq "curl --resolve by the certificate's name" \
    "$(code --cacert "$pki/ca1.pem" --resolve "meshd.test:$PORT:127.0.0.1" "https://meshd.test:$PORT/healthz")" 200
expect_eq "curl: a name not in the certificate is refused" \
    "$(code --cacert "$pki/ca1.pem" "https://localhost:$PORT/healthz")" x60
expect_eq "curl: another CA is refused" \
    "$(code --cacert "$pki/ca2.pem" --resolve "meshd.test:$PORT:127.0.0.1" "https://meshd.test:$PORT/healthz")" x60
sclient -servername meshd.test -CAfile "$pki/ca1.pem" -verify_return_error || fail "s_client: $(tail -5 "$tmp/out")"
expect_in "s_client sees the configured certificate" "$tmp/out" "subject=CN = meshd.test, O = meshd tests"
ctl 0 --url "https://$ADDR" --cacert "$pki/ca1.pem" status
ok "meshctl --cacert with the configured CA"
ctl 4 --url "https://$ADDR" --cacert "$pki/ca2.pem" status
expect_in "meshctl refuses the wrong CA" "$tmp/err" "cannot verify the TLS certificate"
# an RSA certificate: RSA key exchange and CBC refused, ECDHE-RSA with AEAD accepted
for c in AES128-SHA AES256-GCM-SHA384 ECDHE-RSA-AES128-SHA; do
    if sclient -tls1_2 -cipher "$c:@SECLEVEL=0"; then fail "weak cipher $c accepted"; fi
    expect_in "RSA certificate: cipher $c refused" "$tmp/out" "alert handshake failure"
done
sclient -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384 || fail "ECDHE-RSA-AES256-GCM-SHA384 refused"
expect_in "RSA certificate: ECDHE-RSA-AES256-GCM-SHA384 accepted" "$tmp/out" "Cipher is ECDHE-RSA-AES256-GCM-SHA384"
stop "$PID"

# ---- SIGHUP reloads the certificate -----------------------------------------------------------

# the configured files are replaced (as certbot or a secret mount would), then SIGHUP: new
# connections get the new certificate; a broken file leaves the one in use
make_cert meshd.test2 ca1 "ec -pkeyopt ec_paramgen_curve:P-256" \
    'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:meshd.test,IP:127.0.0.1\n'
cp "$pki/meshd.test.pem" "$tmp/live.pem"
cp "$pki/meshd.test.key" "$tmp/live.key"
chmod 600 "$tmp/live.key"
start hup --tls-cert "$tmp/live.pem" --tls-key "$tmp/live.key"
expect_eq "before SIGHUP: the first certificate" "$FP" "$(fp_of "$pki/meshd.test.pem")"
cp "$pki/meshd.test2.pem" "$tmp/live.pem"
cp "$pki/meshd.test2.key" "$tmp/live.key"
kill -HUP "$PID"
for _ in $(seq 1 100); do
    grep -q "reloaded: certificate" "$tmp/hup.log" && break
    sleep 0.1
done
expect_in "SIGHUP: reload logged" "$tmp/hup.log" "reloaded: certificate $tmp/live.pem fingerprint $(fp_of "$pki/meshd.test2.pem")"
sclient -servername meshd.test -CAfile "$pki/ca1.pem" -verify_return_error || fail "s_client after SIGHUP: $(tail -5 "$tmp/out")"
openssl x509 -noout -fingerprint -sha256 <"$tmp/out" | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f' >"$tmp/served"
expect_eq "SIGHUP: new connections get the new certificate" "sha256:$(cat "$tmp/served")" "$(fp_of "$pki/meshd.test2.pem")"
printf 'not a certificate\n' >"$tmp/live.pem"
kill -HUP "$PID"
for _ in $(seq 1 100); do
    grep -q "was not reloaded" "$tmp/hup.log" && break
    sleep 0.1
done
expect_in "SIGHUP with a broken file: says so" "$tmp/hup.log" "the certificate was not reloaded, the one in use stays"
sclient -servername meshd.test -CAfile "$pki/ca1.pem" -verify_return_error || fail "s_client after a failed reload: $(tail -5 "$tmp/out")"
openssl x509 -noout -fingerprint -sha256 <"$tmp/out" | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f' >"$tmp/served"
expect_eq "SIGHUP with a broken file: the certificate in use stays" "sha256:$(cat "$tmp/served")" "$(fp_of "$pki/meshd.test2.pem")"
stop "$PID"

# ---- client certificates ---------------------------------------------------------------------

srv=(--tls-cert "$pki/meshd.test.pem" --tls-key "$pki/meshd.test.key" --tls-client-ca "$pki/ca1.pem")
curl_to() { code --cacert "$pki/ca1.pem" "$@" "https://$ADDR/healthz"; }
start mtls "${srv[@]}" --tls-client-auth require
c=$(curl_to)
[ "${c:0:1}" == x ] || fail "no client certificate was accepted: $c"
ok "require: curl without a client certificate refused ($c)"
expect_eq "require: curl with a certificate of the CA" \
    "$(curl_to --cert "$pki/client1.pem" --key "$pki/client1.key")" 200
c=$(curl_to --cert "$pki/rogue.pem" --key "$pki/rogue.key")
[ "${c:0:1}" == x ] || fail "a certificate of another CA was accepted: $c"
ok "require: curl with a certificate of another CA refused ($c)"
ctl 4 --url "https://$ADDR" --cacert "$pki/ca1.pem" status
expect_in "require: meshctl without a certificate says so" "$tmp/err" "requires a client certificate"
ctl 0 --url "https://$ADDR" --cacert "$pki/ca1.pem" --cert "$pki/client1.pem" --key "$pki/client1.key" status
expect_in "require: meshctl with a certificate; status shows it" "$tmp/out" "CN = client1"
MESH_CERT=$pki/client1.pem MESH_KEY=$pki/client1.key ctl 0 --url "https://$ADDR" --cacert "$pki/ca1.pem" status
ok "require: meshctl with MESH_CERT and MESH_KEY"
ctl 4 --url "https://$ADDR" --cacert "$pki/ca1.pem" --cert "$pki/rogue.pem" --key "$pki/rogue.key" status
expect_in "require: meshctl with another CA's certificate refused" "$tmp/err" "refused the client certificate"
ctl 2 --url "https://$ADDR" --cacert "$pki/ca1.pem" --key "$pki/client1.key" status
expect_in "meshctl --key needs --cert" "$tmp/err" "--key needs --cert"
sclient -CAfile "$pki/ca1.pem" -cert "$pki/client1.pem" -key "$pki/client1.key" -verify_return_error \
    || fail "s_client with a client certificate: $(tail -5 "$tmp/out")"
ok "require: s_client with a client certificate"
stop "$PID"

start mtls "${srv[@]}" --tls-client-auth optional
expect_eq "optional: no certificate is fine" "$(curl_to)" 200
expect_eq "optional: a certificate of the CA" "$(curl_to --cert "$pki/client1.pem" --key "$pki/client1.key")" 200
c=$(curl_to --cert "$pki/rogue.pem" --key "$pki/rogue.key")
[ "${c:0:1}" == x ] || fail "optional: a certificate of another CA was accepted: $c"
ok "optional: a certificate of another CA refused ($c)"
stop "$PID"

# ---- bad files stop the start, naming the file -----------------------------------------------

# expect_start_error WANT ARGS...: meshd must exit 2 with WANT on stderr
expect_start_error() {
    local want=$1 rc=0
    shift
    "$MESHD" --data-dir "$tmp/bad" --listen 127.0.0.1:0 --admin-token "$TOKEN" "$@" \
        >"$tmp/out" 2>"$tmp/err" </dev/null &
    local pid=$!
    pids+=("$pid")
    wait "$pid" || rc=$?
    [ "$rc" == 2 ] || fail "meshd $*: exit $rc, expected 2"
    expect_in "start refused: $want" "$tmp/err" "$want"
}
printf -- '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n' >"$tmp/junk.key"
printf 'not a certificate\n' >"$tmp/junk.pem"
expect_start_error "tls_key $tmp/junk.key: not a usable PEM private key" \
    --tls-cert "$pki/meshd.test.pem" --tls-key "$tmp/junk.key"
expect_start_error "tls_key $pki/client1.key does not match the certificate in tls_cert $pki/meshd.test.pem" \
    --tls-cert "$pki/meshd.test.pem" --tls-key "$pki/client1.key"
expect_start_error "tls_cert $tmp/nope.pem: No such file or directory" \
    --tls-cert "$tmp/nope.pem" --tls-key "$pki/meshd.test.key"
expect_start_error "tls_cert $tmp/junk.pem: no usable PEM certificate" \
    --tls-cert "$tmp/junk.pem" --tls-key "$pki/meshd.test.key"
expect_start_error "tls_client_auth = require needs tls_client_ca" --tls-client-auth require
expect_start_error "tls_client_ca $tmp/junk.pem: no usable PEM CA certificate" \
    --tls-client-auth optional --tls-client-ca "$tmp/junk.pem"
if grep -q "bm90IGEga2V5" "$tmp/err"; then fail "key file contents in the error"; fi
ok "no key contents in the error"
rc=0
"$MESHD" --tls maybe --check-config >"$tmp/out" 2>"$tmp/err" || rc=$?
expect_eq "--tls maybe is a usage error" "$rc" 1
expect_in "--tls maybe: the choices" "$tmp/err" "on|off"

echo "all TLS tests passed"
