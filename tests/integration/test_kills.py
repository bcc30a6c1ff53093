#!/usr/bin/python3
"""
test_kills.py — the uplink stage and outpost-north killed with SIGKILL, again and again, in the
middle of transfers, with the real programs.

  test_kills.py BINDIR [KILLS]

Bulk files of random bytes (0.1–3 MB) and the segments of events sent meanwhile flow north
while KILLS (default 200) SIGKILLs land at random moments, each on the uplink stage (outpostd
restarts it) or on outpost-north (restarted here on the same directory). A kill can land
anywhere: mid-chunk, between north publishing a file and writing its ledger line, between north
confirming and the appliance deleting its copy (a lost confirmation). Checked, as north would see
it, once the backlog has drained:
  - zero loss: every queued file north, byte-identical (SHA-256); every stored event north;
  - no duplicates: each file once in north's ledger, every event in exactly one row;
  - the ledger is whole: one line per published file, no commit left half-done;
  - nothing was quarantined on the appliance (no file was damaged by a kill).
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, fail, need_modules, publish, sha_file, unique_keys  # noqa: E402




def main():
    bindir = sys.argv[1]
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    need_modules("zmq", "h5py")
    app = Appliance(bindir, "kills", config={
        "uplink": {"timeout": "1s", "retry": "50ms", "chunk_bytes": "256KiB"},
        # a stage killed 100 times must come back within a fraction of a second each time
        # and never spend the restart budget: this test is about the uplink, not the escalation
        "supervisor": {"restart_backoff": "10ms", "restart_backoff_max": "100ms", "restart_burst": "1000",
                       "restart_interval": "1s"},
    })
    north_cmd = [os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % app.north_port,
                 "--dir", app.north_dir]
    try:
        rng = random.Random(2027)
        bulk = os.path.join(app.state, "outbox", "bulk")
        os.makedirs(bulk, exist_ok=True)
        queued, total = {}, 0

        def queue_bulk(i):
            nonlocal total
            name = "bulk-%04d.bin" % i
            data = rng.randbytes(rng.randint(100_000, 3_000_000))
            queued[name] = publish(bulk, name, data=data)
            total += len(data)

        for i in range(12):
            queue_bulk(i)
        sims = []
        sender = threading.Thread(target=lambda: sims.append(app.sim("--count", "30000", "--rate", "300")))
        sender.start()
        kills = {"uplink": 0, "north": 0}
        i, t0 = 12, time.time()
        while sum(kills.values()) < want:
            if time.time() - t0 > 600 + 2 * want:  # about 0.5 s a kill here
                fail("only %s kills in %d s" % (kills, 600 + 2 * want))
            time.sleep(rng.uniform(0.05, 0.8))  # let a transfer get under way (or not)
            st = app.status()
            if st["stages"]["uplink"]["gauges"].get("bulk_files_pending", 0) < 4:
                queue_bulk(i)
                i += 1
            if rng.random() < 0.5:
                up = st["stages"]["uplink"]
                if up["state"] != "running" or not up.get("pid"):
                    continue  # still being restarted
                try:
                    os.kill(up["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    continue
                kills["uplink"] += 1
            else:
                app.north.send_signal(signal.SIGKILL)
                app.north.wait(10)
                kills["north"] += 1
                time.sleep(rng.uniform(0, 0.3))
                app.north = subprocess.Popen(north_cmd, stdout=app.logs, stderr=app.logs)
        secs = time.time() - t0
        sender.join()
        check(sims and sims[0]["events_sent"] == 30000, "the simulated detector sent all its events: %s" % sims)

        outbox = os.path.join(app.state, "outbox")

        def waiting():  # on disk, not the stage's figures (a restarted stage counts from its first scan)
            return [n for d in ("", "alert", "telemetry", "bulk") for n in os.listdir(os.path.join(outbox, d))
                    if os.path.isfile(os.path.join(outbox, d, n))]

        def drained():
            s = app.status()
            return (not waiting() and s["events"]["in_flight"] == 0 and s["events"]["stored"] >= 30000
                    and app.north_count() >= s["events"]["stored"])
        app.wait(drained, 300, "every file north after %s kills (still waiting: %s)" % (kills, waiting()[:5]))

        # zero loss, byte-identical
        for name, digest in queued.items():
            p = os.path.join(app.north_dir, name)
            check(os.path.exists(p), "%s north" % name)
            check(sha_file(p) == digest, "%s byte-identical north" % name)
        # the ledger: whole lines, one per published file, none twice, no commit left half-done
        with open(os.path.join(app.north_dir, "ledger.tsv")) as f:
            text = f.read()
        lines = [ln for ln in text.split("\n") if ln]
        check(all(len(ln.split("\t")) == 6 for ln in lines), "every ledger line whole")
        names = [ln.split("\t")[1] for ln in lines]
        dup = len(names) - len(set(names))
        check(dup == 0, "%d duplicate(s) in north's ledger" % dup)
        published = {n for n in os.listdir(app.north_dir)
                     if not n.startswith(".") and not n.endswith(".sha256") and n != "ledger.tsv"}
        check(published == set(names), "one ledger line per published file (files without a line: %s; lines "
              "without a file: %s)" % (sorted(published - set(names))[:5], sorted(set(names) - published)[:5]))
        leftovers = [n for n in os.listdir(os.path.join(app.north_dir, ".partial")) if n.endswith(".commit")]
        # an intent is finished at north's next start; north is still running: at most the last one
        check(len(leftovers) <= 1, "commit intents left: %s" % leftovers)
        # events: every stored event north, once
        rows = app.north_rows()
        stored = app.status()["events"]["stored"]
        check(rows is not None and len(rows) == stored, "every stored event north: %d rows, %d stored"
              % (0 if rows is None else len(rows), stored))
        check(len(unique_keys(rows)) == len(rows), "no event north twice")
        check(stored == 30000, "all 30,000 events stored (%d)" % stored)
        quarantined = os.listdir(os.path.join(app.state, "quarantine")) \
            if os.path.isdir(os.path.join(app.state, "quarantine")) else []
        check(not quarantined, "nothing quarantined: %s" % quarantined[:5])
        restarts = app.status()["stages"]["uplink"].get("restarts", "?")
        app.logs.flush()
        with open(os.path.join(app.tmp, "log.txt")) as f:
            recovered = sum(1 for ln in f if "commit(s) an earlier stop interrupted" in ln)
        print("%d SIGKILLs in %.0f s (%d of the uplink stage, %d of outpost-north; uplink restarts %s): %d files "
              "north (%d bulk, %.1f MB), all byte-identical, each once in the ledger (%d north starts finished an "
              "interrupted commit); %d events, each once"
              % (sum(kills.values()), secs, kills["uplink"], kills["north"], restarts, len(names), len(queued),
                 total / 1e6, recovered, stored))
    finally:
        app.stop()
    print("ok: kills")


if __name__ == "__main__":
    main()
