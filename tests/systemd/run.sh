#!/bin/sh
# tests/systemd/run.sh [BINDIR] — deploy/outpost.service under a real systemd (root; build first;
# ctest runs it as systemd_unit).
#
# Boots systemd as PID 1 in private PID, mount, UTS and IPC namespaces (the host's network),
# with a target that wants nothing but the unit, and checks what only a real systemd can show:
#   - `systemctl start` returns only after READY=1 (Type=notify: the probe went end to end) and
#     the service runs as the unprivileged user `outpost` with the unit's hardening applied;
#   - events from outpost-sim reach outpost-north;
#   - rung 1: a killed stage is restarted inside the service (same main PID, no systemd restart),
#     with restart delays held to a quarter of WatchdogSec;
#   - rung 2: a spent restart budget (restart_burst 2 here) ends in a process restart by systemd
#     (NRestarts goes up, a new main PID, running again after RestartSec);
#   - a hung supervisor (SIGSTOP) stops pinging and systemd's watchdog restarts the process;
#   - `systemctl reload` (ExecReload: SIGHUP) applies a changed file;
#   - `systemctl stop` drains and ends with Result=success;
#   - a broken configuration runs on the last good one when there is one (and says so in
#     STATUS=), else fails the start with status 78 and is not retried (no restart loop, and so
#     no reboot by the start limit).
# Exits 77 when systemd cannot boot in a namespace on this machine. Prints what it checked.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=$(cd "${1:-$root/build/bin}" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root" >&2; exit 77; }
[ -x /lib/systemd/systemd ] || { echo "run.sh: no systemd" >&2; exit 77; }
[ -x "$bin/outpostd" ] || { echo "run.sh: build first (cmake --build build)" >&2; exit 2; }

# Not under /tmp: inside the namespace /tmp and /var/tmp are fresh tmpfs (see below).
work=$(mktemp -d "$bin/../systemd-test-XXXXXX")
chmod 755 "$work"
north_port=5600
ns_pid=""
north_pid=""
made_mountpoint=""
[ -e /var/lib/outpost ] || made_mountpoint=1
cleanup() {
	[ -n "$ns_pid" ] && kill -KILL "$ns_pid" 2>/dev/null || true
	[ -n "$north_pid" ] && kill "$north_pid" 2>/dev/null || true
	sleep 0.2
	[ -n "$made_mountpoint" ] && rmdir /var/lib/outpost 2>/dev/null || true
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	in_ns journalctl --no-pager -u outpost.service -n 60 >&2 || true
	exit 1
}

# The unit as shipped, with the paths of this build and this test's configuration.
sed -e "s|/usr/local/bin/|$bin/|g" -e "s|/etc/outpost/outpost.yaml|$work/outpost.yaml|g" \
	deploy/outpost.service >"$work/outpost.service"
cat >"$work/outpost.yaml" <<EOF
site:
  name: systemd-test
store:
  rotate_age: 1s
uplink:
  north_endpoint: "tcp://127.0.0.1:$north_port"
  retry: 200ms
supervisor:
  restart_burst: 2
  restart_interval: 5m
  restart_backoff: 200ms
  restart_backoff_max: 50s
EOF
# RestartSec shortened from the shipped 15 s by a drop-in, as WatchdogSec is further down: the
# checks are about whether and by whom the process is restarted, not the delay (the unit as
# shipped is what unit_file_verify and package_deb check); three waits of 15 s or more were
# half of this test's time.
mkdir -p "$work/outpost.service.d"
printf '[Service]\nRestartSec=3s\n' >"$work/outpost.service.d/restart-sec.conf"
cat >"$work/outpost-test.target" <<EOF
[Unit]
Description=outpost test boot: the appliance and nothing else
Requires=basic.target outpost.service
After=basic.target
AllowIsolate=yes
EOF
"$bin/outpostctl" check-config "$work/outpost.yaml" >/dev/null
getent passwd outpost >/dev/null || systemd-sysusers "$root/deploy/outpost.sysusers.conf"

