#!/bin/sh
# Federated scan overhead vs the same query on local data (see bench/federated.py).
# Usage: bench/federated.sh [--rows N] [--runs N] [--warmup N]
set -e
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/federated.py "$@"
