#!/usr/bin/python3
"""
test_power.py — the power governor in the real appliance, on real events.

  test_power.py BINDIR hold|failsafe

hold: outpostd infers simulated events on the CPU; the simulated node (power.sensors: sim)
  turns the work infer reports into watts (30 W idle, 20 mJ per event). First with no budget:
  the baseline power of this input, measured. Then an operator sets a budget of 2/3 of it
  (`outpostctl power set`): the governor must hold it by throttling inference (duty cycle) —
  mean within ±3% of the budget over 30 s, no second more than 10% over — while every event
  stays accounted: the ingest window fills and pushes back on the sender (its policy), nothing
  is dropped, and after the budget is cleared every event sent is stored and north, once.
failsafe: the node's power comes from a site meter, a real ZeroMQ PUB peer in this test. When
  it stops publishing the governor must reach the safe setting within the meter's staleness
  plus one period, say so in status and metrics, flag the rows inferred meanwhile (bit 20),
  and recover when readings return. Then the supervisor is frozen (SIGSTOP): the infer stage,
  hearing nothing from the governor, falls back to the safe setting by itself.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, fail, free_port, need_modules  # noqa: E402

F_POWER_FAILSAFE = 1 << 20


def power(app):
    return app.status()["power"]


def sample(app, seconds):
    """The governor's reading once a second for `seconds`."""
    out = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        p = power(app)
        if p["reading"]:
            out.append(p["watts"])
        time.sleep(1.0)
    return out


