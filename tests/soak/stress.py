#!/usr/bin/python3
"""stress.py — no false trip under load: the real daemon at full load, with the disk under heavy
write load from stress-ng, for SECONDS (default 600), with production deadlines.

  tests/soak/stress.py BINDIR [SECONDS]

outpost-sim sends as fast as outpostd takes events (--rate 0) in batches with consecutive
sequence numbers, while stress-ng writes and fsyncs files on the same filesystem as the
appliance's state directory (--hdd 2 with fsync, --iomix 1). The daemon runs with the
production watchdog settings: stage deadline 30 s, segments sealed every 10 s, and a test
socket acting as systemd with WatchdogSec=60s (WATCHDOG_USEC), so pings come every 30 s.

A false trip is any stage killed or restarted, the restart budget spent, safe mode, or a gap
between WATCHDOG=1 pings long enough for systemd to act (over 60 s). At the end every event
sent must be north exactly once. Prints one JSON line with the figures (for
docs/reliability.md). Needs stress-ng (deploy/install-deps.sh installs it).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Appliance, check, unique_keys  # noqa: E402

BATCH = 100000


def main():
    bindir = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600
    if not shutil.which("stress-ng"):
        print("stress-ng is not installed (deploy/install-deps.sh installs it)", file=sys.stderr)
        sys.exit(77)
    npath = os.path.join(tempfile.mkdtemp(prefix="op-stress-notify-"), "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(npath)
    pings = []

    def listen():  # timestamps as they arrive, whatever the main loop is doing
        while True:
            try:
                m = ns.recv(4096).decode()
            except OSError:
                return
            if "WATCHDOG=1" in m:
                pings.append(time.time())
    threading.Thread(target=listen, daemon=True).start()
    a = Appliance(bindir, "stress", env={"NOTIFY_SOCKET": npath, "WATCHDOG_USEC": "60000000"},
                  config={"store": {"rotate_age": "10s"},
                          "supervisor": {"stage_deadline": "30s", "restart_backoff": "1s"}})
    stress_dir = os.path.join(a.tmp, "stress")
    os.makedirs(stress_dir)
    stress = subprocess.Popen(["stress-ng", "--hdd", "2", "--hdd-opts", "fsync", "--hdd-bytes", "1g",
                               "--iomix", "1", "--temp-path", stress_dir, "--timeout", "%ds" % int(seconds),
                               "--metrics-brief"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seal_ms_max = 0.0
    sent = 0
    t0 = time.time()
    sim = None
    while time.time() - t0 < seconds:
        if sim is None or sim.poll() is not None:
            if sim is not None:
                out, err = sim.communicate()
                check(sim.returncode == 0, "simulator failed: %s" % err)
                sent += json.loads(out.strip().splitlines()[-1])["events_sent"]
            sim = subprocess.Popen([os.path.join(bindir, "outpost-sim"), "--endpoint", a.endpoint, "--count",
                                    str(BATCH), "--rate", "0", "--stream", "6", "--first-seq", str(sent),
                                    "--seed", str(sent + 1), "--kind", "mix"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        st = a.status()
        seal_ms_max = max(seal_ms_max, st["stages"]["store"]["gauges"].get("last_seal_ms", 0))
        time.sleep(0.5)
    out, err = sim.communicate(timeout=600)
    check(sim.returncode == 0, "simulator failed: %s" % err)
    sent += json.loads(out.strip().splitlines()[-1])["events_sent"]
    load_seconds = time.time() - t0
    stress_out = stress.communicate(timeout=120)[0]
    a.wait(lambda: a.status()["events"]["in_flight"] == 0 and a.status()["events"]["accepted"] == sent, 300,
           "every event settled")
    st = a.status()
    e = st["events"]
    a.wait(lambda: a.north_count() >= e["stored"], 300, "stored rows north")
    rows = a.north_rows()
    keys = unique_keys(rows)
    gaps = [b - x for x, b in zip(pings, pings[1:])]
    restarts = {k: v["restarts"] + v["restarts_with_upstream"] for k, v in st["stages"].items()}
    summary = {"seconds": round(load_seconds), "events_sent": sent, "events_per_s": round(sent / load_seconds),
               "stored": e["stored"], "dropped": e["dropped"], "north_rows": len(rows),
               "duplicates": len(rows) - len(keys), "stage_restarts": restarts,
               "watchdog_pings": len(pings), "ping_gap_max_s": round(max(gaps), 2) if gaps else None,
               "seal_ms_max": seal_ms_max,
               "stress_ng": [ln.split("] ", 1)[-1] for ln in stress_out.splitlines() if "hdd" in ln or "iomix" in ln][-4:]}
    print(json.dumps(summary))
    check(all(v == 0 for v in restarts.values()), "false trip: stages restarted under load: %s" % restarts)
    check(not st["restart_budget_spent"] and st["mode"] == "normal", "escalated under load: %s" % st)
    check(gaps and max(gaps) < 60, "watchdog pings %s s apart at most: systemd would have acted" % max(gaps or [0]))
    check(e["stored"] == sent and e["dropped"] == 0, "stored %d of %d sent, %d dropped" % (e["stored"], sent, e["dropped"]))
    check(len(rows) == sent == len(keys), "north holds %d rows (%d unique) of %d sent" % (len(rows), len(keys), sent))
    check(a.stop() == 0, "outpostd did not stop cleanly")
    print("ok: no false trip")


if __name__ == "__main__":
    main()
