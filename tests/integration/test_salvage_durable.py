#!/usr/bin/python3
"""
test_salvage_durable.py — leftovers are removed only once what holds their rows is durable:

  test_salvage_durable.py BINDIR

An earlier run left in segments/ a segment whose rows are all in outbox/ already (as a store
that died between sealing a copy and removing the leftover leaves it, or a pause for disk space
whose seal was published after all). The next store salvages it, finds every row a duplicate,
and removes the file. outbox/ may not be durable yet at that point (a predecessor may have died
between its renames into outbox/ and their fsync): removed first, the leftover would have been
the only copy a power cut leaves. Checked on the real daemon under strace: the fsync of outbox/
comes before the leftover's unlink; the leftover goes; outbox/ holds every event once.
(Before, the unlink came first.)

Then the same daemon on a state_dir that is not there (a first start, or one an operator wiped):
every directory it creates is followed, in the process that made it, by an fsync of its parent
(segments/, outbox/ and its classes, sent/, quarantine/, state_dir itself). The fsyncs of a
segment renamed into a new outbox/ do not keep outbox/'s own entry through a power cut. (Before,
no parent was fsynced.) Needs strace and ptrace (else skipped, exit 77).
"""
import glob
import os
import re
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, need_modules, need_strace, traced_outpostd, unique_keys  # noqa: E402


def main():
    bindir = sys.argv[1]
    need_strace()
    need_modules("h5py", "numpy")
    import h5py
    import numpy as np
    n = 500
    app = Appliance(bindir, "salvage-durable", north=False)
    try:
        app.sim("--count", str(n), "--rate", "2000", "--stream", "3")
        app.wait(lambda: app.status()["events"]["stored"] == n, 60, "every event stored")
        app.daemon.send_signal(signal.SIGTERM)
        check(app.daemon.wait(60) == 0, "outpostd did not stop cleanly")
        sealed = sorted(glob.glob(os.path.join(app.state, "outbox", "*.h5")))
        check(sealed, "nothing sealed in outbox/")
        leftover = os.path.join(app.state, "segments", "leftover-copy.h5")
        shutil.copy(sealed[0], leftover)

        traces = traced_outpostd(app, "fsync,unlink,unlinkat", lambda: not os.path.exists(leftover), 30,
                                 "the leftover removed")
        outbox = os.path.realpath(os.path.join(app.state, "outbox"))
        lines = []
        for text in traces:  # the process that removed the leftover: the store
            if any("unlink" in ln and "leftover-copy.h5" in ln for ln in text):
                lines = text
        removed = [i for i, ln in enumerate(lines) if "unlink" in ln and "leftover-copy.h5" in ln]
        synced = [i for i, ln in enumerate(lines) if ln.startswith("fsync(") and ("<%s>" % outbox) in ln and
                  ln.endswith("= 0")]
        check(removed, "no unlink of the leftover in the trace")
        check(synced and synced[0] < removed[0], "the leftover was unlinked before outbox/ was fsynced:\n%s" %
              "\n".join(lines[i] for i in sorted(set(removed[:1] + synced[:2]))))
        print("the store's trace: fsync of outbox/ at line %d, the leftover's unlink at line %d" %
              (synced[0] + 1, removed[0] + 1))
        parts = []
        for path in glob.glob(os.path.join(outbox, "*.h5")):
            with h5py.File(path, "r") as f:
                parts.append(f["results"][:])
        rows = np.concatenate(parts)
        check(len(rows) == n and len(unique_keys(rows)) == n, "outbox holds %d rows (%d distinct) of %d" %
              (len(rows), len(unique_keys(rows)), n))
        print("a leftover copy of %s, its rows all in outbox/ already: removed after outbox/ was durable; "
              "outbox/ holds the %d events once" % (os.path.basename(sealed[0]), n))
        fresh_state_durable(app)
    finally:
        app.stop()


def fresh_state_durable(app):
    state = os.path.realpath(app.state)
    shutil.rmtree(state)
    want = ["", "segments", "outbox", "outbox/alert", "outbox/telemetry", "outbox/bulk", "sent", "quarantine"]
    traces = traced_outpostd(app, "mkdir,mkdirat,fsync",
                             lambda: all(os.path.isdir(os.path.join(state, d)) for d in want), 30,
                             "the state directories made")
    made, unsynced = [], []
    for lines in traces:
        for i, ln in enumerate(lines):
            m = re.match(r'mkdir(?:at)?\((?:AT_FDCWD, )?"([^"]+)", [0-7]+\) = 0$', ln)
            path = os.path.realpath(m.group(1)) if m else ""
            if path != state and not path.startswith(state + "/"):
                continue
            made.append(path)
            parent = os.path.dirname(path)
            if not any(x.startswith("fsync(") and x.endswith("<%s>) = 0" % parent) for x in lines[i + 1:]):
                unsynced.append(path)
    print("a new state_dir: %d directories made, %d without their parent fsynced after: %s" %
          (len(made), len(unsynced), " ".join(os.path.relpath(p, os.path.dirname(state)) for p in unsynced)))
    check(set(os.path.join(state, d).rstrip("/") for d in want) <= set(made),
          "not every directory was made by the daemon under trace: %s" % made)
    check(not unsynced, "directories whose parent was not fsynced after their mkdir: %s" % unsynced)


if __name__ == "__main__":
    main()
