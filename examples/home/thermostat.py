#!/usr/bin/python3
"""thermostat.py - a simulated room thermostat for the smart home scenario.

It is an MQTT device, nothing more: it reports the room's climate once per step on
home/ROOM/climate (JSON: ts, temperature, humidity, co2, setpoint, heating) and takes set
points on home/ROOM/thermostat/set (JSON: {"target": 19.5}). The room warms while the
heating runs (the temperature is below the set point) and cools toward the outside
otherwise, so a new set point shows in the reported temperature a few steps later.

Simulated time: each report is --step seconds of room time after the previous one and is
sent --interval real seconds later, from --start (Unix seconds; default: now minus three
hours, so a fast run stays in the past). Prints one line per command received and a last
line with the final state; stops after --reports reports or on SIGTERM.

    examples/home/thermostat.py --broker 127.0.0.1:1883 --room kitchen --temperature 15.4
"""
import argparse
import json
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt

HEAT_RATE = 0.3 / 60  # K per second while heating (a radiator warming a small room)
COOL_RATE = 0.25 / 3600  # K per second per K of difference to outside (heat loss)
MAX_TARGET = 30.0  # a set point above this is refused (and reported), never applied


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the MQTT broker")
    ap.add_argument("--room", default="kitchen")
    ap.add_argument("--temperature", type=float, default=15.4, help="room temperature at start")
    ap.add_argument("--setpoint", type=float, default=15.0, help="set point at start (degC)")
    ap.add_argument("--outside", type=float, default=2.0, help="outside temperature (degC)")
    ap.add_argument("--step", type=float, default=30.0, help="room seconds per report")
    ap.add_argument("--interval", type=float, default=0.05, help="real seconds per report")
    ap.add_argument("--reports", type=int, default=300, help="stop after this many reports")
    ap.add_argument("--start", type=int, default=0, help="room time of the first report")
    o = ap.parse_args()
    host, _, port = o.broker.rpartition(":")
    lock = threading.Lock()
    state = {"target": o.setpoint, "temp": o.temperature, "commands": 0}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    cmd_topic = "home/%s/thermostat/set" % o.room

    def on_message(client, userdata, msg):
        try:
            target = float(json.loads(msg.payload)["target"])
        except (ValueError, KeyError, TypeError):
            print("%s: ignored a command that is not {\"target\": NUMBER}" % o.room, flush=True)
            return
        if not 5.0 <= target <= MAX_TARGET:
            print("%s: refused set point %.1f (outside 5..%.0f)" % (o.room, target, MAX_TARGET),
                  flush=True)
            return
        with lock:
            state["target"] = target
            state["commands"] += 1
            t = state["temp"]
        print("%s: set point %.1f from %s (room at %.2f degC)" % (o.room, target, msg.topic, t),
              flush=True)

    def on_connect(client, userdata, flags, rc):
        client.subscribe(cmd_topic, qos=1)  # again after every reconnect

    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2 (Debian 13) asks for the API version
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="thermostat-" + o.room,
                        clean_session=True)
    else:
        c = mqtt.Client(client_id="thermostat-" + o.room, clean_session=True)
    c.on_message = on_message
    c.on_connect = on_connect
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    ts = o.start or int(time.time()) - 3 * 3600
    heating = False
    n = 0
    while n < o.reports and not stop.is_set():
        with lock:
            t = state["temp"]
            target = state["target"]
            # a thermostat with 0.2 K of hysteresis
            heating = t < target - 0.2 or (heating and t < target + 0.2)
            if heating:
                t += HEAT_RATE * o.step
            t -= COOL_RATE * (t - o.outside) * o.step
            state["temp"] = t
        row = {"ts": ts * 10**9, "temperature": round(t, 2), "humidity": 45.0, "co2": 600,
               "setpoint": target, "heating": heating}
        c.publish("home/%s/climate" % o.room, json.dumps(row), qos=1).wait_for_publish(30)
        ts += int(o.step)
        n += 1
        stop.wait(o.interval)
    with lock:
        print("%s: final %.2f degC, set point %.1f, heating %s, %d reports, %d commands"
              % (o.room, state["temp"], state["target"], "on" if heating else "off", n,
                 state["commands"]), flush=True)
    c.loop_stop()
    c.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
