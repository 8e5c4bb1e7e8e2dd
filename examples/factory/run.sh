#!/bin/sh
# The smart factory scenario end to end: mosquitto, meshd, a webhook receiver and 1000 MQTT
# sensor nodes on loopback; see examples/README.md. Options: run.sh --help.
exec /usr/bin/python3 "$(dirname "$0")/scenario.py" "$@"
