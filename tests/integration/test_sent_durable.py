#!/usr/bin/python3
"""
test_sent_durable.py — a segment north confirmed is on disk in sent/ before it leaves outbox/:

  test_sent_durable.py BINDIR

The store remembers what it wrote from outbox/ and sent/ together. A power cut that kept a
confirmed segment's removal from outbox/ but lost its entry in sent/ would make the store
forget those rows and write them again when ingest resends them. Checked on the real daemon
under strace: for every segment north confirms, its second name in sent/ (link), the fsync of
sent/, then its unlink from outbox/, in that order; north holds every event once. (Before, one
rename, and sent/ was never fsynced.) Needs strace and ptrace (else skipped, exit 77).
"""
import glob
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, need_modules, need_strace, traced_outpostd, unique_keys  # noqa: E402


def main():
    bindir = sys.argv[1]
    need_strace()
    need_modules("h5py", "numpy")
    n = 300
    app = Appliance(bindir, "sent-durable", north=False)
    try:
        app.sim("--count", str(n), "--rate", "2000", "--stream", "5")
        app.wait(lambda: app.status()["events"]["stored"] == n, 60, "every event stored")
        app.daemon.send_signal(signal.SIGTERM)
        check(app.daemon.wait(60) == 0, "outpostd did not stop cleanly")
        outbox = os.path.realpath(os.path.join(app.state, "outbox"))
        sent = os.path.realpath(os.path.join(app.state, "sent"))
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(outbox, "*.h5")))
        check(names, "nothing sealed in outbox/")
        app.north = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind",
                                      "tcp://127.0.0.1:%d" % app.north_port, "--dir", app.north_dir],
                                     stdout=app.logs, stderr=app.logs)

        traces = traced_outpostd(app, "fsync,link,linkat,rename,renameat,renameat2,unlink,unlinkat",
                                 lambda: not glob.glob(os.path.join(outbox, "*.h5")), 60, "outbox/ emptied")
        lines = []
        for text in traces:  # the process that moved them: the uplink
            if any("%s/%s" % (sent, names[0]) in ln for ln in text):
                lines = text
        check(lines, "no process's trace names %s/%s" % (sent, names[0]))
        for name in names:
            src, dst = "%s/%s" % (outbox, name), "%s/%s" % (sent, name)
            linked = [i for i, ln in enumerate(lines) if ln.startswith("link") and src in ln and dst in ln and
                      ln.endswith("= 0")]
            check(linked, "%s was not linked into sent/ (renamed?):\n%s" %
                  (name, "\n".join(ln for ln in lines if name in ln)))
            synced = [i for i, ln in enumerate(lines) if i > linked[0] and ln.startswith("fsync(") and
                      ("<%s>" % sent) in ln and ln.endswith("= 0")]
            removed = [i for i, ln in enumerate(lines) if ln.startswith("unlink") and '"%s"' % src in ln]
            check(synced and removed and synced[0] < removed[0],
                  "%s left outbox/ before sent/ was fsynced:\n%s" % (name, "\n".join(
                      lines[i] for i in sorted(set(linked[:1] + synced[:1] + removed[:1])))))
            check(os.path.exists(dst), "%s is not in sent/" % name)
        print("%d confirmed segments: each linked into sent/, sent/ fsynced, then unlinked from outbox/" %
              len(names))
        rows = app.north_rows()
        check(len(rows) == n and len(unique_keys(rows)) == n, "north holds %d rows (%d distinct) of %d" %
              (len(rows), len(unique_keys(rows)), n))
        print("north holds the %d events once" % n)
    finally:
        app.stop()


if __name__ == "__main__":
    main()
