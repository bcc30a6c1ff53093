#!/bin/sh
# Runs systemd-analyze verify on deploy/outpost.service with the built binaries in place of
# the installed paths. Any message from verify is a failure (it exits 0 on many warnings).
# To prove the check can fail, a deliberately broken copy must produce a message.
set -u
unit=$1
bindir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed"; exit 77; }

sed -e "s#/usr/local/bin/outpostd#$bindir/outpostd#g; s#/usr/local/bin/outpostctl#$bindir/outpostctl#g" \
	"$unit" >"$tmp/outpost.service"
out=$(systemd-analyze verify "$tmp/outpost.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify (rc $rc):"
	echo "$out"
	exit 1
fi

sed -e 's/^Type=notify/Type=notifyy/' "$tmp/outpost.service" >"$tmp/broken.service"
mv "$tmp/broken.service" "$tmp/outpost.service"
out=$(systemd-analyze verify "$tmp/outpost.service" 2>&1)
if [ -z "$out" ]; then
	echo "FAIL: verify did not notice a broken Type= line; this check proves nothing here"
	exit 1
fi
# Hardening, rated by systemd itself: "OK" or better (PERFECT, SAFE, OK), and the rating must be
# able to fail: the same unit without its hardening block rates worse.
rating() {
	systemd-analyze security --offline=true "$1" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p'
}
sed -e "s#/usr/local/bin/outpostd#$bindir/outpostd#g; s#/usr/local/bin/outpostctl#$bindir/outpostctl#g" \
	"$unit" >"$tmp/outpost.service"
r=$(rating "$tmp/outpost.service")
case "$r" in
*" PERFECT" | *" SAFE" | *" OK") echo "systemd-analyze security: $r" ;;
"") echo "systemd-analyze security --offline gave no rating (systemd too old?)"; exit 77 ;;
*) echo "FAIL: systemd-analyze security rates the unit $r (want OK or better)"; exit 1 ;;
esac
grep -v -E '^(CapabilityBoundingSet|SystemCallFilter|RestrictAddressFamilies|ProtectKernel|DevicePolicy|RestrictNamespaces|User)=' \
	"$tmp/outpost.service" >"$tmp/soft.service"
mv "$tmp/soft.service" "$tmp/outpost.service"
r2=$(rating "$tmp/outpost.service")
case "$r2" in
*" PERFECT" | *" SAFE" | *" OK") echo "FAIL: the unhardened copy also rates $r2: this check proves nothing"; exit 1 ;;
esac
grep -q '^Type=notify$' "$unit" || { echo "FAIL: unit is not Type=notify"; exit 1; }
grep -q '^WatchdogSec=' "$unit" || { echo "FAIL: unit has no WatchdogSec"; exit 1; }
echo "ok: systemd-analyze verify is clean and security rates the unit OK or better"
