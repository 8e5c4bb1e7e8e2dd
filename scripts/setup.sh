#!/usr/bin/env bash
# Installs every Debian 12 package meshd needs to build, test, run the demo and
# run the benchmarks. Idempotent: installs only what is missing. Needs root (or sudo when not
# root).
#
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh --bench    also the benchmark peers (InfluxDB, PostgreSQL, gnuplot, psycopg2)
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libsqlite3-dev sqlite3 libssl-dev openssl libevent-dev libjansson-dev libyaml-dev
  libcurl4-openssl-dev curl zlib1g-dev libzstd-dev zstd libcmocka-dev
  libnats-dev nats-server libcrypt-dev libmosquitto-dev mosquitto mosquitto-clients
  python3 jq procps iproute2 util-linux
  dpkg-dev fakeroot adduser systemd man-db python3-yaml
  prometheus python3-paho-mqtt python3-jsonschema
)
# dpkg-dev: CPack's Debian package (dpkg-shlibdeps); adduser, systemd (systemd-analyze) and
# man-db: tests/system/test_package.sh; python3-yaml: the Kubernetes manifests' check;
# prometheus: promtool checks deploy/prometheus/ (tests/system/test_monitoring.py);
# python3-paho-mqtt: the MQTT devices of the edge scenarios (examples/*/run.sh);
# python3-jsonschema: OpenLineage events checked against a schema (tests/system/test_openlineage.py)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(influxdb influxdb-client postgresql postgresql-client gnuplot-nox hyperfine python3-psycopg2)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
# as root (a container, CI) apt-get runs as it is; otherwise through sudo, when there is one
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: not root and no sudo: as root, run apt-get install ${missing[*]}" >&2
    exit 1
  fi
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# an install cut short earlier (a killed apt-get) leaves packages unpacked but not configured,
# and apt-get refuses to go on until dpkg finishes them
if [ -n "$(ls -A /var/lib/dpkg/updates 2>/dev/null)" ]; then
  echo "setup: finishing an interrupted dpkg run first (dpkg --configure -a)"
  $SUDO dpkg --configure -a
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
