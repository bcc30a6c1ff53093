#!/bin/sh
# Installs what outpost needs to build, run and test on Debian 12, from Debian's own packages.
# Idempotent: run it as often as you like; it only ever calls apt-get. Must run as root.
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
      libopenblas-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      stress-ng prometheus lintian"

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
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
