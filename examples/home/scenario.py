"""The smart home hub, end to end (examples/home/run.sh runs this).

A simulated thermostat (thermostat.py) reports the kitchen's climate over MQTT into
home-42.climate. The kitchen is cold (night set-back, 15 degC). The rule too-cold (below
16 degC for 5 minutes) fires: the hub publishes the set point {"target": 19.5} on
home/kitchen/thermostat/set, the thermostat heats, its reported temperature rises, and the
alert resolves at 17.5 degC. A signed webhook (the home automation) sees both transitions.

The hub acts alone: it runs once with no mesh configured, and once with a mesh configured
whose servers cannot be reached (the uplink is down): the same outcome both times.

The thermostat runs on simulated time (30 s of room time per report, a report every 50 ms):
`for: 5m` is measured in the rows' own times.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import edge  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Home(edge.Scenario):
    def add_args(self, ap):
        ap.add_argument("--uplink", choices=("none", "unreachable", "both"), default="both",
                        help="run with no mesh configured, with a mesh that cannot be reached, "
                        "or both in turn (default)")
        ap.add_argument("--room", default="kitchen")


def run_hub(s, variant):
    o = s.opts
    check = s.check
    room = o.room
    args = ["--mqtt-url", "mqtt://127.0.0.1:%d" % s.broker_port]
    if variant == "unreachable":
        # a mesh server that is not there: nothing listens on this port
        args += ["--mesh", "nats://127.0.0.1:%d" % edge.free_port()]
    print("# hub with uplink: %s" % variant, flush=True)
    hub = s.meshd(args, name="hub-" + variant)
    hook = s.webhook()
    st, status = s.api("GET", "/v1/status")
    mesh = status.get("mesh", {}) if st == 200 else {}
    if variant == "none":
        check("no mesh configured", mesh.get("enabled") is False, mesh)
    else:
        check("a mesh is configured and not connected (%s)" % mesh.get("state"),
              mesh.get("enabled") is True and mesh.get("state") != "connected", mesh)
    s.setup_domain("home-42", "home")
    s.rule("home", "too-cold", hook)
    s.mapping("climate", "home/{room}/climate", "home-42", "climate")
    s.mqtt_ready()

    log = os.path.join(s.tmp, "thermostat-%s.log" % variant)
    th = s.spawn(["/usr/bin/python3", os.path.join(HERE, "thermostat.py"), "--broker",
                  "127.0.0.1:%d" % s.broker_port, "--room", room, "--temperature", "15.4",
                  "--setpoint", "15", "--reports", "120"], os.path.basename(log))

    def said():
        with open(log) as f:
            return f.read()
    check("the thermostat got the set point 19.5 over MQTT from the hub",
          edge.wait_for(lambda: re.search(r"set point 19\.5 from home/%s/thermostat/set" % room,
                                          said()), 60), said()[-300:])
    check("the alert resolved once the room was warm again (webhook)",
          edge.wait_for(lambda: hook.events("too-cold", "resolved"), 60))
    th.wait(60)
    check("the thermostat ran to its end", th.returncode == 0, said()[-300:])
    final = re.search(r"final ([0-9.]+) degC, set point ([0-9.]+)", said())
    check("the thermostat followed the set point (%s)" % (final and final.group(0)),
          final and float(final.group(2)) == 19.5 and float(final.group(1)) > 19.0)
    fired = hook.events("too-cold", "fired")
    check("too-cold fired once, for the %s, signed" % room,
          len(fired) == 1 and fired[0]["series"] == {"room": room} and hook.bad_sig == 0,
          (fired, hook.bad_sig))
    r = s.query("SELECT min(temperature) AS lo, max(temperature) AS hi, "
                "sum(heating) AS heated, max(setpoint) AS sp FROM \"home-42\".climate "
                "WHERE room = '%s'" % room)[0]
    check("the reported temperature changed: %.2f .. %.2f degC, heating in %d reports"
          % (r["lo"], r["hi"], r["heated"]),
          r["lo"] < 16 and r["hi"] > 19 and r["heated"] > 0 and r["sp"] == 19.5, r)
    a = s.query("SELECT state FROM \"home-42\".alerts WHERE rule = 'too-cold'")
    check("the alerts product has it, resolved", [x["state"] for x in a] == ["resolved"], a)
    audited = s.must(200, "GET", "/v1/audit?action=action.mqtt&limit=10")["records"]
    check("the MQTT command is audited as delivered",
          any(x.get("outcome") == "ok" for x in audited), audited[:2])
    s.check("meshd ran through (uplink %s)" % variant, hub.poll() is None)
    s.stop_meshd()


def main():
    s = Home("home")
    s.broker()
    variants = ["none", "unreachable"] if s.opts.uplink == "both" else [s.opts.uplink]
    for v in variants:
        run_hub(s, v)
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
