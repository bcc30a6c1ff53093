#!/usr/bin/python3
"""test_soak.py — fault injection into the real daemon under load.

  test_soak.py BINDIR [SECONDS] [SEED]

outpost-sim feeds outpostd at 3,000 events/s while, every 1.5-3.5 s, a random stage among
ingest, infer, store and uplink is SIGKILLed (a crash) or SIGSTOPped (a hang: it stops reporting and
must be killed and restarted by the supervisor), or the infer stage is made to spin (busy,
still reporting, never advancing: what a thread-alive heartbeat would miss) or to block (its
input fills up behind it while ingest holds every event). For each fault the time until the
supervisor acts is measured: a crash must be noticed within 1 s, a hang, spin or block within
the stage deadline (3 s here) plus 1 s. Each fault must end at the first rung of the ladder:
that stage restarted with the stages downstream of it (rest_for_one), nothing upstream
restarted, the supervisor itself not restarted, the restart budget not spent.

At the end every event sent must be stored exactly once north (no duplicates) or counted:
  sent = stored + dropped + missing, where dropped has a reason for every event (ingest gives
  an event up after 8 resends, resend_exhausted; a dying ingest takes what it held,
  ingest_crash) and missing counts the sequence numbers a dying ingest took with it (queued in
  its socket or accepted after its last report), which its successor sees as gap_events;
and no event may be lost without being counted: every (stream, sequence) sent and not north is
among those counted dropped or missing (the count may be higher: an event an ingest held when
it died is counted as lost even if the store had it already). Prints one JSON line with the
figures. CI runs 45 s; tests/soak/run.sh runs longer soaks on demand.
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


def wait_acted(a, stage, old_pid, t_fault, limit):
    """Seconds from the fault (t_fault) until the supervisor noticed the stage had ended (it
    reaped old_pid), or None when it had not after limit. The moment is the supervisor's own
    (status: last_failure_age_s, taken from the reply's arrival, so at most late by the reply's
    way back): how often and how slowly this script polls does not count."""
    while time.monotonic() - t_fault < limit:
        try:
            s = a.status()["stages"][stage]
            t_reply = time.monotonic()
            if s["pid"] != old_pid or s["state"] != "running":
                check(s["last_failure_age_s"] >= 0, "%s ended but no failure recorded: %s" % (stage, s))
                took = t_reply - s["last_failure_age_s"] - t_fault
                # before the fault (beyond rounding): the failure recorded is an earlier one
                check(took >= -0.01, "%s: the last failure recorded is %.3f s before this fault" % (stage, -took))
                return max(0.0, took)
        except (ValueError, KeyError):
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
                       "restart_backoff": "200ms", "fault_injection": "true"}})
    daemon_pid = a.daemon.pid
    downstream = {"ingest": ("infer", "store", "uplink"), "infer": ("store", "uplink"), "store": ("uplink",),
                  "uplink": ()}
    rate = 3000
    n = int(rate * seconds)
    sim = subprocess.Popen([os.path.join(bindir, "outpost-sim"), "--endpoint", a.endpoint, "--count", str(n),
                            "--rate", str(rate), "--stream", "4", "--kind", "mix", "--seed", str(seed)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    faults = []
    rotation = []
    t_end = time.time() + seconds
    time.sleep(1.0)
    while time.time() < t_end - 2 and sim.poll() is None:
        # only a running stage can fail: one the supervisor is still backing off from (its
        # backoff doubles with each failure within a minute, up to 60 s) is left alone
        stages = a.status()["stages"]
        up = [x for x in ("ingest", "infer", "store", "uplink")
              if stages[x]["state"] == "running" and stages[x]["pid"] > 0]
        if not up:
            time.sleep(0.5)
            continue
        # every kind of fault in each round of four, in random order
        if not rotation:
            rotation = ["crash", "hang", "spin", "block"]
            rnd.shuffle(rotation)
        if rotation[0] in ("spin", "block") and "infer" not in up:
            time.sleep(0.5)
            continue
        kind = rotation.pop(0)
        stage = "infer" if kind in ("spin", "block") else rnd.choice(up)
        pid = stages[stage]["pid"]
        before = {k: (v["restarts"], v["restarts_with_upstream"]) for k, v in stages.items()}
        t_fault = time.monotonic()
        os.kill(pid, {"crash": signal.SIGKILL, "hang": signal.SIGSTOP, "spin": signal.SIGUSR1,
                      "block": signal.SIGUSR2}[kind])
        limit = 1.0 if kind == "crash" else DEADLINE_S + 1.0
        took = wait_acted(a, stage, pid, t_fault, limit + 5)
        held = a.status()["events"]["in_flight"]
        if kind == "hang":
            try:
                os.kill(pid, signal.SIGCONT)  # in case it was not killed: do not leave it stopped
            except ProcessLookupError:
                pass
        faults.append({"stage": stage, "kind": kind, "seconds": took, "limit": limit, "held": held})
        check(took is not None and took <= limit,
              "%s of %s: the supervisor acted after %s s (limit %.1f s)" % (kind, stage, took, limit))
        # the intended rung: this stage and those after it restarted, nothing before it, the
        # supervisor untouched
        # (a stage that failed again within a minute waits out a doubling backoff, up to 60 s)
        a.wait(lambda: all(s_["state"] == "running" for s_ in a.status()["stages"].values()), 90,
               "every stage back after the %s of %s" % (kind, stage))
        after = a.status()
        check(a.daemon.poll() is None and a.daemon.pid == daemon_pid and after["mode"] == "normal" and
              not after["restart_budget_spent"], "a stage fault escalated beyond a stage restart: %s" % after)
        now = {k: (v["restarts"], v["restarts_with_upstream"]) for k, v in after["stages"].items()}
        check(now[stage][0] == before[stage][0] + 1, "%s of %s: restarts %s → %s" % (kind, stage, before, now))
        for d in downstream[stage]:
            check(now[d][1] > before[d][1], "%s of %s: %s was not restarted with it" % (kind, stage, d))
        for u in [x for x in ("ingest", "infer", "store") if x != stage and x not in downstream[stage]]:
            check(now[u] == before[u], "%s of %s: upstream %s restarted: %s → %s" % (kind, stage, u, before, now))
        time.sleep(rnd.uniform(1.5, 3.5))
    out, err = sim.communicate(timeout=seconds * 4 + 60)
    check(sim.returncode == 0, "simulator failed: %s" % err)
    sent = json.loads(out.strip().splitlines()[-1])["events_sent"]
    a.wait(lambda: all(s["state"] == "running" for s in a.status()["stages"].values()), 90,
           "every stage back after its backoff")
    def settled():
        st_ = a.status()
        c = st_["stages"]["ingest"]["counters"]
        return st_["events"]["in_flight"] == 0 and \
            st_["events"]["accepted"] + c["gap_events"] - c["late_events"] == sent
    a.wait(settled, 180, "every event sent accepted or counted missing, and settled")
    st = a.status()
    e = st["events"]
    check(balanced(st), "accounting does not balance: %s" % e)
    ing = st["stages"]["ingest"]["counters"]
    missing = ing["gap_events"] - ing["late_events"]
    a.wait(lambda: a.north_count() >= e["stored"], 120, "stored rows north")
    a.wait(lambda: a.status()["stages"]["uplink"]["gauges"].get("files_pending", 1) == 0, 120,
           "outbox empty")
    rows = a.north_rows()
    keys = unique_keys(rows)
    check(len(rows) == len(keys), "%d duplicate rows north" % (len(rows) - len(keys)))
    check(len(rows) >= e["stored"], "north holds %d rows, status says %d stored" % (len(rows), e["stored"]))
    check(e["stored"] + e["dropped"] + missing == sent,
          "stored %d + dropped %d + missing %d != %d sent" % (e["stored"], e["dropped"], missing, sent))
    lost = sent - len(keys)  # one stream, sequences 0..sent-1
    check(lost <= e["dropped"] + missing, "%d events lost, only %d counted (dropped %d, missing %d)" %
          (lost, e["dropped"] + missing, e["dropped"], missing))
    # every drop has a reason: the ingest counters dropped_* plus dropped_ingest_crash
    ing = st["stages"]["ingest"]["counters"]
    reasons = {k: v for k, v in ing.items() if k.startswith("dropped_") and v}
    if e["dropped_ingest_crash"]:
        reasons["dropped_ingest_crash"] = e["dropped_ingest_crash"]
    if ing.get("pred_dropped"):  # given up by an ingest that died before reporting it
        reasons["dropped_resend_exhausted_unreported"] = ing["pred_dropped"]
    check(sum(reasons.values()) == e["dropped"], "drops without a reason: %s vs %s" % (e, reasons))
    check(all(s["state"] == "running" for s in st["stages"].values()), "stages not all running at the end")
    kinds = ("crash", "hang", "spin", "block")
    lat = {k: [f["seconds"] for f in faults if f["kind"] == k] for k in kinds}
    summary = {"soak_seconds": seconds, "seed": seed, "faults": len(faults),
               "ingest_faults": sum(f["stage"] == "ingest" for f in faults),
               "events_taken_over": ing.get("recovered", 0)}
    for k in kinds:
        summary[k + "es" if k == "crash" else k + "s"] = len(lat[k])
        summary[k + "_detect_max_s"] = round(max(lat[k]), 3) if lat[k] else None
    blocks = [f["held"] for f in faults if f["kind"] == "block"]
    summary.update({"block_events_held_max": max(blocks) if blocks else None,
               "stage_deadline_s": DEADLINE_S, "events_sent": sent, "events_stored": e["stored"],
               "events_dropped": e["dropped"], "drop_reasons": reasons, "events_missing": missing,
               "events_lost_north": lost, "counted_lost_but_north": e["dropped"] + missing - lost,
               "north_rows": len(rows),
               "duplicates": len(rows) - len(keys)})
    print(json.dumps(summary))
    check(len(faults) >= 4 and all(lat[k] for k in kinds), "not every kind of fault was injected: %s" % summary)
    check(a.stop() == 0, "outpostd did not stop cleanly")
    print("ok: soak")


if __name__ == "__main__":
    main()