mkdir -p "$work/north"
"$bin/outpost-north" --bind "tcp://127.0.0.1:$north_port" --dir "$work/north" >"$work/north.log" 2>&1 &
north_pid=$!

# systemd as PID 1: a fresh /run, /tmp, /var/tmp and a volatile journal; units in
# /run/systemd/system. The boot-time cleaners, timers (apt-daily …) and the root remount are
# masked as well: the file systems are the host's, and systemd-tmpfiles --boot --remove would
# empty the host's /tmp. The state directory is this test's own (bound over /var/lib/outpost):
# a real installation's data is never touched.
unshare --fork --pid --mount --uts --ipc --mount-proc sh -c "
	mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system &&
	mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp &&
	mount -t tmpfs tmpfs /var/log/journal &&
	mkdir -p /var/lib/outpost $work/state && mount --bind $work/state /var/lib/outpost &&
	for u in systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \
		 systemd-tmpfiles-setup-dev-early.service systemd-tmpfiles-clean.service \
		 systemd-tmpfiles-clean.timer tmp.mount timers.target systemd-remount-fs.service; do ln -s /dev/null /run/systemd/system/\$u; done &&
	cp $work/outpost.service $work/outpost-test.target /run/systemd/system/ &&
	cp -r $work/outpost.service.d /run/systemd/system/ &&
	exec env container=outpost-test /lib/systemd/systemd --system --unit=outpost-test.target --log-target=null
" >"$work/systemd.log" 2>&1 &
unshare_pid=$!
i=0
while [ -z "$ns_pid" ] && [ $i -lt 50 ]; do
	ns_pid=$(pgrep -P "$unshare_pid" || true)
	sleep 0.1
	i=$((i + 1))
done
[ -n "$ns_pid" ] || { echo "run.sh: systemd did not start in a namespace here" >&2; exit 77; }
in_ns() { nsenter -t "$ns_pid" -m -p -u -i -- "$@"; }
prop() { in_ns systemctl show outpost.service -p "$1" --value; }

i=0
until in_ns systemctl is-system-running >/dev/null 2>&1 || [ "$(in_ns systemctl is-system-running 2>/dev/null)" = degraded ]; do
	i=$((i + 1))
	[ $i -lt 60 ] || { echo "run.sh: systemd did not come up in a namespace here" >&2; exit 77; }
	sleep 1
done
echo "systemd $(in_ns systemctl --version | head -1 | cut -d' ' -f2) is PID 1 in a namespace ($(in_ns systemctl is-system-running 2>/dev/null || true))"

# The boot target started outpost.service; wait for it (Type=notify: active only after READY=1).
i=0
until [ "$(prop ActiveState)" = active ]; do
	i=$((i + 1))
	[ $i -lt 60 ] || fail "outpost.service not active: $(prop ActiveState)/$(prop SubState) $(prop Result)"
	sleep 1
done
main1=$(prop MainPID)
echo "active (READY=1 received), main PID $main1, STATUS=$(prop StatusText)"
[ "$(in_ns ps -o user= -p "$(prop MainPID)")" = outpost ] || fail "outpostd does not run as user outpost"
in_ns journalctl --no-pager -u outpost.service | grep -q "ready: a probe event went" || fail "no probe before READY"
# a restart delay near WatchdogSec (60 s) would let systemd kill outpostd while a stage waits out
# its delay (no pings meanwhile): held to a quarter of it, and said so
in_ns journalctl --no-pager -u outpost.service | grep -q "restart_backoff_max 50.0 s is longer than systemd's watchdog (WatchdogSec 60 s) allows: 15.0 s is used" ||
	fail "restart_backoff_max not held under WatchdogSec/4"
in_ns journalctl --no-pager -u outpost.service -o verbose | grep -q "OUTPOST_STAGE=infer" ||
	fail "no structured OUTPOST_STAGE field in the journal"
ctl() { in_ns "$bin/outpostctl" -c "$work/outpost.yaml" "$@"; }

