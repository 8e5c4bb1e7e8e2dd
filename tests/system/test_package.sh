#!/usr/bin/env bash
# The Debian package, end to end on this machine: `cmake --build BUILD --target package`
# makes it; its control data, conffiles and contents are checked; the man pages render
# without warnings and name every option of meshd --help; `dpkg -i` installs it (postinst
# makes the meshd user, the KEK and the admin token, root-only); a reinstall keeps them and
# a changed conffile; `systemd-analyze verify` accepts the unit and `security` scores it; the unit's own ExecStart line runs as the meshd user (setpriv, no new
# privileges) with the credentials directory systemd would give it, and answers /readyz and
# /v1/status over TLS; a clean stop, `meshd --verify`; `dpkg --purge` removes it. The
# machine is left as found (trap), and a machine that has meshd installed is not touched.
#
# Needs root and dpkg; exits 77 (skipped) with the reason otherwise.
set -euo pipefail
B=${MESH_BUILD:?}; S=${MESH_SRC:?}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok   - $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i, a system user)"
command -v dpkg-deb >/dev/null && command -v dpkg-shlibdeps >/dev/null \
  || skip "dpkg-deb or dpkg-shlibdeps missing (scripts/setup.sh installs dpkg-dev)"
command -v setpriv >/dev/null || skip "setpriv missing (util-linux)"

# one run at a time on this machine (two build directories may test at once)
exec 9>/tmp/meshd-package-test.lock
flock -w 900 9 || fail "another package test holds /tmp/meshd-package-test.lock"

if dpkg-query -W -f='${Status}' meshd 2>/dev/null | grep -q "ok installed"; then
  skip "a meshd package is installed on this machine: not touching it"
fi
for p in /etc/meshd /var/lib/meshd; do
  [ -e "$p" ] && skip "$p exists (not made by this test): not touching it"
done
getent passwd meshd >/dev/null && skip "a user meshd exists (not made by this test)"

T=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  dpkg --purge meshd >/dev/null 2>&1 || true
  rm -rf /etc/meshd /var/lib/meshd
  if getent passwd meshd >/dev/null; then deluser --system --quiet meshd >/dev/null 2>&1 || true; fi
  if getent group meshd >/dev/null; then delgroup --system --quiet meshd >/dev/null 2>&1 || true; fi
  rm -rf "$T"
}
trap cleanup EXIT

