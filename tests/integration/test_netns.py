#!/usr/bin/python3
"""
test_netns.py — the uplink over a real shaped link: outpost-north in its own network namespace,
reached over a veth pair whose appliance side is shaped by `tc ... tbf` (4 Mbit/s), with the
real programs. Needs root and iproute2 (exit 77 otherwise).

  test_netns.py BINDIR

  1. cuts by taking the interface down (3 times, 1.5–3 s, at random moments during transfers):
     every file north byte-identical, once in the ledger;
  2. the cap: uplink.rate 2 Mbit/s under the 4 Mbit/s link, bulk backlogged; the bytes the
     kernel put on the interface over 60 s (tc's counters: IP packets with their headers, the
     appliance's TCP acknowledgements included) within ±5% of the cap;
  3. an alert queued behind 2 GiB of bulk reaches north within one chunk time (0.5 s of the
     cap) plus the link's latency, three times;
  4. north's metrics file (--metrics) names what it received, per appliance.
"""
import atexit
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, fail, need_modules, publish  # noqa: E402

CAP_BPS = 2_000_000
LINK = "4mbit"


def sh(*args, ns=None, check_rc=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check_rc and p.returncode != 0:
        fail("%s: rc %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


def qdisc_sent(dev):
    out = sh("tc", "-s", "qdisc", "show", "dev", dev).stdout
    m = re.search(r"Sent (\d+) bytes", out)
    check(m is not None, "tc reports bytes sent on %s: %s" % (dev, out))
    return int(m.group(1))


def main():
    bindir = sys.argv[1]
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        print("skipped: needs root, ip and tc (iproute2) for network namespaces")
        sys.exit(77)
    need_modules("zmq", "h5py")
    pid = os.getpid()
    ns, va, vn = "opn%d" % pid, "opa%d" % (pid % 100000), "opb%d" % (pid % 100000)
    net = "10.%d.%d" % (200 + pid % 50, pid % 250)
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        print("skipped: cannot create a network namespace here")
        sys.exit(77)
    atexit.register(lambda: (subprocess.run(["ip", "netns", "del", ns], capture_output=True),
                             subprocess.run(["ip", "link", "del", va], capture_output=True)))
    sh("ip", "link", "add", va, "type", "veth", "peer", "name", vn)
    sh("ip", "link", "set", vn, "netns", ns)
    sh("ip", "addr", "add", net + ".1/24", "dev", va)
    sh("ip", "link", "set", va, "up")
    sh("ip", "addr", "add", net + ".2/24", "dev", vn, ns=ns)
    sh("ip", "link", "set", vn, "up", ns=ns)
    sh("ip", "link", "set", "lo", "up", ns=ns)
    sh("tc", "qdisc", "add", "dev", va, "root", "tbf", "rate", LINK, "burst", "16kb", "latency", "100ms")
    port = 5600 + pid % 1000
    app = Appliance(bindir, "netns", north=False, config={
        "uplink": {"north_endpoint": "tcp://%s.2:%d" % (net, port), "rate": "2Mbit/s", "timeout": "3s",
                   "retry": "200ms"},
    })
    metrics = os.path.join(app.tmp, "north.prom")
    app.north = subprocess.Popen(["ip", "netns", "exec", ns, os.path.join(bindir, "outpost-north"), "--bind",
                                  "tcp://%s.2:%d" % (net, port), "--dir", app.north_dir, "--metrics", metrics],
                                 stdout=app.logs, stderr=app.logs)
    try:
        rng = random.Random(5)
        bulk = os.path.join(app.state, "outbox", "bulk")
        alert = os.path.join(app.state, "outbox", "alert")
        rtt = None  # a TCP handshake with north's port takes one round trip
        for _ in range(100):
            try:
                t0 = time.time()
                socket.create_connection((net + ".2", port), timeout=1).close()
                rtt = min(rtt or 1e9, time.time() - t0)
                if rtt is not None and _ > 5:
                    break
            except OSError:
                time.sleep(0.1)
        check(rtt is not None, "north answers in its namespace")

        # 1. cuts by taking the interface down
        queued = {}
        for i in range(3):
            name = "cut-%d.bin" % i
            queued[name] = publish(bulk, name, data=rng.randbytes(1_000_000))
        for k in range(3):
            time.sleep(rng.uniform(1.0, 3.0))
            sh("ip", "link", "set", va, "down")
            time.sleep(rng.uniform(1.5, 3.0))
            sh("ip", "link", "set", va, "up")
        t0 = time.time()
        while not all(os.path.exists(os.path.join(app.north_dir, n)) for n in queued):
            if time.time() - t0 > 120:
                app.dump_log()
                fail("files north within 120 s after 3 interface cuts (have: %s)"
                     % [n for n in queued if os.path.exists(os.path.join(app.north_dir, n))])
            time.sleep(0.2)
        for name, digest in queued.items():
            with open(os.path.join(app.north_dir, name), "rb") as f:
                check(hashlib.sha256(f.read()).hexdigest() == digest, "%s byte-identical north" % name)
        time.sleep(1)
        with open(os.path.join(app.north_dir, "ledger.tsv")) as f:
            names = [ln.split("\t")[1] for ln in f if ln.strip()]
        check(len(names) == len(set(names)), "no file twice in north's ledger after interface cuts")
        print("interface down 3 times during transfers: %d files north, byte-identical, once each" % len(queued))

        # 2. the cap over 60 s, on the interface's own counters
        for i in range(2):
            publish(bulk, "cap-%d.bin" % i, data=rng.randbytes(16_000_000))
        time.sleep(3)
        b0, t0 = qdisc_sent(va), time.time()
        time.sleep(60)
        b1, t1 = qdisc_sent(va), time.time()
        rate = (b1 - b0) * 8 / (t1 - t0)
        print("cap %.2f Mbit/s under a %s link: %.3f Mbit/s on the interface over %.1f s (%.3f of the cap)"
              % (CAP_BPS / 1e6, LINK, rate / 1e6, t1 - t0, rate / CAP_BPS))
        check(abs(rate / CAP_BPS - 1) <= 0.05, "the cap held within ±5%% over 60 s: %.3f of it" % (rate / CAP_BPS))

        # 3. alerts behind gigabytes of bulk
        publish(bulk, "big-0.bin", size=1 << 30)
        publish(bulk, "big-1.bin", size=1 << 30)
        chunk_s = 0.5  # chunks are half a second of the cap (uplink/sender.c)
        worst = 0.0
        for k in range(3):
            time.sleep(rng.uniform(0.5, 2.0))

            def bulk_sent():
                return app.status()["stages"]["uplink"]["counters"].get("bulk_bytes_sent", 0)
            t0, b0 = time.time(), bulk_sent()
            while bulk_sent() < b0 + 100_000:  # bulk flowing (the big files take hours at the cap)
                if time.time() - t0 > 60:
                    fail("bulk flowing within 60 s")
                time.sleep(0.1)
            name = "alert-test-%d.json" % k
            t0 = time.time()
            publish(alert, name, data=b'{"alert":"test %d"}\n' % k)
            while not os.path.exists(os.path.join(app.north_dir, name)):
                if time.time() - t0 > 30:
                    app.dump_log()
                    fail("alert %s north within 30 s" % name)
                time.sleep(0.005)
            lat = time.time() - t0
            worst = max(worst, lat)
            print("alert %d behind 2 GiB of bulk: north after %.3f s" % (k, lat))
        bound = chunk_s + 0.1 + rtt + 0.25  # a chunk, tbf's queue (100 ms), a round trip, scheduling
        check(worst <= bound, "alerts north within a chunk time plus latency: worst %.3f s, bound %.3f s"
              % (worst, bound))

        # 4. north's figures
        time.sleep(11)
        with open(metrics) as f:
            text = f.read()
        check(re.search(r'outpost_north_files_total\{appliance="-"\} (\d+)', text) is not None,
              "north's metrics name the files received per appliance")
        check(re.search(r"outpost_north_disk_full_in_seconds [-0-9.e+]+", text) is not None,
              "north's metrics give the time until its disk is full")
        if shutil.which("promtool"):  # what node_exporter would serve must be valid exposition text
            p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            check(p.returncode == 0, "promtool accepts north's metrics: %s%s" % (p.stdout, p.stderr))
        print("round trip %.1f ms; worst alert %.3f s (bound %.3f s)" % (rtt * 1e3, worst, bound))
    finally:
        app.stop()
    print("ok: netns")


if __name__ == "__main__":
    main()