"$bin/outpost-sim" --endpoint tcp://127.0.0.1:5555 --count 5000 --rate 5000 --stream 2 >/dev/null
i=0
until ctl status --json | /usr/bin/python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["events"]["stored"] < 5000)'; do
	i=$((i + 1)); [ $i -lt 60 ] || fail "5000 events not stored"; sleep 1
done
echo "5000 events stored under systemd"

# Rung 1: a stage crash is handled inside the service.
infer=$(ctl status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["stages"]["infer"]["pid"])')
in_ns kill -KILL "$infer"
# back within 30 s (its backoff is 200 ms; a slow machine may take seconds to load the model)
i=0
until ctl status --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["stages"]; sys.exit(not (s["infer"]["restarts"] == 1 and s["infer"]["state"] == "running"))'; do
	i=$((i + 1)); [ $i -lt 60 ] || fail "infer not restarted by outpostd"; sleep 0.5
done
[ "$(prop MainPID)" = "$main1" ] || fail "a stage crash restarted the whole service"
[ "$(prop NRestarts)" = 0 ] || fail "NRestarts $(prop NRestarts) after a stage crash"
echo "rung 1: infer killed → restarted by outpostd, main PID still $main1, NRestarts 0"

# Rung 2: three store crashes with a budget of two → systemd restarts the process.
# Each kill waits for the store to be back (its backoff doubles: 200, 400 ms): a kill skipped
# because it was still restarting would leave the budget unspent.
killed=0
for k in 1 2 3; do
	i=0
	until store=$(ctl status --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin)["stages"]["store"]; print(s["pid"] if s["state"] == "running" and s["pid"] > 0 else 0)') &&
		[ "$store" -gt 0 ] && [ "$store" != "$killed" ]; do
		i=$((i + 1)); [ $i -lt 60 ] || fail "store not running again before kill $k"; sleep 0.5
	done
	in_ns kill -KILL "$store" || true
	killed=$store
done
i=0
ended=""
until [ "$(prop NRestarts)" -ge 1 ] && [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$main1" ]; do
	# waiting out RestartSec, systemd shows how the last process ended (1 = exited, 2 = killed,
	# 3 = dumped): read in one call, as the restart resets them
	snap=$(in_ns systemctl show outpost.service -p SubState -p ExecMainCode -p ExecMainStatus)
	case "$snap" in *SubState=auto-restart*)
		ended="$(echo "$snap" | sed -n 's/^ExecMainCode=//p') $(echo "$snap" | sed -n 's/^ExecMainStatus=//p')" ;;
	esac
	i=$((i + 1))
	[ $i -lt 90 ] || fail "no process restart by systemd: NRestarts $(prop NRestarts), $(prop ActiveState)/$(prop SubState)"
	sleep 0.5
done
in_ns journalctl --no-pager -u outpost.service | grep -q "restart budget spent: stage store" || fail "no budget reason in the journal"
# the process asked for the restart and stopped: it ended with status 3, not killed by the
# watchdog's SIGABRT that answers WATCHDOG=trigger while it exits
[ "$ended" = "1 3" ] || fail "the budget's exit ended with ExecMainCode/ExecMainStatus '$ended', not exited/3"
echo "rung 2: restart budget spent → outpostd exited, systemd restarted it (NRestarts $(prop NRestarts), main PID $(prop MainPID))"

# The last guard: a supervisor that hangs itself stops pinging, and systemd's watchdog kills
# and restarts the process. Shortened for the test by a drop-in (WatchdogSec=10s, and 10 s for
# the kill instead of 90 s); the stages' own deadline stays 30 s.
mkdir -p /tmp/op-dropin-$$ && cat >/tmp/op-dropin-$$/test.conf <<EOF2
[Service]
WatchdogSec=10s
TimeoutStopSec=10s
EOF2
in_ns mkdir -p /run/systemd/system/outpost.service.d
in_ns cp /tmp/op-dropin-$$/test.conf /run/systemd/system/outpost.service.d/ 2>/dev/null ||
	cat /tmp/op-dropin-$$/test.conf | in_ns sh -c 'cat > /run/systemd/system/outpost.service.d/test.conf'
