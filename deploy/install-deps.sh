#!/bin/sh
# Installs what outpost needs to build, run and test on Debian 12, from Debian's own packages.
# Idempotent: run it as often as you like; it only ever calls apt-get. Must run as root.
#   deploy/install-deps.sh           what outpost needs to build and run (README's demo)
#   deploy/install-deps.sh --tests   and what its test suite needs (README's second command, CI)
# It never touches /usr/local (the CUDA toolkit, when present, is found there by CMake).
set -eu

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root (it calls apt-get)" >&2
	exit 1
fi

PKGS="build-essential cmake pkg-config git ca-certificates
      libzmq3-dev libyaml-dev libhdf5-dev hdf5-tools libsystemd-dev systemd
      python3 python3-zmq python3-h5py python3-numpy
      clang libclang-rt-14-dev
      libopenblas-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
# Only the test suite needs these (--tests): stress-ng (tests/soak/stress.py), promtool from
# prometheus (e2e_metrics), lintian (package_deb), iproute2 (ip netns and tc for uplink_netns),
# strace (store_salvage_durable, uplink_sent_durable: the order of fsync, link and unlink), procps
# (pgrep and ps in tests/systemd/run.sh: without them systemd_unit is skipped).
TEST_PKGS="stress-ng prometheus lintian iproute2 strace procps"
[ "${1:-}" = "--tests" ] && PKGS="$PKGS $TEST_PKGS"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -z "$missing" ]; then
	echo "install-deps: everything already installed"
	exit 0
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Installed for promtool only: its server must not start (policy-rc.d 101 = do not start
# services during this installation) nor be enabled at boot.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	# removed however this script ends (an interrupted install too): left behind, it would keep
	# every service installed later on this machine from starting
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
trap - EXIT INT TERM
case " $missing " in
*" prometheus "*) systemctl disable prometheus.service >/dev/null 2>&1 || true ;;
esac
