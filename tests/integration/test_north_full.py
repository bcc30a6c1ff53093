#!/usr/bin/env python3
"""
test_north_full.py — north's disk too small for two files at once, for real: outpost-north on a
16 MiB tmpfs, two appliances each sending a 9 MiB bulk file.

North reserves a file's whole size at OFFER. Checked, as the operators would see it:
  - one file arrives whole; the other is refused at its OFFER ("north disk full: no room for
    the whole file", in its appliance's journal) and stays in that appliance's outbox;
  - once the first is moved off north (the archive job), the second arrives whole;
  - each appliance put its file's bytes on the link once: nothing of the refused file was sent
    while north had no room for it (counted by the appliances' uplink, `bytes_sent`).
Before, both transfers could start, fill the disk half-way each and be refused at every chunk
after, neither finishing; or the second's bytes went over the link until the disk filled.

Needs root to mount the tmpfs (else skipped, exit 77).
Usage: test_north_full.py BINDIR
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Appliance, check, free_port, mount_tmpfs, need_modules, publish, sha_file,  # noqa: E402
                     unmount_tmpfs)


def metric(path, name):
    with open(path) as f:
        for line in f:
            m = re.match(r"%s (\S+)$" % name, line.strip())
            if m:
                return float(m.group(1))
    return None


def main():
    bindir = sys.argv[1]
    need_modules("h5py", "zmq")
    mnt = mount_tmpfs("op-northfull-", "16m")
    apps, north = [], None
    logdir = tempfile.mkdtemp(prefix="op-northfull-log-")
    try:
        north_dir = os.path.join(mnt, "north")
        port = free_port()
        prom = os.path.join(logdir, "north.prom")
        nlog = open(os.path.join(logdir, "north.txt"), "w")
        north = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % port,
                                  "--dir", north_dir, "--metrics", prom], stdout=nlog, stderr=nlog)
        cfg = {"uplink": {"north_endpoint": "tcp://127.0.0.1:%d" % port, "rate": "40Mbit/s",
                          "telemetry_interval": "0s"}}
        size = 9 << 20
        names = {}
        for site in ("a", "b"):
            app = Appliance(bindir, "northfull-" + site, north=False, config=cfg)
            apps.append(app)
            names[site] = "calib-%s.tar" % site
        shas = {}
        for site, app in zip(("a", "b"), apps):  # queued together: the two transfers overlap
            shas[site] = publish(os.path.join(app.state, "outbox", "bulk"), names[site], data=os.urandom(size))

        def at_north(site):
            p = os.path.join(north_dir, names[site])
            return os.path.exists(p + ".sha256") and sha_file(p) == shas[site]
        apps[0].wait(lambda: at_north("a") or at_north("b"), 60, "one of the files north")
        first = "a" if at_north("a") else "b"
        second = "b" if first == "a" else "a"
        app2 = apps[0] if second == "a" else apps[1]
        app2.wait(lambda: "north refused %s: north disk full: no room for the whole file" % names[second]
                  in app2.log_text(), 30, "the second file refused at its offer")
        check(not at_north(second), "both files north on a disk with room for one")
        check(not os.path.exists(os.path.join(north_dir, ".partial", names[second] + ".part")),
              "the refused file left an empty partial north")
        check(os.path.exists(os.path.join(app2.state, "outbox", "bulk", names[second])),
              "the refused file left its appliance's outbox")
        print("%s north; %s refused at its offer, still in its outbox" % (names[first], names[second]))
        # the archive job moves the first file off north: the second goes
        for suffix in ("", ".sha256"):
            os.remove(os.path.join(north_dir, names[first] + suffix))
        app2.wait(lambda: at_north(second), 120, "the second file north once there was room")
        app2.wait(lambda: not os.path.exists(os.path.join(app2.state, "outbox", "bulk", names[second])), 30,
                  "the second file confirmed and out of its outbox")
        north.send_signal(signal.SIGTERM)
        north.wait(20)
        no_room = metric(prom, "outpost_north_offers_no_room_total")
        def sent_now():
            return [app.status()["stages"]["uplink"]["counters"]["bytes_sent"] for app in apps]
        app2.wait(lambda: min(sent_now()) >= size, 10, "the uplinks' reports to count the files sent")
        sent = sent_now()
        check(sent == [size, size], "the appliances sent %s bytes for their files of %d each: bytes of a file "
              "north had no room for went over the link" % (sent, size))
        check(no_room is not None and no_room >= 1, "outpost_north_offers_no_room_total %s" % no_room)
        print("%s north after the first was moved off; each appliance sent %d bytes (its file's %d), %d offers "
              "refused for want of room" % (names[second], sent[1], size, no_room))
    finally:
        for app in apps:
            app.stop()
        if north is not None and north.poll() is None:
            north.kill()
            north.wait()
        unmount_tmpfs(mnt)
    shutil.rmtree(logdir, ignore_errors=True)
    print("ok: north_full")


if __name__ == "__main__":
    main()
