#!/usr/bin/python3
"""
test_curve.py — the link north under ZeroMQ CURVE, with the real programs.

  test_curve.py BINDIR

Keys made with `outpostctl keygen`. outpost-north runs with its key and a directory of the
appliance keys it accepts. Checked, as an operator would see it:
  - an appliance with a listed key delivers everything; north's ledger and `--report` name it;
    `outpostctl status` says the link is up and encrypted;
  - an appliance whose key is not listed delivers nothing (its segments stay in its outbox, its
    status says the link is DOWN) until its .pub is copied into north's directory — no restart
    of north — and then everything arrives;
  - a plaintext appliance gets nothing through to a CURVE north;
  - two appliances queue a file of one name: north keeps the one it holds and refuses the other
    with the reason (in the second appliance's journal), which stays in that appliance's outbox;
  - key rotation: a new key pair, its .pub added north, the config changed and reloaded: the
    deliveries continue under the new name; the old .pub removed north refuses the old key; a
    file north confirmed under the old key is not replaced under the new one (refused, with the
    reason);
  - a secret key readable by others is refused with the reason, and nothing is sent in plaintext.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Appliance, check, free_port, need_modules, publish, sha_file  # noqa: E402


def keygen(bindir, path):
    p = subprocess.run([os.path.join(bindir, "outpostctl"), "keygen", path], capture_output=True, text=True)
    check(p.returncode == 0, "keygen %s: %s" % (path, p.stderr))


def north_report(bindir, d):
    p = subprocess.run([os.path.join(bindir, "outpost-north"), "--report", d], capture_output=True, text=True)
    check(p.returncode == 0, "north --report: %s" % p.stderr)
    return json.loads(p.stdout)["appliances"]


def uplink_line(app):
    return [ln for ln in app.ctl("status")[1].splitlines() if ln.startswith("uplink   link")][0]


def main():
    bindir = sys.argv[1]
    need_modules("zmq", "h5py")
    import zmq
    if not zmq.has("curve"):
        print("skipped: this libzmq has no CURVE support")
        sys.exit(77)
    keys = tempfile.mkdtemp(prefix="op-curve-keys-")
    auth = os.path.join(keys, "authorized")
    os.makedirs(auth)
    for k in ("north", "site-a", "site-b", "site-a-2026"):
        keygen(bindir, os.path.join(keys, k))
    # keygen never overwrites a key
    p = subprocess.run([os.path.join(bindir, "outpostctl"), "keygen", os.path.join(keys, "north")],
                       capture_output=True, text=True)
    check(p.returncode != 0 and "never overwritten" in p.stderr, "keygen over an existing key: %r" % p.stderr)
    check(oct(os.stat(os.path.join(keys, "north.key")).st_mode & 0o777) == "0o600", ".key is 0600")
    shutil.copy(os.path.join(keys, "site-a.pub"), auth)

    port = free_port()
    north_dir = tempfile.mkdtemp(prefix="op-curve-north-")
    nlog = open(os.path.join(north_dir, "..", os.path.basename(north_dir) + ".log"), "w")
    north = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % port,
                              "--dir", north_dir, "--curve-key", os.path.join(keys, "north.key"),
                              "--authorized-keys", auth], stdout=nlog, stderr=nlog)
    apps = []

    def appliance(name, key):
        up = {"north_endpoint": "tcp://127.0.0.1:%d" % port}
        if key:
            up.update({"curve_key": os.path.join(keys, key + ".key"),
                       "north_public_key": os.path.join(keys, "north.pub")})
        a = Appliance(bindir, name, north=False, config={"uplink": up, "site": {"name": name}})
        apps.append(a)
        return a

    def north_rows_from(site):
        import h5py
        n = 0
        for f in os.listdir(north_dir):
            if f.endswith(".h5") and site in f:
                with h5py.File(os.path.join(north_dir, f), "r") as h:
                    n += len(h["results"])
        return n

    try:
        a = appliance("site-a", "site-a")
        a.sim("--count", "3000")
        a.wait(lambda: north_rows_from("site-a") >= 3000, 60, "site-a's events north")
        line = uplink_line(a)
        print("site-a: " + line)
        check("link up, encrypted (CURVE)" in line, "status shows an encrypted link: " + line)
        rep = north_report(bindir, north_dir)
        check(rep.get("site-a", {}).get("rows") == 3000, "north's report names site-a with 3000 rows: %s" % rep)

        b = appliance("site-b", "site-b")
        b.sim("--count", "1000")
        b.wait(lambda: b.status()["events"]["stored"] >= 1000, 30, "site-b stored its events")
        time.sleep(6)
        check(north_rows_from("site-b") == 0, "an unlisted key delivers nothing")
        b.wait(lambda: "link DOWN" in uplink_line(b), 30, "site-b's status to say the link is down")
        check(len([f for f in os.listdir(os.path.join(b.state, "outbox")) if f.endswith(".h5")]) >= 1,
              "site-b's segments wait in its outbox")
        print("site-b (not listed): " + uplink_line(b))
        # listed under a name no appliance can have (a space would split the ledger's column and
        # merge it with another site's in north's report): still refused, north's journal says why
        shutil.copy(os.path.join(keys, "site-b.pub"), os.path.join(auth, "site b.pub"))
        shutil.copy(os.path.join(keys, "site-b.pub"), os.path.join(auth, "-.pub"))  # the ledger's "no key"
        nlog_path = nlog.name
        badname = "is authorised as 'site b.pub', a name an appliance cannot have"
        b.wait(lambda: nlog.flush() or badname in open(nlog_path).read(), 30, "north's journal to refuse 'site b.pub'")
        # and a north started with it in its directory says so at once, before any connection
        p2 = subprocess.Popen([os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % free_port(),
                               "--dir", tempfile.mkdtemp(prefix="op-curve-north2-"), "--curve-key",
                               os.path.join(keys, "north.key"), "--authorized-keys", auth],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        said = ""
        for ln in p2.stdout:  # its warnings come before "receiving on" (or it ends: EOF)
            said += ln
            if "receiving on" in ln:
                break
        p2.terminate()
        said += p2.communicate(timeout=10)[0]
        check("site b.pub: not a name an appliance can have" in said and "/-.pub: not a name an appliance" in said,
              "north's start does not warn: %r" % said)
        os.remove(os.path.join(auth, "site b.pub"))
        os.remove(os.path.join(auth, "-.pub"))
        # a size north cannot read is refused at start (a bare number parse read "2X" as 2 bytes,
        # and every file was refused)
        p3 = subprocess.run([os.path.join(bindir, "outpost-north"), "--bind", "tcp://127.0.0.1:%d" % free_port(),
                             "--dir", north_dir, "--max-file-bytes", "2X"], capture_output=True, text=True,
                            timeout=20)
        check(p3.returncode == 2 and "--max-file-bytes 2X: not a size" in p3.stderr,
              "north with --max-file-bytes 2X: %d %r" % (p3.returncode, p3.stderr))
        # admitted without restarting north, under a long name: kept whole in the ledger (cut at
        # 63 bytes before, two names alike that far were one appliance to north)
        long_name = "site-b-" + "k" * 70
        shutil.copy(os.path.join(keys, "site-b.pub"), os.path.join(auth, long_name + ".pub"))
        b.wait(lambda: north_rows_from("site-b") >= 1000, 60, "site-b's events north once its key is listed")
        rep = north_report(bindir, north_dir)
        check(rep.get(long_name, {}).get("rows", 0) >= 1000, "north's report does not have site-b's long name "
              "whole: %s" % list(rep))
        print("site-b listed: all 1000 events north, north not restarted, under its %d-byte name" % len(long_name))
        # a file site-b sent before north kept names whole: its ledger line names the first 63
        # bytes; a new version from site-b replaces it (it is site-b's own, not "name taken")
        old = b"site-b table v1\n" * 100
        with open(os.path.join(north_dir, "table.txt"), "wb") as f:
            f.write(old)
        old_sha = hashlib.sha256(old).hexdigest()
        with open(os.path.join(north_dir, "table.txt.sha256"), "w") as f:
            f.write("%s  table.txt\n" % old_sha)
        with open(os.path.join(north_dir, "ledger.tsv"), "a") as f:
            f.write("2026-01-01T00:00:00Z\ttable.txt\t%d\t%s\t-1\t%s\n" % (len(old), old_sha, long_name[:63]))
        new = publish(os.path.join(b.state, "outbox", "bulk"), "table.txt", data=b"site-b table v2\n" * 100)
        b.wait(lambda: sha_file(os.path.join(north_dir, "table.txt")) == new, 30,
               "site-b's new table.txt to replace the one its cut name sent")

        # two sites, one name: the file north holds is never replaced by another appliance's
        mine = publish(os.path.join(a.state, "outbox", "bulk"), "calib.tar", data=b"site-a calibration\n" * 5000)
        held = os.path.join(north_dir, "calib.tar")
        a.wait(lambda: os.path.exists(held + ".sha256") and sha_file(held) == mine, 60, "site-a's calib.tar north")
        publish(os.path.join(b.state, "outbox", "bulk"), "calib.tar", data=b"site-b calibration\n" * 4000)
        taken = "north refused calib.tar: name taken: north holds a file of this name from appliance site-a"
        b.wait(lambda: taken in b.log_text(), 30, "site-b's journal to say why north refuses its calib.tar")
        check(sha_file(held) == mine, "north's calib.tar is no longer site-a's")
        check(os.path.exists(os.path.join(b.state, "outbox", "bulk", "calib.tar")),
              "site-b's refused calib.tar left its outbox")
        # a refusal about the file alone: site-b's other files are not spaced, its status does
        # not say north refuses files, but that one is held and why
        b.wait(lambda: b.status()["stages"]["uplink"]["gauges"]["files_refused"] == 1, 10,
               "site-b's status to count its refused file")
        g = b.status()["stages"]["uplink"]["gauges"]
        check(g["refusals_running"] == 0 and g["spaced_s"] == 0 and g["files_refused"] == 1,
              "site-b after a name conflict: refusals_running %s, spaced_s %s, files_refused %s"
              % (g["refusals_running"], g["spaced_s"], g["files_refused"]))
        st = b.ctl("status")[1]
        check("NORTH REFUSING FILES" not in st and "FILES NORTH REFUSES: 1, each offered again up to hourly; "
              "the last: calib.tar: name taken" in st, "site-b's status after a name conflict:\n%s" % st)
        b.sim("--count", "300", "--stream", "9")
        b.wait(lambda: north_rows_from("site-b") >= 1300, 60, "site-b's next events north after the conflict")
        # the operator renames it, as the status line asks: it goes north, and the line goes
        ob = os.path.join(b.state, "outbox", "bulk")
        theirs = publish(ob, "calib-site-b.tar", data=b"site-b calibration\n" * 4000)
        for f in ("calib.tar", "calib.tar.sha256"):
            os.remove(os.path.join(ob, f))
        renamed = os.path.join(north_dir, "calib-site-b.tar")
        b.wait(lambda: os.path.exists(renamed + ".sha256") and sha_file(renamed) == theirs, 60,
               "site-b's renamed calibration north")
        b.wait(lambda: "FILES NORTH REFUSES" not in b.ctl("status")[1], 10,
               "site-b's status to forget the refused file once it was renamed")
        print("one name from two sites: north kept site-a's calib.tar; site-b's journal: %s" %
              [x for x in b.log_text().splitlines() if taken in x][0].split("WARN: ")[-1])

        c = appliance("site-c", None)
        c.sim("--count", "500")
        c.wait(lambda: c.status()["events"]["stored"] >= 500, 30, "site-c stored")
        time.sleep(6)
        check(north_rows_from("site-c") == 0, "a plaintext appliance gets nothing through to a CURVE north")
        print("site-c (plaintext): " + uplink_line(c))

        # rotation of site-a's key
        shutil.copy(os.path.join(keys, "site-a-2026.pub"), auth)
        with open(a.cfg) as f:
            text = f.read()
        with open(a.cfg, "w") as f:
            f.write(text.replace("site-a.key", "site-a-2026.key"))
        rc, out = a.ctl("reload")
        check("uplink.curve_key" in out, "reload applied the new key: %r" % out)
        os.remove(os.path.join(auth, "site-a.pub"))
        a.sim("--count", "2000", "--first-seq", "3000")
        a.wait(lambda: north_rows_from("site-a") >= 5000, 60, "site-a's events after the rotation")
        rep = north_report(bindir, north_dir)
        check(rep.get("site-a-2026", {}).get("rows", 0) >= 1, "deliveries after the rotation are under the new key: %s" % rep)
        print("rotation: %s" % {k: v["rows"] for k, v in rep.items()})
        # a file north confirmed stays its key's: a new version under the rotated key is refused
        # with the reason (renamed, it would go)
        publish(os.path.join(a.state, "outbox", "bulk"), "calib.tar", data=b"site-a calibration v2\n" * 5000)
        a.wait(lambda: taken in a.log_text(), 30,
               "site-a's journal (new key) to say why north refuses its new calib.tar")
        check(sha_file(held) == mine, "north's calib.tar was replaced after the rotation")

        # a secret key readable by others
        os.chmod(os.path.join(keys, "site-b.key"), 0o644)
        with open(b.cfg) as f:
            text = f.read()
        with open(b.cfg, "w") as f:
            f.write(text.replace("retry: 200ms", "retry: 300ms"))  # any uplink change restarts the uplink stage
        b.ctl("reload")
        b.wait(lambda: "KEYS UNREADABLE" in uplink_line(b), 20, "status to say the keys are unreadable")
        b.logs.flush()
        with open(os.path.join(b.tmp, "log.txt")) as f:
            log = f.read()
        check("chmod 600" in log, "the log says how to fix the key's mode")
        print("world-readable key: " + uplink_line(b))
        nlog.flush()
        with open(nlog.name) as f:
            nl = f.read()
        check("is not in the authorised keys" in nl, "north logs the refusals")
    finally:
        for a_ in apps:
            a_.stop()
        north.terminate()
        north.wait(20)
        nlog.close()
    shutil.rmtree(keys, ignore_errors=True)
    shutil.rmtree(north_dir, ignore_errors=True)
    print("ok: curve")


if __name__ == "__main__":
    main()
