#!/usr/bin/python3
"""
test_cuts.py — the link north cut at random offsets, again and again, with the real programs.

  test_cuts.py BINDIR [CUTS]

outpostd's uplink talks to outpost-north through a small cutting proxy (TCP, in this test):
after a random number of bytes — anywhere from the first handshake byte to megabytes into a
chunk — it closes both sides, until CUTS cuts (default 100) have happened. Files are bulk files
of random bytes (0.1–3 MB) and the segments of the events sent meanwhile. Checked, as north
would see it:
  - every file north is byte-identical to what was queued (SHA-256), and each appears once in
    north's ledger (no duplicate after a cut, a lost confirmation or a resend);
  - every stored event is north exactly once;
  - the cost of a cut (bytes sent beyond the files' sizes, per cut) is printed.
"""
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, fail, free_port, need_modules, publish, sha_file  # noqa: E402


class CuttingProxy:
    """Forwards TCP to north; after a random number of bytes (either direction) cuts both sides."""

    def __init__(self, upstream_port, seed):
        self.rng = random.Random(seed)
        self.up = upstream_port
        self.port = free_port()
        self.cuts = 0
        self.stop_ = False
        self.lock = threading.Lock()
        self.budget = self.rng.randint(0, 3 << 20)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(8)
        self.ls.settimeout(0.2)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop_:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.up), timeout=2)
            except OSError:
                c.close()
                continue
            c.settimeout(None)  # blocking both ways: an idle link is not a dead one
            u.settimeout(None)
            pair = [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b, pair), daemon=True).start()

    @staticmethod
    def cut(pair):
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pump(self, a, b, pair):
        while not self.stop_:
            try:
                data = a.recv(65536)
            except OSError:
                return
            if not data:
                self.cut(pair)
                return
            cut_at = None
            with self.lock:
                if len(data) >= self.budget:
                    cut_at = self.budget
                    self.cuts += 1
                    self.budget = self.rng.randint(0, 3 << 20)
                else:
                    self.budget -= len(data)
            try:
                b.sendall(data if cut_at is None else data[:cut_at])
            except OSError:
                self.cut(pair)
                return
            if cut_at is not None:
                self.cut(pair)
                return

    def close(self):
        self.stop_ = True
        self.ls.close()




def main():
    bindir = sys.argv[1]
    want_cuts = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    need_modules("zmq", "h5py")
    north_port = free_port()
    proxy = CuttingProxy(north_port, seed=2026)
    app = Appliance(bindir, "cuts", north=False, config={
        "uplink": {"north_endpoint": "tcp://127.0.0.1:%d" % proxy.port, "timeout": "1s", "retry": "100ms",
                   "chunk_bytes": "256KiB"},
    })
    north_dir = os.path.join(app.tmp, "north")
    app.north = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind",
                                  "tcp://127.0.0.1:%d" % north_port, "--dir", north_dir],
                                 stdout=app.logs, stderr=app.logs)
    try:
        rng = random.Random(7)
        bulk = os.path.join(app.state, "outbox", "bulk")
        os.makedirs(bulk, exist_ok=True)
        queued, total = {}, 0

        def queue_bulk(i):
            nonlocal total
            name = "bulk-%04d.json" % i
            data = rng.randbytes(rng.randint(100_000, 3_000_000))
            queued[name] = publish(bulk, name, data=data)
            total += len(data)
        for i in range(16):
            queue_bulk(i)
        app.sim("--count", "20000", "--rate", "4000")
        t0 = time.time()
        i = 16
        while proxy.cuts < want_cuts:
            if time.time() - t0 > 600 + 3 * want_cuts:  # about 1 s a cut here
                fail("only %d cuts in %d s" % (proxy.cuts, 600 + 3 * want_cuts))
            if app.status()["stages"]["uplink"]["gauges"].get("bulk_files_pending", 0) < 3:
                queue_bulk(i)  # keep bytes flowing until enough cuts have happened
                i += 1
            time.sleep(0.2)

        def done():
            st = app.status()
            return st["stages"]["uplink"]["gauges"].get("files_pending", 1) == 0 and st["events"]["in_flight"] == 0
        app.wait(done, 300, "every file north after %d cuts" % proxy.cuts)
        secs = time.time() - t0
        up = app.status()["stages"]["uplink"]["counters"]
        for name, digest in queued.items():
            p = os.path.join(north_dir, name)
            check(os.path.exists(p), "%s north" % name)
            check(sha_file(p) == digest, "%s byte-identical north" % name)
        with open(os.path.join(north_dir, "ledger.tsv")) as f:
            names = [ln.split("\t")[1] for ln in f if ln.strip()]
        dup = len(names) - len(set(names))
        check(dup == 0, "%d duplicate(s) in north's ledger" % dup)
        others = [n for n in names if not n.startswith("bulk-")]
        other_bytes = sum(os.path.getsize(os.path.join(north_dir, n)) for n in others)
        rows, stored = app.north_count(), app.status()["events"]["stored"]
        check(rows == stored, "every stored event north once: %d rows, %d stored" % (rows, stored))
        wasted = up["bytes_sent"] - total - other_bytes
        print("%d cuts at random offsets in %.0f s: %d files north (%d bulk, %.1f MB), all byte-identical, none "
              "twice; %d resumes, %d timeouts; %.0f bytes sent again per cut (%.2f%% of %.1f MB)"
              % (proxy.cuts, secs, len(names), len(queued), total / 1e6, up["resumes"], up["timeouts"],
                 wasted / max(proxy.cuts, 1), 100.0 * wasted / (total + other_bytes), (total + other_bytes) / 1e6))
    finally:
        proxy.close()
        app.stop()
    print("ok: cuts")


if __name__ == "__main__":
    main()
