#!/bin/sh
# outpost demo: builds if needed, then runs the whole appliance on its embedded default
# configuration — outpost-north (a local north receiver), outpostd (no config file) and
# outpost-sim feeding it simulated IceCube-86 events — until every event has been stored and
# synced north. Prints a short summary and, as its last line, one JSON object.
#
#   OUTPOST_DEMO_EVENTS   events to send (default 20000)
#   OUTPOST_DEMO_NORTH    north receiver's directory (default /var/lib/outpost-north)
#   OUTPOST_DEMO_PYTHON   interpreter with h5py and numpy for the score (default /usr/bin/python3)
#   OUTPOST_DEMO_BIN      where the built programs are (default build/bin)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
bin=${OUTPOST_DEMO_BIN:-$top/build/bin}
events=${OUTPOST_DEMO_EVENTS:-20000}
north_dir=${OUTPOST_DEMO_NORTH:-/var/lib/outpost-north}
work=$(mktemp -d /tmp/outpost-demo.XXXXXX)

if [ ! -x "$bin/outpostd" ] || [ ! -x "$bin/outpost-sim" ]; then
	echo "demo: building outpost (first run)..."
	{ cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/cmake.log" 2>&1 &&
		cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >>"$work/cmake.log" 2>&1; } ||
		{ tail -40 "$work/cmake.log"; exit 1; }
fi

if "$bin/outpostctl" ping >/dev/null 2>&1; then
	echo "demo: an outpostd is already running on the default control socket; stop it first" >&2
	exit 1
fi

north_pid=""
daemon_pid=""
# On any exit: the programs stopped; on a failure (a step that failed under set -e: outpostd
# died, the simulator failed; or an interrupt), what failed said, with the logs' last lines,
# instead of a silent end.
cleanup() {
	rc=$?
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -n "$north_pid" ] && kill "$north_pid" 2>/dev/null && wait "$north_pid" 2>/dev/null
	if [ "$rc" -ne 0 ]; then
		echo "demo: FAILED (exit $rc); logs in $work" >&2
		for f in outpostd.log north.log sim.json; do
			[ -s "$work/$f" ] && { echo "--- $f (last lines)" >&2; tail -15 "$work/$f" >&2; }
		done
	fi
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

json_field() { # json_field KEY < json  — first integer value of "KEY":N
	sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" | head -n 1
}

mkdir -p "$north_dir"
before=$("$bin/outpost-north" --count "$north_dir" | json_field rows)
"$bin/outpost-north" --bind tcp://127.0.0.1:5600 --dir "$north_dir" 2>"$work/north.log" &
north_pid=$!
sleep 0.3
if ! kill -0 "$north_pid" 2>/dev/null; then # (port 5600 taken, the directory not writable)
	echo "demo: the north receiver did not start; its log:" >&2
	tail -20 "$work/north.log" >&2
	exit 1
fi
"$bin/outpostd" 2>"$work/outpostd.log" &
daemon_pid=$!

i=0
until "$bin/outpostctl" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "demo: outpostd did not come up; its log:" >&2
		tail -20 "$work/outpostd.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "demo: outpostd up (embedded defaults; state in /var/lib/outpost), north receiver in $north_dir"

echo "demo: sending $events simulated events (muon tracks and cascades) ..."
touch "$work/started" # north files newer than this are this run's
start=$(date +%s.%N)
"$bin/outpost-sim" --endpoint tcp://127.0.0.1:5555 --count "$events" --kind mix \
	--truth-out "$work/truth.csv" >"$work/sim.json"
sent=$(json_field events_sent <"$work/sim.json")

echo "demo: waiting until all $sent events are stored, sealed and confirmed north ..."
i=0
while :; do
	st=$("$bin/outpostctl" status --json)
	stored=$(echo "$st" | json_field stored)
	now=$("$bin/outpost-north" --count "$north_dir" | json_field rows)
	delivered=$((now - before))
	[ "$stored" -ge "$sent" ] && [ "$delivered" -ge "$sent" ] && break
	i=$((i + 1))
	if [ $i -gt 1200 ]; then
		echo "demo: gave up after 120 s (stored $stored, delivered north $delivered of $sent)" >&2
		break
	fi
	sleep 0.1
done
end=$(date +%s.%N)

sleep 0.6 # let the stages report once more so the status below is current
"$bin/outpostctl" status
st=$("$bin/outpostctl" status --json)
dropped=$(echo "$st" | json_field dropped)
rejected=$(echo "$st" | json_field rejected)
segments=$(echo "$st" | json_field segments_sealed)
backend=$(echo "$st" | sed -n 's/.*"backend":"\([^"]*\)".*/\1/p' | head -n 1) # e.g. cpu/avx512, 2 threads
"$bin/outpostctl" stop >/dev/null
wait "$daemon_pid" || true
daemon_pid=""

secs=$(echo "$start $end" | awk '{printf "%.1f", $2 - $1}')
# how well the events were reconstructed: this run's north files against the simulator's truth
score=$(find "$north_dir" -maxdepth 1 -name '*.h5' -newer "$work/started" -print0 |
	xargs -0 -r "${OUTPOST_DEMO_PYTHON:-/usr/bin/python3}" "$top/tools/demo_score.py" "$work/truth.csv" 2>>"$work/score.log" || true)
model=$(echo "$score" | sed -n 's/.*"model": "\([^"]*\)".*/\1/p')
med=$(echo "$score" | sed -n 's/.*"median_deg": \([0-9.]*\).*/\1/p')
gmed=$(echo "$score" | sed -n 's/.*"first_guess_median_deg": \([0-9.]*\).*/\1/p')
tracks=$(echo "$score" | sed -n 's/.*"tracks": \([0-9]*\).*/\1/p')
echo
echo "outpost demo summary"
echo "  simulated events sent:         $sent"
echo "  stored (sealed HDF5 segments): $stored in $segments segments"
echo "  delivered north:               $delivered rows in $north_dir"
echo "  dropped / rejected:            $dropped / $rejected"
echo "  wall time:                     ${secs} s (segments seal by age: 10 s by default)"
echo "  reconstruction:                ${model:-?} (FP4 network on ${backend:-?}): median angular error"
echo "                                 ${med:-?} deg on ${tracks:-?} simulated tracks (its LineFit first guess: ${gmed:-?} deg)"
echo "  logs and simulator truth:      $work"
printf '{"events_sent":%s,"events_stored":%s,"events_delivered_north":%s,"events_dropped":%s,"events_rejected":%s,"segments_sealed":%s,"seconds":%s,"model":"%s","backend":"%s","track_median_deg":%s,"first_guess_median_deg":%s,"north_dir":"%s"}\n' \
	"$sent" "$stored" "$delivered" "$dropped" "$rejected" "$segments" "$secs" "${model:-unknown}" "${backend:-unknown}" "${med:-null}" "${gmed:-null}" "$north_dir"
# the summary is printed either way; the status says whether every event made it
if [ "${stored:-0}" -lt "${sent:-1}" ] || [ "${delivered:-0}" -lt "${sent:-1}" ]; then
	echo "demo: not every event was stored and delivered north" >&2
	exit 1
fi
