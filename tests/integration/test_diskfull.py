#!/usr/bin/python3
"""
test_diskfull.py — a full disk, for real: the appliance's state directory on a 16 MiB tmpfs.

  test_diskfull.py BINDIR

With north unreachable, segments pile up in the outbox. Checked, as the site would see it:
  - when free space falls below uplink.disk_reserve, waiting files are evicted in the configured
    order — bulk first, then telemetry, then the oldest results — and never alerts; each eviction
    is counted in status and leaves a tombstone alert naming the file, its size and SHA-256;
  - nothing crashes (no stage restarts), and no file left is corrupt: every segment opens with
    h5py and matches its sidecar;
  - a corrupt outbox entry is quarantined, not deleted, and counted;
  - when north comes back, the tombstones and what was kept arrive; accounting north + evicted =
    what was stored.
Needs root to mount the tmpfs (else skipped, exit 77).
"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, mount_tmpfs, need_modules, unmount_tmpfs  # noqa: E402


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    bindir = sys.argv[1]
    need_modules("h5py")
    import h5py
    mnt = mount_tmpfs("op-diskfull-", "16m")
    app = None
    try:
        state = os.path.join(mnt, "state")
        os.makedirs(os.path.join(state, "outbox", "bulk"))
        # a bulk file and an operator's telemetry-like file already waiting, with sidecars
        for sub, name, size in (("bulk", "bulk-dump-1.h5", 3 << 20), ("bulk", "bulk-dump-2.h5", 3 << 20)):
            d = os.path.join(state, "outbox", sub)
            with open(os.path.join(d, name), "wb") as f:
                f.write(os.urandom(size))
            with open(os.path.join(d, name + ".sha256"), "w") as f:
                f.write("%s  %s\n" % (sha(os.path.join(d, name)), name))
        # a corrupt entry: its sidecar does not match
        with open(os.path.join(state, "outbox", "broken-1.h5"), "wb") as f:
            f.write(b"not what the sidecar says")
        with open(os.path.join(state, "outbox", "broken-1.h5.sha256"), "w") as f:
            f.write("%s  broken-1.h5\n" % ("0" * 64))
        app = Appliance(bindir, "diskfull", north=False, config={
            "paths": {"state_dir": state},
            "uplink": {"disk_reserve": "11MiB", "telemetry_interval": "2s", "timeout": "2s"},
            "store": {"rotate_rows": 2000, "rotate_age": "1s", "deflate_level": 0},
        })
        # north is down: everything waits; events keep coming
        app.sim("--count", "90000", "--rate", "5000")
        app.wait(lambda: any(json.load(open(t))["class"] == "results"
                             for t in glob.glob(os.path.join(state, "outbox", "alert", "alert-tombstone-*.json"))),
                 90, "evictions for space down to result segments")
        st = app.status()
        up = st["stages"]["uplink"]
        text = app.ctl("status")[1]
        print([ln for ln in text.splitlines() if ln.startswith("disk")][0])
        check(all(r["restarts"] == 0 for r in st["stages"].values()), "no stage restarted: %s" %
              {k: v["restarts"] for k, v in st["stages"].items()})
        outbox = os.path.join(state, "outbox")
        check(not os.path.exists(os.path.join(outbox, "bulk", "bulk-dump-1.h5")), "bulk evicted first")
        tomb = sorted(glob.glob(os.path.join(outbox, "alert", "alert-tombstone-*.json")),
                      key=lambda t: os.stat(t).st_mtime_ns)  # in the order they were evicted
        check(len(tomb) >= 3, "tombstones queued: %d" % len(tomb))
        kinds = []
        for t in tomb:
            with open(t) as f:
                d = json.load(f)
            kinds.append((d["class"], d["tombstone"]))
            check(d["reason"] == "disk_full" and len(d["sha256"]) == 64 and d["bytes"] > 0, "tombstone: %s" % d)
        order = [k for k, _ in kinds]
        print("evicted in order: %s" % ", ".join("%s %s" % k for k in kinds[:8]))
        check(order[:2] == ["bulk", "bulk"], "both bulk files before anything else: %s" % order)
        check("alert" not in order, "alerts are never evicted")
        check(os.path.exists(os.path.join(state, "quarantine", "broken-1.h5")), "the corrupt entry is quarantined")
        check(up["counters"].get("quarantined", 0) == 1, "and counted")
        # what is left is whole
        for h5 in glob.glob(os.path.join(outbox, "*.h5")):
            side = h5 + ".sha256"
            if not os.path.exists(side):
                continue
            with open(side) as f:
                check(f.read().split()[0] == sha(h5), "%s matches its sidecar" % h5)
            with h5py.File(h5, "r") as f:
                len(f["results"])
        free = os.statvfs(mnt)
        print("free %.1f MiB of 16 (reserve 11 MiB); %d tombstones; %d evicted" %
              (free.f_bavail * free.f_frsize / 2**20, len(tomb), up["counters"]["evicted_disk_full"]))
        # north comes back: tombstones first, then what was kept
        north_dir = os.path.join(app.tmp, "north")
        north = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind",
                                  "tcp://127.0.0.1:%d" % app.north_port, "--dir", north_dir],
                                 stdout=app.logs, stderr=app.logs)
        app.north = north
        app.wait(lambda: app.status()["events"]["in_flight"] == 0, 60, "everything stored")
        stored = app.status()["events"]["stored"]

        def delivered():
            ev = app.status()["stages"]["uplink"]["gauges"]
            return ev.get("files_pending", 1) == 0
        app.wait(delivered, 120, "the outbox emptied north")
        def accounted():  # the store seals its last segment up to store.rotate_age after the last event
            lost, lost_rows = 0, 0
            for t in glob.glob(os.path.join(north_dir, "alert-tombstone-*.json")):
                with open(t) as f:
                    d = json.load(f)
                if d["class"] == "results":
                    lost += 1
                    check(d["rows"] > 0, "a result segment's tombstone counts its events: %s" % d)
                    lost_rows += d["rows"]
            return app.north_count(), lost, lost_rows
        t0 = time.time()
        while True:
            rows, lost, lost_rows = accounted()
            if rows + lost_rows >= stored or time.time() - t0 > 60:
                break
            time.sleep(0.5)
        print("north: %d rows, %d tombstones (%d of result segments, %d events); %d events stored" %
              (rows, len(glob.glob(os.path.join(north_dir, "alert-tombstone-*.json"))), lost, lost_rows, stored))
        check(len(glob.glob(os.path.join(north_dir, "alert-tombstone-*.json"))) >= len(tomb), "every tombstone north")
        check(rows + lost_rows == stored, "every stored event is north or counted lost in a tombstone: %d + %d vs %d"
              % (rows, lost_rows, stored))
    finally:
        if app:
            app.stop(keep=True)
        unmount_tmpfs(mnt)
    print("ok: diskfull")


if __name__ == "__main__":
    main()
