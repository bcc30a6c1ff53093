#!/bin/sh
# Packs a CUDA build for tools/gpu-check.sh on a GPU machine that lacks outpost's build
# dependencies: the programs the checks run (stripped), the CUDA plugin, and every shared library
# they load except glibc's, the C++ runtime's and CUDA's own (the GPU machine has those).
#
#   tools/gpu-pack.sh BUILD_DIR PACK_DIR
set -eu
build=$1
pack=$2
# PACK_DIR is replaced whole: only when it is missing, empty, or an earlier pack
if [ -e "$pack" ] && [ ! -e "$pack/.outpost-gpu-pack" ] && [ -n "$(ls -A "$pack" 2>/dev/null)" ]; then
	echo "gpu-pack: $pack exists and is not an earlier pack; not replacing it" >&2
	exit 1
fi
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib/outpost" "$pack/libs"
touch "$pack/.outpost-gpu-pack"
for p in test_gpu_host test_gpu_ops test_backend outpost-bench outpostd outpostctl outpost-sim outpost-north; do
	strip -o "$pack/bin/$p" "$build/bin/$p"
done
strip -o "$pack/lib/outpost/liboutpost-cuda.so" "$build/lib/outpost/liboutpost-cuda.so"
for f in "$pack"/bin/* "$pack/lib/outpost/liboutpost-cuda.so"; do
	if ldd "$f" | grep -q 'not found'; then
		echo "gpu-pack: $f needs a library this machine lacks:" >&2
		ldd "$f" | grep 'not found' >&2
		exit 1
	fi
	ldd "$f" | sed -n 's/^[[:space:]]*\([^ ]*\) => \(\/[^ ]*\) .*/\1 \2/p'
done | sort -u | while read -r name path; do
	case $name in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
		libstdc++.so.* | libgcc_s.so.* | libcublas*.so.* | libcudart.so.*) ;;
	*) cp -L "$path" "$pack/libs/$name" ;;
	esac
done
du -sh "$pack"
