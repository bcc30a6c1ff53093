#!/usr/bin/python3
"""
test_diskpause.py — the disk fills up under the store, for real (a 16 MiB tmpfs, filled by a
file that is not the appliance's), with no eviction margin to save it:

  test_diskpause.py BINDIR

Checked, as the site would see it:
  - the store pauses (status: disk_full, blocked) instead of ending and being restarted into the
    same full disk until the supervisor escalates; no stage restarts while it lasts;
  - the log says so, naming the directory;
  - once space is freed the store resumes by itself, and every event sent is stored once, with
    nothing dropped, and counted once (rows_written + rows_salvaged);
  - the same when the disk has bytes free but no inode left (many small files): where HDF5
    could not create the next segment and its failure read as an I/O error, the store ended and
    was restarted into it.
Needs root to mount the tmpfs (else skipped, exit 77).
"""
import glob
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, mount_tmpfs, need_modules, unique_keys, unmount_tmpfs  # noqa: E402


def main():
    bindir = sys.argv[1]
    need_modules("h5py", "numpy")
    import h5py
    import numpy as np
    mnt = mount_tmpfs("op-diskpause-", "16m", inodes=2000)
    app = None
    try:
        state = os.path.join(mnt, "state")
        app = Appliance(bindir, "diskpause", north=False, config={
            "paths": {"state_dir": state},
            "uplink": {"disk_reserve": "0"},
            "store": {"rotate_age": "1s", "chunk_rows": 512},
            "ingest": {"resend_after": "3s"},
        })
        # something else fills the disk, all but 48 kB
        filler = os.path.join(mnt, "filler")
        # unbuffered: a write the disk takes only in part returns short, and nothing is left in a
        # buffer for close() to fail on (which made this test fail, depending on how full the
        # disk happened to be)
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    if f.write(b"\0" * 65536) < 65536:
                        break
            except OSError:
                pass
        os.truncate(filler, os.path.getsize(filler) - 48 * 1024)
        n = 20000
        sim = subprocess.Popen([os.path.join(bindir, "outpost-sim"), "--endpoint", app.endpoint, "--count", str(n),
                                "--rate", "4000", "--stream", "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        app.wait(lambda: app.status()["stages"]["store"]["gauges"].get("disk_full", 0) == 1, 60, "the store pausing")
        paused_at = app.status()["events"]["stored"]
        time.sleep(12)  # longer than the stage deadline (10 s): a stage taken for hung would be restarted
        st = app.status()
        store = st["stages"]["store"]
        check(store["gauges"]["disk_full"] == 1, "the store resumed with the disk still full")
        check(all(r["restarts"] == 0 for r in st["stages"].values()), "a stage restarted while the disk was full: %s" %
              {k: v["restarts"] for k, v in st["stages"].items()})
        app.logs.flush()
        with open(os.path.join(app.tmp, "log.txt")) as f:
            log = f.read()
        check("no space left in %s/segments" % state in log, "the log does not say the disk is full")
        print("paused with %d of %d events stored; stages up, log: %s" %
              (paused_at, n, [ln for ln in log.splitlines() if "no space left in" in ln][0][:160]))
        os.unlink(filler)
        app.wait(lambda: app.status()["stages"]["store"]["gauges"]["disk_full"] == 0, 30, "the store resuming")
        out, err = sim.communicate(timeout=180)
        check(sim.returncode == 0, "simulator failed: %s" % err)
        app.wait(lambda: app.status()["events"]["accepted"] == n and app.status()["events"]["in_flight"] == 0, 120,
                 "every event settled")
        e = app.status()["events"]
        check(e["stored"] == n and e["dropped"] == 0, "stored %d, dropped %d of %d" % (e["stored"], e["dropped"], n))
        # each event's row counted once, written fresh or salvaged: the rows of the segment the
        # pause abandoned come back (salvaged from it, or sent again by ingest) and were counted
        # written twice (the store's counters come with its next report: waited for)
        def store_counters():
            return app.status()["stages"]["store"]["counters"]
        app.wait(lambda: store_counters()["rows_sealed"] >= n, 30, "the store reporting its seals")
        c = store_counters()
        check(c["rows_written"] + c["rows_salvaged"] == n, "rows_written %d + rows_salvaged %d for %d events" %
              (c["rows_written"], c["rows_salvaged"], n))
        print("rows written fresh %d, salvaged from the segment the pause abandoned %d" %
              (c["rows_written"], c["rows_salvaged"]))
        parts = []
        for path in glob.glob(os.path.join(state, "outbox", "*.h5")):
            with h5py.File(path, "r") as f:
                parts.append(f["results"][:])
        rows = np.concatenate(parts)
        check(len(rows) == n and len(unique_keys(rows)) == n, "outbox holds %d rows (%d distinct) of %d" %
              (len(rows), len(unique_keys(rows)), n))
        pauses = app.status()["stages"]["store"]["counters"]["disk_full_pauses"]
        print("resumed: all %d events stored once, none dropped, %d pause(s)" % (n, pauses))
        check(pauses == 1, "%d pauses: it resumed and paused again while the disk was full" % pauses)

        # Every inode taken by small files, the bytes free, while no segment is open (all sealed
        # above): the next one cannot be created
        fillers = os.path.join(mnt, "small-files")
        os.mkdir(fillers)
        taken = 0
        try:
            while True:
                open(os.path.join(fillers, str(taken)), "wb").close()
                taken += 1
        except OSError:
            pass
        m = 3000
        sim = subprocess.Popen([os.path.join(bindir, "outpost-sim"), "--endpoint", app.endpoint, "--count", str(m),
                                "--rate", "4000", "--stream", "5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        app.wait(lambda: app.status()["stages"]["store"]["gauges"].get("disk_full", 0) == 1, 60,
                 "the store pausing with no inode left (%d small files)" % taken)
        time.sleep(3)
        st = app.status()
        check(st["stages"]["store"]["gauges"]["disk_full"] == 1, "the store resumed with no inode free")
        check(all(r["restarts"] == 0 for r in st["stages"].values()), "a stage restarted with no inode free: %s" %
              {k: v["restarts"] for k, v in st["stages"].items()})
        subprocess.run(["rm", "-rf", fillers])
        app.wait(lambda: app.status()["stages"]["store"]["gauges"]["disk_full"] == 0, 30, "the store resuming")
        out, err = sim.communicate(timeout=180)
        check(sim.returncode == 0, "simulator failed: %s" % err)
        app.wait(lambda: app.status()["events"]["accepted"] == n + m and app.status()["events"]["in_flight"] == 0,
                 120, "every event settled")
        e = app.status()["events"]
        check(e["stored"] == n + m and e["dropped"] == 0, "stored %d, dropped %d of %d" % (e["stored"], e["dropped"], n + m))
        app.wait(lambda: store_counters()["rows_sealed"] >= n + m, 30, "the store reporting its seals")
        c = store_counters()
        check(c["rows_written"] + c["rows_salvaged"] == n + m, "rows_written %d + rows_salvaged %d for %d events" %
              (c["rows_written"], c["rows_salvaged"], n + m))
        pauses = app.status()["stages"]["store"]["counters"]["disk_full_pauses"]
        check(pauses == 2, "%d pauses in all, 2 expected" % pauses)
        print("no inode free (%d small files): paused, resumed once they went, all %d events stored" % (taken, m))
        check(app.stop() == 0, "outpostd did not stop cleanly")
        app = None
    finally:
        if app:
            app.stop(keep=True)
        unmount_tmpfs(mnt)


if __name__ == "__main__":
    main()