# ---- build and inspect ----
cmake --build "$B" --target package >"$T/build.log" 2>&1 || { cat "$T/build.log"; fail "cpack"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$B/CMakeCache.txt")
deb="$B/meshd_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || fail "no $deb after the package target: $(ls "$B"/*.deb 2>&1)"
ok "cmake --build --target package made $(basename "$deb")"

[ "$(dpkg-deb -f "$deb" Package)" = meshd ] || fail "package name"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "version is not the project's"
deps=$(dpkg-deb -f "$deb" Depends)
for d in adduser procps libsqlite3-0 libssl3 libevent-2.1-7 libevent-openssl-2.1-7 libjansson4 \
  libyaml-0-2 libcurl4; do
  grep -q "\b$d\b" <<<"$deps" || fail "Depends lacks $d: $deps"
done
ok "control: name, version $version, Depends from dpkg-shlibdeps ($deps)"

dpkg-deb -e "$deb" "$T/ctl"
grep -qx /etc/meshd/meshd.conf "$T/ctl/conffiles" || fail "meshd.conf is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$T/ctl/$s" ] || fail "no executable $s"
  sh -n "$T/ctl/$s" || fail "$s: syntax"
done
ok "conffiles and maintainer scripts"

dpkg-deb -c "$deb" >"$T/contents"
for f in ./usr/bin/meshd ./usr/bin/meshctl ./usr/share/man/man8/meshd.8.gz \
  ./usr/share/man/man1/meshctl.1.gz ./usr/lib/systemd/system/meshd.service \
  ./etc/meshd/meshd.conf ./usr/share/doc/meshd/operations.md \
  ./usr/share/doc/meshd/examples/meshd.conf ./usr/share/doc/meshd/copyright; do
  grep -q " $f\$" "$T/contents" || fail "the package lacks $f"
done
ok "contents: programs, man pages, unit, config, docs"

# ---- man pages: real and complete ----
dpkg-deb -x "$deb" "$T/x"
if command -v man >/dev/null; then
  for m in "$T/x/usr/share/man/man8/meshd.8.gz" "$T/x/usr/share/man/man1/meshctl.1.gz"; do
    LC_ALL=C.UTF-8 MANWIDTH=200 man --warnings -l "$m" >"$T/man.txt" 2>"$T/man.err" \
      || fail "man $m"
    [ -s "$T/man.err" ] && fail "man warnings for $m: $(cat "$T/man.err")"
    grep -q "^SEE ALSO" "$T/man.txt" || fail "$m has no SEE ALSO"
  done
  LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$T/x/usr/share/man/man8/meshd.8.gz" >"$T/meshd.txt" 2>/dev/null
  for o in $("$B/meshd" --help | grep -oE '^  --[a-z-]+'); do
    grep -qF -- "$o" "$T/meshd.txt" || fail "meshd(8) lacks $o"
  done
  for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" FILES; do
    grep -q "^$s" "$T/meshd.txt" || fail "meshd(8) lacks the section $s"
  done
  LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$T/x/usr/share/man/man1/meshctl.1.gz" >"$T/meshctl.txt" 2>/dev/null
  for c in "meshctl status" "meshctl product apply" "meshctl keys rotate" "meshctl audit verify"; do
    grep -qF "$c" "$T/meshctl.txt" || fail "meshctl(1) lacks $c"
  done
  ok "man pages render without warnings; meshd(8) names every option of --help"
fi

# ---- install ----
dpkg -i "$deb" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i"; }
getent passwd meshd >/dev/null || fail "postinst made no meshd user"
shell=$(getent passwd meshd | cut -d: -f7)
case "$shell" in */nologin | */false) ;; *) fail "meshd's shell is $shell" ;; esac
[ "$(id -u meshd)" -lt 1000 ] || fail "meshd is not a system user"
for f in /etc/meshd/kek.key /etc/meshd/admin-token; do
  [ "$(stat -c '%a %U' "$f")" = "600 root" ] || fail "$f: $(stat -c '%a %U' "$f")"
done
grep -qE '^[0-9a-f]{64}$' /etc/meshd/kek.key || fail "the KEK is not 64 hex digits"
grep -q "kek.key" "$T/dpkg.log" || fail "postinst did not say where the KEK is"
ok "dpkg -i: system user meshd ($shell), KEK and admin token root-only in /etc/meshd"

# an upgrade (here: the same package again): the KEK, the token and a changed conffile stay
kek_sum=$(sha256sum /etc/meshd/kek.key)
token_sum=$(sha256sum /etc/meshd/admin-token)
echo "site = changed-by-the-admin" >>/etc/meshd/meshd.conf
dpkg -i --force-confold "$deb" >"$T/dpkg2.log" 2>&1 || { cat "$T/dpkg2.log"; fail "reinstall"; }
[ "$(sha256sum /etc/meshd/kek.key)" = "$kek_sum" ] || fail "the upgrade replaced the KEK"
[ "$(sha256sum /etc/meshd/admin-token)" = "$token_sum" ] || fail "the upgrade replaced the token"
grep -q "changed-by-the-admin" /etc/meshd/meshd.conf || fail "the upgrade lost a conffile change"
sed -i '/changed-by-the-admin/d' /etc/meshd/meshd.conf
ok "reinstall (upgrade path): the KEK, the admin token and the admin's meshd.conf are kept"

unit=/usr/lib/systemd/system/meshd.service
for k in "User=meshd" "StateDirectory=meshd" "ConfigurationDirectory=meshd" \
  "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes" "NoNewPrivileges=yes" \
  "CapabilityBoundingSet=" "SystemCallFilter=@system-service" "LoadCredential=kek:" \
  "ExecReload=/bin/kill -HUP"; do
  grep -q "^$k" "$unit" || fail "the unit lacks $k"