rm -rf /tmp/op-dropin-$$
in_ns systemctl daemon-reload
in_ns systemctl restart outpost.service
before=$(prop NRestarts)
hung=$(prop MainPID)
in_ns kill -STOP "$hung"
i=0
saw=""
until [ "$(prop NRestarts)" -gt "$before" ] && [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$hung" ]; do
	[ "$(prop Result)" = watchdog ] && saw=1
	i=$((i + 1))
	[ $i -lt 90 ] || fail "a hung supervisor was not restarted by the watchdog: $(prop ActiveState)/$(prop SubState), NRestarts $(prop NRestarts)"
	sleep 1
done
[ -n "$saw" ] && [ $i -ge 8 ] || fail "restarted after ${i} s without Result=watchdog: not the watchdog's doing"
echo "hung supervisor: Result=watchdog after WatchdogSec, restarted by systemd in ${i} s (main PID $(prop MainPID))"
in_ns rm /run/systemd/system/outpost.service.d/test.conf
in_ns systemctl daemon-reload

# systemctl reload: SIGHUP through ExecReload, applied whole.
sed -i 's/rotate_age: 1s/rotate_age: 2s/' "$work/outpost.yaml"
in_ns systemctl reload outpost.service || fail "systemctl reload failed"
i=0
until ctl status --json | /usr/bin/python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["reload"]["applied"] < 1)'; do
	i=$((i + 1)); [ $i -lt 20 ] || fail "systemctl reload not applied"; sleep 0.5
done
echo "systemctl reload: applied ($(ctl status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["reload"]["last"])'))"

in_ns systemctl stop outpost.service
[ "$(prop Result)" = success ] || fail "stop ended with Result=$(prop Result)"
rows=$(/usr/bin/python3 -c "
import glob, h5py
print(sum(len(h5py.File(p, 'r')['results']) for p in glob.glob('$work/north/*.h5')))")
[ "$rows" -ge 5000 ] || fail "north holds $rows rows of 5000"
echo "stopped: Result=success; north holds $rows rows"

# A broken configuration with a last good one in the state directory: the service runs on that,
# and says so in systemctl status.
printf 'logg:\n  level: info\n' >>"$work/outpost.yaml"
in_ns systemctl start outpost.service || fail "no start on the last good configuration"
prop StatusText | grep -q "ON LAST GOOD CONFIG" || {
	sleep 6
	prop StatusText | grep -q "ON LAST GOOD CONFIG" || fail "STATUS= does not say it runs on the last good configuration: $(prop StatusText)"
}
in_ns systemctl stop outpost.service
echo "broken configuration, last good one present: running on it, STATUS=$(prop StatusText | cut -c1-60)…"

# A broken configuration and no last good one: the start fails with 78 and is not retried (no
# restart loop, no reboot).
rm -f "$work/state/config-last-good.yaml"
restarts=$(prop NRestarts)
in_ns systemctl start outpost.service 2>/dev/null && fail "started on a broken configuration"
sleep 5 # longer than RestartSec (3 s here)
[ "$(prop ExecMainStatus)" = 78 ] || fail "broken configuration: exit status $(prop ExecMainStatus), expected 78"
[ "$(prop ActiveState)" = failed ] && [ "$(prop NRestarts)" = "$restarts" ] ||
	fail "broken configuration retried: $(prop ActiveState), NRestarts $(prop NRestarts)"
in_ns journalctl --no-pager -u outpost.service | grep -q "outpost.yaml:[0-9]*:[0-9]*: error: unknown key 'logg'" ||
	fail "the journal does not point at the broken line"
echo "broken configuration: exit 78 with file:line:col in the journal, not retried after RestartSec"
echo "ok: outpost.service under systemd"
rm -rf "$work"