def start_sender(app, rate, count):
    return subprocess.Popen([os.path.join(app.bindir, "outpost-sim"), "--endpoint", app.endpoint,
                             "--rate", str(rate), "--count", str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_hold(bindir):
    # power.min_duty 2%, not the default 5%: the simulated node's watts follow the events infer
    # completes, and with the FP4 kernels of 9773cff a 5 % duty cycle still completed enough of
    # them here to draw 63-65 W against a 60 W budget (the governor at its floor, "limiting
    # duty"); before, 58-59 W. This test is of the governor holding a budget inside its range.
    app = Appliance(bindir, "power-hold", config={
        "power": {"sensors": "sim", "window": "30s", "sim.idle": "30W", "sim.full": "130W", "sim.rate": 5000,
                  "min_duty": "2%"},
        "ingest": {"window_events": 30000},
    })
    try:
        rate, count = 3000, 3000 * 75
        sender = start_sender(app, rate, count)
        app.wait(lambda: app.status()["events"]["accepted"] > 20000, 60, "events flowing")
        base = sample(app, 8)
        base_w = sum(base) / len(base)
        print("baseline, no budget: %.1f W mean over %d s (%s)" % (base_w, len(base), ", ".join("%.0f" % w for w in base)))
        check(base_w > 70, "the input should draw well above idle without a budget (%.1f W)" % base_w)
        budget = round(base_w * 2 / 3)
        rc, out = app.ctl("power", "set", "%dW" % budget)
        check("power budget %d.0 W" % budget in out, "power set answered: %r" % out)
        with open(os.path.join(app.state, "power-override")) as f:
            check(f.read().split()[0] == str(budget * 1000), "override persisted in state_dir/power-override")
        time.sleep(10)  # settling (the governor's own step test bounds this; here: the real loop)
        held = sample(app, 30)
        mean = sum(held) / len(held)
        worst = max(held)
        st = app.status()
        p = st["power"]
        duty = p["duty"]
        print("budget %d W (2/3 of the baseline): %.1f W mean over %d s (%+.1f%%), worst second %.1f W (%+.1f%%), "
              "duty %.0f%%, limiting %s, %.1f mJ/event p50" % (budget, mean, len(held), 100 * (mean - budget) / budget,
                                                              worst, 100 * (worst - budget) / budget, 100 * duty,
                                                              p["limiting"], 1e3 * p["j_per_event_p50"]))
        print("  each second: " + ", ".join("%.0f" % w for w in held))
        check(abs(mean - budget) <= 0.03 * budget, "mean %.1f W not within 3%% of the %d W budget" % (mean, budget))
        check(worst <= 1.10 * budget, "a second at %.1f W, more than 10%% over %d W" % (worst, budget))
        check(p["limiting"] == "duty" and duty < 1.0, "the duty cycle should be what limits: %s" % p)
        check(not p["failsafe"], "no fail-safe with a working sensor")
        ing = st["stages"]["ingest"]
        infer_rate = st["rates"]["stored_per_s"]
        print("throttled: %.0f events/s stored of %d offered; ingest holds %d of %d (its window pushes back on "
              "the sender)" % (infer_rate, rate, ing["gauges"]["in_flight"], ing["gauges"]["window_events"]))
        check(infer_rate < 0.9 * rate, "inference should be throttled below the offered rate")
        check(st["events"]["dropped"] == 0, "nothing dropped while throttled: %s" % st["events"])
        text = app.ctl("status")[1]
        check("power    " in text and "of %d.0 W budget (override)" % budget in text, "status shows power against budget:\n" + text)
        metrics = app.ctl("metrics")[1]
        check("outpost_power_budget_watts %d.000" % budget in metrics, "metrics carry the budget")
        check('outpost_power_limiting{actuator="duty"} 1' in metrics, "metrics name the limiting actuator")
        rc, out = app.ctl("power", "clear")
        check("override cleared" in out, "power clear answered: %r" % out)
        out_s, err_s = sender.communicate(timeout=240)
        check(sender.returncode == 0, "sender failed: %s" % err_s)
        app.wait_delivered(count, timeout=240)
        st = app.status()
        ev = st["events"]
        check(ev["accepted"] == count and ev["stored"] == count and ev["dropped"] == 0 and ev["balanced"],
              "every event accounted: %s" % ev)
        rows = app.north_rows()
        keys = set(zip(rows["stream_id"].tolist(), rows["sequence"].tolist()))
        check(len(rows) == count and len(keys) == count, "north holds each of %d events once (%d rows, %d unique)"
              % (count, len(rows), len(keys)))
        check(not (rows["flags"] & F_POWER_FAILSAFE).any(), "no row flagged fail-safe")
        print("all %d events stored and north once, none dropped" % count)
    finally:
        rc = app.stop()
    check(rc == 0, "outpostd exit status %d" % rc)


class Meter:
    """A site power meter: a ZeroMQ PUB socket publishing watts as text every 200 ms, as a
    line-oriented meter writes them: "70.0W\\r\\n", "70.0 W\\n", "70.0" in turn."""

    def __init__(self, watts):
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.port = free_port()
        self.sock.bind("tcp://127.0.0.1:%d" % self.port)
        self.watts = watts
        self.on = True
        self.silent = threading.Event()  # set by the thread once it has seen on == False
        self.garbage = False
        self.n_garbage = 0  # garbled messages sent
        self.stop_ = False
        self.last_sent = 0.0  # time.monotonic() of the last reading sent
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_:
            if self.on:
                self.silent.clear()
            else:
                self.silent.set()
            if self.on and self.garbage:
                self.n_garbage += 1
                self.sock.send_string("watts=lots\noutpost[ingest] ERROR: forged")
            elif self.on:
                self.n_sent = getattr(self, "n_sent", 0) + 1
                self.sock.send_string(("%.1fW\r\n", "%.1f W\n", "%.1f")[self.n_sent % 3] % self.watts)
                self.last_sent = time.monotonic()
            time.sleep(0.2)

    def close(self):
        self.stop_ = True
        self.t.join()
        self.sock.close(0)
        self.ctx.term()


def test_failsafe(bindir):
    meter = Meter(70.0)
    # the budget is an operator's override (no configured one), so that it can be cleared below
    # An override set for 2 hours, saved with an end 30 days away: the wall clock went back by
    # that much since it was set (no RTC after a reboot, a GPS correction). It must not outlast
    # the 2 hours it was set for (before: it held for the 30 days, by the wall clock alone).
    app = Appliance(bindir, "power-failsafe", config={
        "power": {"sensors": "meter", "meter_endpoint": "tcp://127.0.0.1:%d" % meter.port, "min_duty": "10%",
                  "window": "10s"},
    }, state_files={"power-override": "250000 %d 7200\n" % (int(time.time()) + 30 * 86400)})
    try:
        text = app.ctl("status")[1]
        m = re.search(r"override .* until (\d{4}-\d\d-\d\d \d\d:\d\d)", text)
        check(m, "no timed override in status:\n" + text)
        left = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M")) - time.time()
        print("an override set for 2 h, saved to end in 30 days: ends in %.0f min" % (left / 60))
        check(7200 - 300 <= left <= 7200 + 60, "the override ends %.0f s from now, not within its 2 h" % left)
        # and the file holds what is left now: a start after this one (an early clock again, a
        # box without RTC) counts from it, not from the whole 2 h again
        with open(os.path.join(app.state, "power-override")) as f:
            mw, until, secs = (int(x) for x in f.read().split())
        check(mw == 250000 and secs <= 7200 and until <= time.time() + 7200 + 5,
              "the override file after the start: %d %d %d" % (mw, until, secs))
        app.ctl("power", "set", "100W")
        sender = start_sender(app, 1000, 1000 * 40)
        app.wait(lambda: power(app)["reading"] and abs(power(app)["watts"] - 70.0) < 0.01, 20, "the meter's reading")
        app.wait(lambda: app.status()["events"]["stored"] > 2000, 60, "events stored")
        check(not power(app)["failsafe"], "no fail-safe while the meter publishes")
        # A budget the node cannot be brought under: the meter reads 70 W whatever inference does
        # (the draw is not inference's). Under 60 W the governor goes to its slowest setting and,
        # a whole power.window (10 s here) later, says the budget is out of reach: status,
        # metrics, the journal, and an alert north (checked below). Before, status said only
        # "governor limiting: duty".
        app.ctl("power", "set", "60W")
        t_set = time.time()
        app.wait(lambda: power(app)["budget_unreachable"], 60, "the budget reported out of reach")
        p = power(app)
        print("budget 60 W under a steady 70 W: out of reach reported %.1f s after it was set (duty %.0f%%, "
              "limiting %s)" % (time.time() - t_set, 100 * p["duty"], p["limiting"]))
        check(p["duty"] <= 0.11 and p["limiting"] == "duty", "not at the slowest setting: %s" % p)
        text = app.ctl("status")[1]
        check("BUDGET OUT OF REACH" in text and "power.min_duty 10%" in text, "status:\n" + text)
        check("outpost_power_budget_unreachable 1" in app.ctl("metrics")[1], "metrics say out of reach")
        app.wait(lambda: "power budget out of reach: 70.0 W" in app.log_text(), 5, "the journal line")
        app.ctl("power", "set", "100W")
        # a garbled meter message is counted and ignored, never taken as a reading
        meter.garbage = True
        app.wait(lambda: "outpost_power_meter_rejected_total 0" not in app.ctl("metrics")[1], 10,
                 "the garbled meter message counted")
        meter.garbage = False
        check(abs(power(app)["watts"] - 70.0) < 0.01, "the reading is still the meter's 70 W")
        # the readings with a line ending were taken, not counted as garbage: only the garbled ones
        time.sleep(0.5)  # the last garbled one drained
        rejected = int(re.search(r"outpost_power_meter_rejected_total (\d+)", app.ctl("metrics")[1]).group(1))
        check(rejected == meter.n_garbage, "%d meter messages rejected, %d garbled sent: readings with a line "
              "ending among them" % (rejected, meter.n_garbage))
        # and what it said reaches the journal on its own line, without a line of its own
        app.wait(lambda: "'watts=lots?outpost[ingest] ERROR: forged' is not a reading" in app.log_text(), 10,
                 "the garbled message in the journal")
        check(not [ln for ln in app.log_text().splitlines() if ln.startswith("outpost[ingest] ERROR: forged")],
              "a meter message forged a journal line")
        # the meter falls silent
        meter.silent.clear()
        meter.on = False
        check(meter.silent.wait(2), "the meter's thread did not stop sending")
        t_off = meter.last_sent  # no reading after this one
        app.wait(lambda: power(app)["failsafe"], 10, "fail-safe after the meter fell silent")
        p = power(app)
        # when the governor entered it, by its own clock (failsafe_for_s, taken from the reply's
        # arrival): the status polls' pace and delays do not count
        took = time.monotonic() - p["failsafe_for_s"] - t_off
        fs0 = p["failsafe_periods"]
        print("meter silent: fail-safe %.2f s after its last reading (staleness 2 s + period 1 s); duty %.0f%%"
              % (took, 100 * p["duty"]))
        check(took <= 2.0 + 1.0 + 0.6, "fail-safe took %.2f s" % took)
        check(abs(p["duty"] - 0.10) < 1e-6 and p["limiting"] == "failsafe", "safe setting: %s" % p)
        text = app.ctl("status")[1]
        check("FAIL-SAFE" in text and "meter" in text, "status says fail-safe and why:\n" + text)
        check("outpost_power_failsafe 1" in app.ctl("metrics")[1], "metrics say fail-safe")
        app.wait(lambda: app.status()["stages"]["infer"]["counters"].get("power_failsafe_events", 0) > 200, 30,
                 "events inferred under the fail-safe")
        # a lasting outage (north is told of one that lasts 3 periods)
        app.wait(lambda: power(app)["failsafe_periods"] >= fs0 + 4, 10, "four more periods in the fail-safe")
        meter.on = True
        app.wait(lambda: not power(app)["failsafe"], 5, "recovery when readings return")
        print("meter back: the governor controls again (%d fail-safe periods)" % power(app)["failsafe_periods"])
        # a reload of power.min_duty reaches infer's own fall-back without a restart of infer
        with open(app.cfg) as f:
            text = f.read()
        check("min_duty: 10%" in text, "the test's configuration sets power.min_duty 10%")
        with open(app.cfg, "w") as f:
            f.write(text.replace("min_duty: 10%", "min_duty: 20%"))
        infer_pid = app.stage_pid("infer")
        rc, out = app.ctl("reload", check_rc=False)
        check(rc == 0 and "power.min_duty" in out, "reload of power.min_duty: rc %d, %s" % (rc, out))
        time.sleep(2.5)  # two governor periods: the new fail-safe setting has reached infer
        # the governor itself falls silent: infer falls back by itself, to the reloaded setting
        log_path = os.path.join(app.tmp, "log.txt")
        os.kill(app.daemon.pid, signal.SIGSTOP)
        time.sleep(6)
        os.kill(app.daemon.pid, signal.SIGCONT)
        app.wait(lambda: "no word from the power governor" in open(log_path).read(), 10,
                 "infer's own fall-back logged")
        fell = [ln for ln in open(log_path).read().splitlines() if "no word from the power governor" in ln]
        check("(duty 20%," in fell[-1], "infer fell back to the reloaded power.min_duty 20%%: %s" % fell[-1])
        check(app.stage_pid("infer") == infer_pid, "infer was restarted by the reload of power.min_duty")
        app.wait(lambda: "power governor heard again" in open(log_path).read(), 10, "infer hears the governor again")
        out_s, err_s = sender.communicate(timeout=200)
        check(sender.returncode == 0, "sender failed: %s" % err_s)
        app.wait_delivered(40000, timeout=200)
        rows = app.north_rows()
        flagged = int(((rows["flags"] & F_POWER_FAILSAFE) != 0).sum())
        st = app.status()
        counted = st["stages"]["infer"]["counters"]["power_failsafe_events"]
        print("%d rows north flagged as inferred under the fail-safe; infer counted %d" % (flagged, counted))
        check(flagged > 0 and flagged == counted, "flagged rows (%d) = events infer ran under the fail-safe (%d)"
              % (flagged, counted))
        check(len(rows) == 40000 and st["events"]["dropped"] == 0, "every event north once")
        # north heard of it: an alert for the fail-safe, and telemetry with the power figures
        import glob
        import json as js
        alerts = glob.glob(os.path.join(app.north_dir, "alert-power_failsafe-*.json"))
        check(len(alerts) >= 1, "a power_failsafe alert north: %s" % os.listdir(app.north_dir)[:20])
        with open(alerts[0]) as f:
            a = js.load(f)
        check(a["alert"] == "power_failsafe" and "meter" in a["text"], "the alert says why: %s" % a)
        tele = glob.glob(os.path.join(app.north_dir, "telemetry-status-*.json"))
        check(len(tele) >= 1, "telemetry north")
        with open(tele[0]) as f:
            t = js.load(f)
        check("power" in t and "events" in t, "telemetry is the status snapshot")
        print("north received alert %s: %s; and %d telemetry snapshot(s)" % (os.path.basename(alerts[0]), a["text"],
                                                                          len(tele)))
        out_of_reach = glob.glob(os.path.join(app.north_dir, "alert-power_budget_unreachable-*.json"))
        check(len(out_of_reach) == 1, "one power_budget_unreachable alert north: %s" % out_of_reach)
        with open(out_of_reach[0]) as f:
            a = js.load(f)
        check("70.0 W mean over the window" in a["text"] and "over the budget of 60.0 W" in a["text"] and
              "power.min_duty 10%" in a["text"] and "inference using " in a["text"], "the alert: %s" % a)
        # the budget cleared while the meter is silent: with nothing to hold there is no fail-safe
        # (status must not go on saying FAIL-SAFE); a budget set again while still blind is a
        # new fail-safe, counted from then
        meter.silent.clear()
        meter.on = False
        check(meter.silent.wait(2), "the meter's thread did not stop sending")
        app.wait(lambda: power(app)["failsafe"], 10, "fail-safe after the meter fell silent again")
        app.ctl("power", "clear")
        app.wait(lambda: not power(app)["failsafe"], 5, "no fail-safe once no budget is in force")
        check("FAIL-SAFE" not in app.ctl("status")[1], "status still says fail-safe with no budget")
        time.sleep(2.5)
        app.ctl("power", "set", "100W")
        app.wait(lambda: power(app)["failsafe"], 5, "fail-safe when a budget is set while blind")
        p = power(app)
        check(p["failsafe_for_s"] < 2.0, "the new fail-safe is counted from the new budget: %s" % p)
        print("budget cleared while blind: fail-safe ended; set again: a new one, %.2f s old" % p["failsafe_for_s"])
    finally:
        rc = app.stop()
        meter.close()
    check(rc == 0, "outpostd exit status %d" % rc)


def main():
    bindir, case = sys.argv[1], sys.argv[2]
    need_modules("h5py", "zmq")
    if case == "hold":
        test_hold(bindir)
    elif case == "failsafe":
        test_failsafe(bindir)
    else:
        fail("unknown case " + case)
    print("ok: power " + case)


if __name__ == "__main__":
    main()
