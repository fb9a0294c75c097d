#!/bin/bash
# run.sh — run every test: the unit test programs $BUILD/test_* and the
# scripts tests/test-*.sh. Called by `make check` (BUILD=build or build-san,
# SANITIZE=0/1); can be run by hand after `make all unit`:
#
#   tests/run.sh                 everything
#   tests/run.sh nbd-copy conf   only tests whose name contains one of the words
#
# Each test runs under `timeout` (TEST_TIMEOUT, default 300 s) with its output
# in $BUILD/test-logs/NAME.log. Exit code 0 = pass, 77 = skipped (the last
# line of the output says why), anything else = fail (the log's tail is
# shown). One line per test, then "N passed, N failed, N skipped" as the last
# line. Exits 1 if any test failed (or none matched the filter).
#
# Environment passed to the tests: BUILD (absolute), SANITIZE, SRCDIR, and
# with SANITIZE=1 ASAN_OPTIONS/UBSAN_OPTIONS that make every error fatal
# with a report. KEEP_TMP=1 keeps each script's temporary directory.
set -uo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$SRCDIR"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$SRCDIR/$BUILD
SANITIZE=${SANITIZE:-0}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
LOGDIR=$BUILD/test-logs
export SRCDIR BUILD SANITIZE

if [[ $SANITIZE == 1 ]]; then
	# Every report is fatal. Leak checking suits the short-lived unit tests
	# and bootlinkctl; common.sh gives bootlinkd its own ASAN_OPTIONS.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
fi

mkdir -p "$LOGDIR"

# The list: unit programs first (fast), then the scripts.
tests=()
for f in "$BUILD"/test_*; do
	[[ -f $f && -x $f ]] && tests+=("$f")
done
for f in "$SRCDIR"/tests/test-*.sh; do
	[[ -f $f ]] && tests+=("$f")
done

matches() {
	local name=$1 pat
	(($# == 1)) && return 0
	shift
	for pat; do
		[[ $name == *$pat* ]] && return 0
	done
	return 1
}

# reap_leftovers NAME: kill what a failed test left running. The runner's timeout reaches the
# test's process group only; a process in a group of its own (timeout(1) makes one) survives,
# and may spin for the rest of the run. Such processes name the test's temporary directory
# (common.sh: $TMPDIR/bootlink-NAME.XXXXXX) on their command line.
reap_leftovers() {
	local pids
	mapfile -t pids < <(pgrep -f -- "${TMPDIR:-/tmp}/bootlink-$1\\." || true)
	((${#pids[@]})) || return 0
	echo "    | the test left ${#pids[@]} process(es) running, killed: $(ps -o comm= -p "$(
		IFS=,
		echo "${pids[*]}"
	)" | sort | uniq -c | xargs)"
	kill -KILL "${pids[@]}" 2>/dev/null
}

npass=0 nfail=0 nskip=0
failed=()
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	matches "$name" "$@" || continue
	log=$LOGDIR/$name.log
	start=$EPOCHREALTIME
	if [[ $t == *.sh ]]; then
		timeout --kill-after=10 "$TEST_TIMEOUT" bash "$t" >"$log" 2>&1 </dev/null
	else
		timeout --kill-after=10 "$TEST_TIMEOUT" "$t" >"$log" 2>&1 </dev/null
	fi
	rc=$?
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	case $rc in
	0)
		echo "PASS $name (${secs}s)"
		npass=$((npass + 1))
		;;
	77)
		reason=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
		echo "SKIP $name (${secs}s): ${reason:-no reason given}"
		nskip=$((nskip + 1))
		;;
	*)
		why="exit $rc"
		((rc == 124 || rc == 137)) && why="timed out after ${TEST_TIMEOUT}s"
		echo "FAIL $name (${secs}s): $why; log: $log"
		tail -n 40 "$log" | sed 's/^/    | /'
		reap_leftovers "$name"
		nfail=$((nfail + 1))
		failed+=("$name")
		;;
	esac
done

if ((npass + nfail + nskip == 0)); then
	echo "no test matches: $*" >&2
	echo "0 passed, 0 failed, 0 skipped"
	exit 1
fi
((nfail)) && echo "failed: ${failed[*]}"
echo "$npass passed, $nfail failed, $nskip skipped"
((nfail == 0))