done
grep -q "^RestrictAddressFamilies=" "$unit" || fail "the unit lacks RestrictAddressFamilies"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" >"$T/verify.log" 2>&1 \
    || { cat "$T/verify.log"; fail "systemd-analyze verify"; }
  [ -s "$T/verify.log" ] && { cat "$T/verify.log"; fail "systemd-analyze verify warns"; }
  ok "systemd-analyze verify accepts the unit"
  # the exposure score of systemd's own security review (0 best, 10 worst; "OK" below 4)
  if systemd-analyze security --offline=true "$unit" >"$T/security.log" 2>&1; then
    score=$(sed -n 's/.*Overall exposure level for meshd.service: \([0-9.]*\).*/\1/p' "$T/security.log")
    [ -n "$score" ] || { cat "$T/security.log"; fail "no exposure score"; }
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0: $(grep '✗' "$T/security.log")"
    ok "systemd-analyze security: exposure $score"
  fi
else
  echo "note: no systemd-analyze here, the unit is not verified"
fi

# ---- the unit's command, as systemd would run it ----
# StateDirectory=meshd and LoadCredential= by hand: /var/lib/meshd owned by meshd (0700),
# and a credentials directory only meshd can read, substituted for %d
install -d -o meshd -g meshd -m 0700 /var/lib/meshd
creds="$T/creds"
install -d -o meshd -g meshd -m 0500 "$creds"
install -o meshd -g meshd -m 0400 /etc/meshd/kek.key "$creds/kek"
install -o meshd -g meshd -m 0400 /etc/meshd/admin-token "$creds/admin-token"
chmod 0755 "$T"
exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
read -ra argv <<<"${exec_line//%d/$creds}"
[ "${argv[0]}" = /usr/bin/meshd ] || fail "ExecStart runs ${argv[0]}"
# a free port instead of the configured 7070 (other tests share this machine)
(cd /var/lib/meshd && exec setpriv --reuid meshd --regid meshd --init-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "${argv[@]}" --listen 127.0.0.1:0) \
  >"$T/out" 2>"$T/log" &
pid=$!
url=""
for _ in $(seq 1 150); do
  url=$(grep -oE 'listening on https://[0-9.:]+' "$T/log" | head -1 | sed 's/listening on //' || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$T/log"; fail "meshd exited at start"; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$T/log"; fail "meshd did not start"; }
ready=$(curl -sS --cacert /var/lib/meshd/tls/cert.pem "$url/readyz")
[ "$ready" = ready ] || fail "/readyz: $ready"
code=$(curl -sS -o "$T/status.json" -w '%{http_code}' --cacert /var/lib/meshd/tls/cert.pem \
  -H "Authorization: Bearer $(cat /etc/meshd/admin-token)" "$url/v1/status")
[ "$code" = 200 ] || fail "/v1/status with the packaged admin token: $code $(cat "$T/status.json")"
ok "ExecStart as meshd (setpriv, no new privileges): /readyz over TLS, the admin token works"

[ "$(stat -c %U /var/lib/meshd/catalog.db)" = meshd ] || fail "catalog.db not owned by meshd"
[ -e /var/lib/meshd/kek.key ] && fail "a KEK was made in the data directory"
grep -q "NEW key-encryption key" "$T/log" && fail "meshd generated a KEK"
grep -q "key-encryption key .* from .*$creds/kek" "$T/log" || fail "the KEK did not come from the credential: $(grep crypt "$T/log")"
grep -qF "$(cat /etc/meshd/admin-token)" "$T/log" "$T/out" && fail "the admin token was printed"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || { cat "$T/log"; fail "meshd exited $rc on SIGTERM"; }
setpriv --reuid meshd --regid meshd --init-groups -- /usr/bin/meshd --data-dir /var/lib/meshd \
  --kek-file "$creds/kek" --verify >"$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "verify"; }
ok "the data is the meshd user's, the KEK is not beside it; clean stop; meshd --verify"

# ---- purge ----
dpkg --purge meshd >"$T/purge.log" 2>&1 || { cat "$T/purge.log"; fail "dpkg --purge"; }
[ -e /usr/bin/meshd ] && fail "/usr/bin/meshd is still there"
[ -e /etc/meshd/meshd.conf ] && fail "purge left the conffile"
[ -e /etc/meshd/admin-token ] && fail "purge left the admin token"
[ -e /etc/meshd/kek.key ] || fail "purge removed the KEK (the data would be lost)"
grep -q "kept /var/lib/meshd" "$T/purge.log" || fail "purge did not say it kept the data"
ok "dpkg --purge: programs, config and token gone; the data and its KEK kept (and said so)"
echo "all package checks passed"
