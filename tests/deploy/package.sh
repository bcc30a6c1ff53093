#!/bin/sh
# tests/deploy/package.sh BUILDDIR — the Debian package, as an operator would meet it.
#   1. cpack builds it; lintian reports no error (warnings are printed);
#   2. dpkg -i installs it on this machine: the programs, the service user, the unit (and
#      `systemd-analyze verify` accepts the installed unit), the default configuration as a
#      conffile (`outpostctl check-config` accepts it; an operator's edit survives reinstalling),
#      the operator guide;
#   3. dpkg --purge removes it again and leaves the data directory alone.
# Needs root. Exits 77 (skipped) without root, dpkg or lintian, or when an outpost package is
# already installed here: a real installation is never touched.
set -eu
build=$(cd "$1" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "package.sh: needs root" >&2; exit 77; }
command -v dpkg >/dev/null && command -v lintian >/dev/null || { echo "package.sh: no dpkg or lintian" >&2; exit 77; }
if dpkg -s outpost >/dev/null 2>&1; then
	echo "package.sh: an outpost package is installed on this machine; not touching it" >&2
	exit 77
fi
out=$(mktemp -d "$build/deb-test-XXXXXX")
installed=""
cleanup() {
	[ -n "$installed" ] && dpkg --purge outpost >/dev/null 2>&1 || true
	rm -rf "$out"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack --config "$build/CPackConfig.cmake" -B "$out" -G DEB >"$out/cpack.log" 2>&1 || { cat "$out/cpack.log"; fail "cpack"; }
deb=$(ls "$out"/outpost_*.deb)
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
lint=$(lintian --allow-root "$deb" 2>&1 || true)
echo "$lint" | sed 's/^/lintian: /'
echo "$lint" | grep -q '^E:' && fail "lintian reports errors"
echo "lintian: no errors"

dpkg -i "$deb" >"$out/dpkg.log" 2>&1 || { cat "$out/dpkg.log"; fail "dpkg -i"; }
installed=1
for f in /usr/bin/outpostd /usr/bin/outpostctl /usr/bin/outpost-north /usr/bin/outpost-sim \
	/lib/systemd/system/outpost.service /usr/lib/sysusers.d/outpost.conf /etc/outpost/outpost.yaml \
	/usr/share/doc/outpost/operator-guide.md.gz /usr/share/doc/outpost/copyright; do
	[ -e "$f" ] || fail "$f not installed"
done
getent passwd outpost >/dev/null || fail "postinst did not create the user outpost"
v=$(systemd-analyze verify /lib/systemd/system/outpost.service 2>&1) || fail "systemd-analyze verify: $v"
[ -z "$v" ] || fail "systemd-analyze verify complains: $v"
echo "installed: programs, user outpost, unit (systemd-analyze verify clean), /etc/outpost/outpost.yaml"
/usr/bin/outpostctl check-config /etc/outpost/outpost.yaml >/dev/null || fail "the packaged configuration is not valid"
/usr/bin/outpostd --version | grep -q "outpostd $(dpkg-query -W -f='${Version}' outpost)" || fail "version mismatch"

# conffile: an operator's edit survives reinstalling the package
printf '# edited by the site\n' >>/etc/outpost/outpost.yaml
dpkg -i --force-confold "$deb" >"$out/dpkg2.log" 2>&1 || { cat "$out/dpkg2.log"; fail "reinstall"; }
tail -1 /etc/outpost/outpost.yaml | grep -q 'edited by the site' || fail "reinstalling replaced the operator's configuration"
echo "conffile: the operator's edit survived a reinstall"

made_data=""
if [ ! -e /var/lib/outpost ]; then # stands for data the appliance wrote
	mkdir -p /var/lib/outpost/outbox && echo data >/var/lib/outpost/outbox/segment.h5 && made_data=1
fi
dpkg --purge outpost >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "dpkg --purge"; }
installed=""
[ ! -e /usr/bin/outpostd ] && [ ! -e /lib/systemd/system/outpost.service ] || fail "purge left files behind"
if [ -n "$made_data" ]; then
	[ -f /var/lib/outpost/outbox/segment.h5 ] || fail "purge removed data under /var/lib/outpost"
	rm -r /var/lib/outpost
fi
echo "ok: the package builds lint-clean, installs, verifies and purges"
