#!/bin/sh
# The intensive care scenario end to end: mosquitto, meshd, a webhook receiver (the pager)
# and eight MQTT bedside monitors on loopback; see examples/README.md. Options: run.sh --help.
exec /usr/bin/python3 "$(dirname "$0")/scenario.py" "$@"
