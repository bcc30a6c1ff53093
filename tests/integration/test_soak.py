#!/usr/bin/python3
"""test_soak.py — fault injection into the real daemon under load.

  test_soak.py BINDIR [SECONDS] [SEED]

outpost-sim feeds outpostd at 3,000 events/s while, every 1.5-3.5 s, a random stage among
infer, store and uplink is SIGKILLed (a crash) or SIGSTOPped (a hang: it stops reporting and
must be killed and restarted by the supervisor). For each fault the time until the supervisor
acts is measured: a crash must be noticed within 1 s, a hang within the stage deadline (3 s
here) plus 1 s. At the end every accepted event must be stored exactly once (north holds one
row per event, no duplicates) or counted as dropped with a reason (ingest gives an event up
after 8 resends, reason resend_exhausted: under a fault every few seconds an event can outlive
that many restarts), and the daemon must still be running its stages. Prints one JSON line with the figures. CI runs 45 s; tests/soak/run.sh
runs longer soaks on demand.

Ingest is not a target here: an ingest process that dies loses what ZeroMQ had queued in its
socket without anyone counting it (a known gap, recorded in docs/reliability.md).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, unique_keys  # noqa: E402

DEADLINE_S = 3.0


def balanced(st):
    e = st["events"]
    return e["accepted"] == e["stored"] + e["dropped"] + e["in_flight"]


def wait_acted(a, stage, old_pid, limit):
    """Seconds until the supervisor has reaped old_pid (the stage shows another pid or is
    waiting to restart), or None after limit."""
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            s = a.status()["stages"][stage]
            if s["pid"] != old_pid or s["state"] != "running":
                return time.time() - t0
        except Exception:
            pass
        time.sleep(0.02)
    return None


def main():
    bindir = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 45
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rnd = random.Random(seed)
    a = Appliance(bindir, "soak", config={
        "supervisor": {"stage_deadline": "%ds" % DEADLINE_S, "restart_burst": "1000", "restart_interval": "1h",
                       "restart_backoff": "200ms"}})
    rate = 3000
    n = int(rate * seconds)
    sim = subprocess.Popen([os.path.join(bindir, "outpost-sim"), "--endpoint", a.endpoint, "--count", str(n),
                            "--rate", str(rate), "--stream", "4", "--kind", "mix", "--seed", str(seed)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    faults = []
    t_end = time.time() + seconds
    time.sleep(1.0)
    while time.time() < t_end - 2 and sim.poll() is None:
        # only a running stage can fail: one the supervisor is still backing off from (its
        # backoff doubles with each failure within a minute, up to 60 s) is left alone
        stages = a.status()["stages"]
        up = [x for x in ("infer", "store", "uplink") if stages[x]["state"] == "running" and stages[x]["pid"] > 0]
        if not up:
            time.sleep(0.5)
            continue
        stage = rnd.choice(up)
        kind = rnd.choice(["crash", "hang"])
        pid = stages[stage]["pid"]
        os.kill(pid, signal.SIGKILL if kind == "crash" else signal.SIGSTOP)
        limit = 1.0 if kind == "crash" else DEADLINE_S + 1.0
        took = wait_acted(a, stage, pid, limit + 5)
        if kind == "hang":
            try:
                os.kill(pid, signal.SIGCONT)  # in case it was not killed: do not leave it stopped
            except ProcessLookupError:
                pass
        faults.append({"stage": stage, "kind": kind, "seconds": took, "limit": limit})
        check(took is not None and took <= limit,
              "%s of %s: the supervisor acted after %s s (limit %.1f s)" % (kind, stage, took, limit))
        time.sleep(rnd.uniform(1.5, 3.5))
    out, err = sim.communicate(timeout=seconds * 4 + 60)
    check(sim.returncode == 0, "simulator failed: %s" % err)
    sent = json.loads(out.strip().splitlines()[-1])["events_sent"]
    a.wait(lambda: all(s["state"] == "running" for s in a.status()["stages"].values()), 90,
           "every stage back after its backoff")
    a.wait(lambda: a.status()["events"]["in_flight"] == 0 and a.status()["events"]["accepted"] == sent, 180,
           "every accepted event settled")
    st = a.status()
    e = st["events"]
    check(balanced(st), "accounting does not balance: %s" % e)
    a.wait(lambda: a.north_count() >= e["stored"], 120, "stored rows north")
    rows = a.north_rows()
    keys = unique_keys(rows)
    check(len(rows) == len(keys), "%d duplicate rows north" % (len(rows) - len(keys)))
    check(len(rows) == e["stored"], "north holds %d rows, status says %d stored" % (len(rows), e["stored"]))
    check(e["stored"] + e["dropped"] == sent, "stored %d + dropped %d != %d sent" % (e["stored"], e["dropped"], sent))
    # every drop has a reason: the ingest counters dropped_* plus dropped_ingest_crash
    ing = st["stages"]["ingest"]["counters"]
    reasons = {k: v for k, v in ing.items() if k.startswith("dropped_") and v}
    if e["dropped_ingest_crash"]:
        reasons["dropped_ingest_crash"] = e["dropped_ingest_crash"]
    check(sum(reasons.values()) == e["dropped"], "drops without a reason: %s vs %s" % (e, reasons))
    check(e["dropped_ingest_crash"] == 0, "ingest was not a target, yet events were lost with it: %s" % e)
    check(all(s["state"] == "running" for s in st["stages"].values()), "stages not all running at the end")
    lat = {k: [f["seconds"] for f in faults if f["kind"] == k] for k in ("crash", "hang")}
    summary = {"soak_seconds": seconds, "seed": seed, "faults": len(faults),
               "crashes": len(lat["crash"]), "hangs": len(lat["hang"]),
               "crash_detect_max_s": round(max(lat["crash"]), 3) if lat["crash"] else None,
               "hang_detect_max_s": round(max(lat["hang"]), 3) if lat["hang"] else None,
               "stage_deadline_s": DEADLINE_S, "events_sent": sent, "events_stored": e["stored"],
               "events_dropped": e["dropped"], "drop_reasons": reasons, "north_rows": len(rows),
               "duplicates": len(rows) - len(keys)}
    print(json.dumps(summary))
    check(len(faults) >= 3, "only %d faults injected" % len(faults))
    check(a.stop() == 0, "outpostd did not stop cleanly")
    print("ok: soak")


if __name__ == "__main__":
    main()
