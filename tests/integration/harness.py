"""
harness.py — starts the real outpost programs for integration tests and reads back what they
stored. Every test gets its own temporary state, run and north directories and free TCP ports,
so tests can run in parallel and never touch /var/lib/outpost.

Runs under Debian's /usr/bin/python3 (python3-zmq, python3-h5py, python3-numpy).
"""
import atexit
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np


_PORT_LOCKS = []  # held open until this test exits: no other test takes the same port


def _port_range():
    """Ports below the kernel's ephemeral range (from 20000 up), or above it where that leaves too
    few: outside it no outgoing connection (the daemon reconnecting to a stopped outpost-north,
    another test's peers) is ever given a port a test means to bind later."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(v) for v in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if lo - 20000 >= 2000:
        return 20000, lo - 1
    if 65535 - hi >= 2000:
        return hi + 1, 65535
    return 20000, 29999  # no room outside it: the lock files still keep tests apart


def free_port():
    """A TCP port on 127.0.0.1 for this test alone, for as long as it runs. A port bind(0) chose
    and gave back could be taken again before the test (or its restart of outpost-north) binds
    it: by the kernel for an outgoing connection, or by a test running beside it, which made
    outpost-north fail with 'Address already in use'. So the port is outside the ephemeral range,
    reserved by a lock file every test here honours, and free when checked."""
    import fcntl
    import random
    lo, hi = _port_range()
    lockdir = os.path.join(tempfile.gettempdir(), "outpost-test-ports")
    os.makedirs(lockdir, exist_ok=True)
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(lo, hi)
        fd = os.open(os.path.join(lockdir, "%d.lock" % port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            os.close(fd)  # something else holds it (or a connection of it lingers)
            continue
        _PORT_LOCKS.append(fd)
        return port
    raise RuntimeError("no free TCP port in %d-%d after 500 tries" % (lo, hi))


def child_pids(pid):
    """The processes pid started and that still run (e.g. strace's traced outpostd)."""
    out = []
    for task in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            with open(task) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def need_strace():
    """Exit 77 (skipped) without strace, or where ptrace is refused."""
    if not shutil.which("strace"):
        print("strace not installed: skipped")
        sys.exit(77)
    if subprocess.run(["strace", "-o", os.devnull, "true"], capture_output=True).returncode != 0:
        print("strace cannot trace here (ptrace refused): skipped")
        sys.exit(77)


def traced_outpostd(app, calls, done, timeout, what):
    """Runs app's outpostd under strace (-ff: one file per process, so that no call is split by
    another's; -y: descriptors' paths) tracing `calls` until done() (fail after timeout s: what),
    stops it (SIGTERM to that outpostd alone: it stops its stages), and returns each process's
    trace as a list of lines."""
    trace = os.path.join(app.tmp, "trace")
    tracer = subprocess.Popen(["strace", "-ff", "-y", "-e", "trace=" + calls, "-o", trace,
                               os.path.join(app.bindir, "outpostd"), "-c", app.cfg], stdout=app.logs, stderr=app.logs)
    try:
        deadline = time.time() + timeout
        while not done() and time.time() < deadline:
            time.sleep(0.2)
        check(done(), "%s: not within %d s" % (what, timeout))
        time.sleep(0.5)  # the trace's lines are written as the calls return
    finally:
        for pid in child_pids(tracer.pid):
            os.kill(pid, signal.SIGTERM)
        try:
            tracer.wait(60)
        except subprocess.TimeoutExpired:
            tracer.kill()
    traces = []
    for path in glob.glob(trace + ".*"):
        with open(path) as f:
            traces.append(f.read().splitlines())
    return traces


FAILED = []  # set by fail(): stop() then keeps the test's directory for a post-mortem


def need_modules(*names):
    """Exit 77 (skipped) when a Python module the test needs is missing (Debian's python3-zmq,
    python3-h5py, python3-numpy)."""
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            print("skipped: %s (install python3-h5py python3-zmq python3-numpy)" % e)
            sys.exit(77)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    FAILED.append(msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Appliance:
    """outpost-north + outpostd with a test configuration."""

    def __init__(self, bindir, name, config=None, north=True, env=None, state_files=None, prepare=None,
                 all_running=True):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="op-%s-" % name)
        self.state = os.path.join(self.tmp, "state")
        self.run = os.path.join(self.tmp, "run")
        self.north_dir = os.path.join(self.tmp, "north")
        self.pull_port = free_port()
        self.north_port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.pull_port
        self.cfg = os.path.join(self.tmp, "outpost.yaml")
        sections = {
            "site": {"name": "test-%s" % name},
            "paths": {"state_dir": self.state, "run_dir": self.run},
            "ingest": {"pull_endpoint": self.endpoint},
            "store": {"rotate_age": "1s"},
            # no disk reserve: a test machine's free space must not decide what a test sees
            # (the reserve has its own test on a small tmpfs: test_diskfull.py)
            "uplink": {"north_endpoint": "tcp://127.0.0.1:%d" % self.north_port, "retry": "200ms",
                       "timeout": "5s", "disk_reserve": "0"},
            "supervisor": {"restart_backoff": "200ms", "stage_deadline": "10s"},
            "log": {"level": "info"},
        }
        for sec, kv in (config or {}).items():
            sections.setdefault(sec, {}).update(kv)
        with open(self.cfg, "w") as f:
            for sec, kv in sections.items():
                f.write("%s:\n" % sec)
                for k, v in kv.items():
                    f.write("  %s: %s\n" % (k, v if v != "" else '""'))
        for rel, text in (state_files or {}).items():  # state left by an earlier life of the box
            os.makedirs(self.state, exist_ok=True)
            with open(os.path.join(self.state, rel), "w") as f:
                f.write(text)
        if prepare:  # anything else an earlier life left: prepare(state_dir) before the daemon starts
            os.makedirs(self.state, exist_ok=True)
            prepare(self.state)
        self.logs = open(os.path.join(self.tmp, "log.txt"), "w")
        self.north = None
        if north:
            self.north = subprocess.Popen(
                [os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % self.north_port,
                 "--dir", self.north_dir], stdout=self.logs, stderr=self.logs)
        denv = dict(os.environ)
        denv.update(env or {})
        self.daemon = subprocess.Popen([os.path.join(bindir, "outpostd"), "-c", self.cfg],
                                       stdout=self.logs, stderr=self.logs, env=denv)
        # a failed check exits at once (fail()): nothing this test started may outlive it
        atexit.register(self._reap_leftovers)
        self.wait(lambda: self.ctl("ping", check_rc=False)[0] == 0, 20, "outpostd answering")
        if all_running:  # (False: a test of a stage that cannot start)
            self.wait(lambda: all(s["state"] == "running" for s in self.status()["stages"].values()),
                      20, "all stages running")

    def start_again(self):
        """The next outpostd on the same configuration and directories (systemd's restart of
        one that has ended), answering."""
        self.daemon = subprocess.Popen([os.path.join(self.bindir, "outpostd"), "-c", self.cfg],
                                       stdout=self.logs, stderr=self.logs)
        self.wait(lambda: self.ctl("ping", check_rc=False)[0] == 0, 20, "the next outpostd answering")

    def _reap_leftovers(self):
        for p in (self.daemon, self.north):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()

    def ctl(self, *args, check_rc=True):
        p = subprocess.run([os.path.join(self.bindir, "outpostctl"), "-c", self.cfg] + list(args),
                           capture_output=True, text=True, timeout=20)
        if check_rc and p.returncode != 0:
            fail("outpostctl %s: rc %d: %s" % (" ".join(args), p.returncode, p.stderr))
        return p.returncode, p.stdout

    def status(self):
        return json.loads(self.ctl("status", "--json")[1])

    def wait(self, pred, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                if pred():
                    return
            except (json.JSONDecodeError, KeyError):
                pass
            if self.daemon.poll() is not None:
                self.dump_log()
                fail("outpostd exited (rc %s) while waiting for %s" % (self.daemon.returncode, what))
            time.sleep(0.1)
        self.dump_log()
        fail("timed out after %ds waiting for %s" % (timeout, what))

    def sim(self, *args):
        p = subprocess.run([os.path.join(self.bindir, "outpost-sim"), "--endpoint", self.endpoint] + list(args),
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "outpost-sim failed: %s" % p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def stage_pid(self, stage):
        return self.status()["stages"][stage]["pid"]

    def kill_stage(self, stage):
        """SIGKILL a stage and wait until outpostd has it, and every other stage, running again."""
        old = self.stage_pid(stage)
        os.kill(old, signal.SIGKILL)
        self.wait(lambda: self.stage_pid(stage) not in (0, old) and
                  all(x["state"] == "running" for x in self.status()["stages"].values()), 30, "%s restarted" % stage)

    def north_files(self):
        return sorted(glob.glob(os.path.join(self.north_dir, "*.h5")))

    def north_rows(self):
        parts = []
        for path in self.north_files():
            with h5py.File(path, "r") as f:
                parts.append(f["results"][:])
        if not parts:
            return None
        return np.concatenate(parts)

    def north_count(self):
        rows = self.north_rows()
        return 0 if rows is None else len(rows)

    def wait_delivered(self, n, timeout=90):
        self.wait(lambda: self.status()["events"]["stored"] >= n, timeout, "%d events stored" % n)
        self.wait(lambda: self.north_count() >= n, timeout, "%d rows north" % n)

    def log_text(self):
        """What outpostd and its stages have written so far (the journal's lines)."""
        self.logs.flush()
        with open(os.path.join(self.tmp, "log.txt")) as f:
            return f.read()

    def dump_log(self):
        sys.stderr.write(self.log_text()[-8000:])

    def stop(self, keep=False):
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                fail("outpostd did not stop within 60 s of SIGTERM")
        if self.north and self.north.poll() is None:
            self.north.send_signal(signal.SIGTERM)
            self.north.wait(20)
        rc = self.daemon.returncode
        self.logs.close()
        if not keep and rc == 0 and not FAILED:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif FAILED:
            print("kept for a post-mortem: %s" % self.tmp, file=sys.stderr)
        return rc


def publish(dirpath, name, data=None, size=None):
    """Queue a file for north the way the appliance does: the data under a temporary name, its
    NAME.sha256 sidecar, then the rename. data: bytes; or size: that many zeros (sparse on
    disk, hashed in blocks). Returns the SHA-256 (hex)."""
    import hashlib
    os.makedirs(dirpath, exist_ok=True)
    tmp = os.path.join(dirpath, ".tmp-" + name)
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        if data is not None:
            f.write(data)
            h.update(data)
        else:
            f.truncate(size)
            blk = bytes(1 << 20)
            for _ in range(size >> 20):
                h.update(blk)
            h.update(bytes(size & ((1 << 20) - 1)))
    with open(os.path.join(dirpath, name + ".sha256"), "w") as f:
        f.write("%s  %s\n" % (h.hexdigest(), name))
    os.rename(tmp, os.path.join(dirpath, name))
    return h.hexdigest()


def sha_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def mount_tmpfs(prefix, size, inodes=None):
    """A fresh tmpfs of this size ("16m") and, given, this many inodes: a disk that really fills
    up. Exits 77 (skipped) where it cannot be mounted (needs root). Give it back with
    unmount_tmpfs."""
    mnt = tempfile.mkdtemp(prefix=prefix)
    opts = "size=%s" % size + (",nr_inodes=%d" % inodes if inodes else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt]).returncode != 0:
        os.rmdir(mnt)
        print("skipped: cannot mount a tmpfs here (needs root)")
        sys.exit(77)
    return mnt


def unmount_tmpfs(mnt):
    subprocess.run(["umount", mnt])
    os.rmdir(mnt)


def unique_keys(rows):
    keys = set(zip(rows["stream_id"].tolist(), rows["sequence"].tolist()))
    return keys


def linefit(pos, t, q=None):
    """Independent LineFit (numpy): direction of travel v/|v|."""
    w = np.ones_like(t) if q is None else q
    w = w / w.sum()
    tm = (w * t).sum()
    rm = (w[:, None] * pos).sum(0)
    rt = (w[:, None] * pos * t[:, None]).sum(0)
    tt = (w * t * t).sum()
    v = (rt - rm * tm) / (tt - tm * tm)
    return v / np.linalg.norm(v)
