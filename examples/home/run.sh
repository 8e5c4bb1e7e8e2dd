#!/bin/sh
# The smart home hub scenario end to end: mosquitto, meshd (no mesh, then a mesh that cannot
# be reached), a webhook receiver and a simulated MQTT thermostat on loopback; see
# examples/README.md. Options: run.sh --help.
exec /usr/bin/python3 "$(dirname "$0")/scenario.py" "$@"
