# common.sh — sourced by every tests/test-*.sh.
#
# A test script is a bash script that exits 0 (pass), 77 (skipped: the last
# line it prints says why) or anything else (fail). It runs with `set -eEuo
# pipefail`: any failing command fails the test with its line number.
#
#   $OVBLK                  overlay granularity in bytes the test runs with:
#                           OVERLAY_BLOCK_KB (environment) KiB, default 4096
#   need CMD...             skip unless every CMD is installed
#   need_python_module M    skip unless Debian's python3 can import M
#   need_bootlink           skip unless $BUILD/bootlinkd and bootlinkctl are built
#   skip MSG / fail MSG / ok MSG
#   spawn CMD...            start CMD in the background; it is killed (by PID)
#                           at exit. $! is its PID.
#   wait_for SECS CMD...    poll CMD until it succeeds (0) or SECS pass (1)
#   proc_alive PID          PID exists and is not a zombie
#   make_conf [KEY=VALUE]   write the config tree $T/conf (done by start_daemon)
#   conf_set KEY VALUE      write one setting file
#   start_daemon [KEY=VALUE]  start $BUILD/bootlinkd -c $T/conf, wait for
#                           $RUN/ready; sets DAEMON_PID, NBD_HOST, NBD_PORT, NBD_ADDR
#                           (and ISCSI_HOST/PORT/ADDR etc. for each <run>/listen/*)
#   stop_daemon             SIGTERM; assert exit status 0 within 15 s and a
#                           daemon log without sanitizer reports
#   assert_daemon_alive
#   ctl ARGS...             $BUILD/bootlinkctl -c $T/conf ARGS...
#   nbd_uri NAME            nbd://HOST:PORT/NAME (NAME percent-encoded as needed)
#   nbd_export_visible NAME / nbd_export_listed NAME / nbd_export_unlisted NAME
#                           for wait_for after a database change
#   ov_blocks SIZE OFF:LEN...  overlay blocks ($OVBLK bytes) the ranges touch
#   rerun_at_block_kb KB TEST...  run tests/test-TEST.sh again with OVERLAY_BLOCK_KB=KB
#   mkimage PATH SIZE       SIZE bytes of random data (SIZE: 4096, 1M, 1M+1, 2G)
#   mkimage_sparse PATH SIZE [OFFSET...]
#                           a sparse file with 4 KiB random blocks at OFFSETs
#                           (default: scattered, including the very end);
#                           writes "OFFSET LENGTH" lines to PATH.data
#   to_bytes SIZE           1M+1 -> 1048577
#   "${NBDSH[@]}"           nbdsh running the script $NBDSH_SCRIPT
#
# Variables: SRCDIR, BUILD (absolute), T (this test's temporary directory,
# removed at exit unless KEEP_TMP=1), RUN ($T/conf/run), TEST_NAME.
#
# Environment knobs: DAEMON_WRAPPER (e.g. "valgrind --error-exitcode=99"),
# DAEMON_BIN (the program start_daemon runs from $BUILD, default bootlinkd;
# bootlinkd-faults for fault injection),
# DAEMON_ASAN_OPTIONS (default: halt on the first error, no leak check),
# KEEP_TMP=1.

set -eEuo pipefail
export LC_ALL=C
# bootlinkd writes journald-style "<N>" prefixes under systemd; the tests
# read its plain "HH:MM:SS.mmm bootlinkd LEVEL: ..." lines.
unset JOURNAL_STREAM
# Debian's python3 (the one python3-libnbd is built for) and Debian's tools
# before anything a user installed elsewhere (pyenv, /usr/local).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
# No __pycache__ in the source tree from tests/nbd/*.py.
export PYTHONDONTWRITEBYTECODE=1

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BUILD:-$SRCDIR/build}
[[ $BUILD == /* ]] || BUILD=$SRCDIR/$BUILD
TESTS=$SRCDIR/tests
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-$TEST_NAME.XXXXXX")
RUN=$T/conf/run
OVBLK=$((${OVERLAY_BLOCK_KB:-4} * 1024))
DAEMON_PID=""
NBD_HOST="" NBD_PORT="" NBD_ADDR=""
_PIDS=()
_CONF_MADE=0
export SRCDIR BUILD

ok() { echo "ok: $*"; }

skip() {
	echo "skip: $*"
	exit 77
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

_on_err() {
	local cmd=${2%%$'\n'*}
	[[ $cmd == "$2" ]] || cmd+=" ..."
	echo "FAIL: ${BASH_SOURCE[1]##*/} line $1: '$cmd' exited with status $3" >&2
}
trap '_on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR

need() {
	local c
	for c; do
		command -v "$c" >/dev/null 2>&1 || skip "$c is not installed (tests/lib/deps.sh installs it)"
	done
}

need_python_module() {
	need python3
	python3 -c "import $1" 2>/dev/null || skip "python3 module '$1' is not available for $(command -v python3)"
}

need_bootlink() {
	local p
	for p in bootlinkd bootlinkctl; do
		[[ -x $BUILD/$p ]] || skip "$BUILD/$p is not built (run make)"
	done
}

# proc_alive PID: true if PID exists and is not a zombie (an exited child
# that has not been waited for still answers kill -0).
proc_alive() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

_all_gone() {
	local p
	for p; do
		proc_alive "$p" && return 1
	done
	return 0
}

# wait_for SECS CMD...: poll CMD (short, growing interval, at most 0.2 s)
# until it succeeds or SECS seconds have passed.
wait_for() {
	local secs=$1 now deadline i=0
	shift
	local delays=(0.01 0.02 0.05 0.1 0.2)
	now=${EPOCHREALTIME/./}
	deadline=$((now + secs * 1000000))
	while :; do
		"$@" && return 0
		now=${EPOCHREALTIME/./}
		((now < deadline)) || return 1
		sleep "${delays[i]}"
		((i < ${#delays[@]} - 1)) && i=$((i + 1))
	done
}

spawn() {
	"$@" &
	_PIDS+=($!)
}

_cleanup() {
	local rc=$? p
	trap - ERR
	set +e
	local pids=("${_PIDS[@]}")
	[[ -n $DAEMON_PID ]] && pids+=("$DAEMON_PID")
	if ((${#pids[@]})); then
		kill -TERM "${pids[@]}" 2>/dev/null
		if ! wait_for 10 _all_gone "${pids[@]}"; then
			kill -KILL "${pids[@]}" 2>/dev/null
		fi
		for p in "${pids[@]}"; do
			wait "$p" 2>/dev/null
		done
	fi
	if [[ -f $T/daemon.log ]] && ((rc == 0 || rc == 77)) && _sanitizer_report "$T/daemon.log" >&2; then
		echo "FAIL: the daemon log has a sanitizer report" >&2
		rc=1
	fi
	if ((rc != 0 && rc != 77)) && [[ -s $T/daemon.log ]]; then
		echo "--- last lines of $T/daemon.log ---" >&2
		tail -n 30 "$T/daemon.log" >&2
	fi
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		((rc == 77)) || echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# _sanitizer_report LOG: print the first report in LOG; true if there is one.
_sanitizer_report() {
	grep -m 5 -E 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:' "$1"
}

# ---------------------------------------------------------------------------
# Sizes and images

to_bytes() {
	local s=$1 add=0
	if [[ $s == *+* ]]; then
		add=${s#*+}
		s=${s%%+*}
	fi
	[[ $s =~ ^[0-9]+$ ]] || s=$(numfmt --from=iec "$s")
	echo $((s + add))
}

# ov_blocks SIZE OFF:LEN...: how many overlay blocks ($OVBLK bytes) the
# ranges touch on a disk of SIZE bytes (a negative OFF counts from the end).
ov_blocks() {
	local size=$1 r off len b
	shift
	declare -A seen=()
	for r; do
		off=${r%%:*} len=${r#*:}
		((off < 0)) && off=$((size + off))
		for ((b = off / OVBLK; b <= (off + len - 1) / OVBLK; b++)); do seen[$b]=1; done
	done
	echo "${#seen[@]}"
}

# rerun_at_block_kb KB TEST...: run tests/test-TEST.sh with OVERLAY_BLOCK_KB=KB
# (each in $T, output in $T/TEST.log); fail naming the ones that failed.
rerun_at_block_kb() {
	local kb=$1 t st failed=()
	shift
	for t; do
		st=0
		(cd "$T" && OVERLAY_BLOCK_KB=$kb timeout --kill-after=10 240 bash "$TESTS/test-$t.sh" \
			>"$T/$t.log" 2>&1 </dev/null) || st=$?
		case $st in
		0) ok "test-$t with $kb KiB overlay blocks: passed" ;;
		77) ok "test-$t with $kb KiB overlay blocks: skipped ($(tail -n 1 "$T/$t.log"))" ;;
		*)
			echo "--- test-$t with OVERLAY_BLOCK_KB=$kb failed ($st):" >&2
			tail -n 30 "$T/$t.log" >&2
			failed+=("$t")
			;;
		esac
	done
	((${#failed[@]} == 0)) || fail "with $kb KiB overlay blocks: ${failed[*]} failed"
}

mkimage() {
	local path=$1 size
	size=$(to_bytes "$2")
	head -c "$size" /dev/urandom >"$path"
}

mkimage_sparse() {
	local path=$1 size off
	size=$(to_bytes "$2")
	shift 2
	local offs=("$@")
	if ((${#offs[@]} == 0)); then
		# Scattered: the start, odd places in between, the last 4 KiB.
		offs=(0 $((size / 7 / 4096 * 4096)) $((size / 3 / 4096 * 4096 + 12288))
			$((size / 2 / 4096 * 4096)) $((size / 5 * 4 / 4096 * 4096 + 4096)) $((size - 4096)))
	fi
	rm -f "$path" "$path.data"
	truncate -s "$size" "$path"
	for off in "${offs[@]}"; do
		head -c 4096 /dev/urandom | dd of="$path" bs=4096 oflag=seek_bytes seek="$off" conv=notrunc status=none
		echo "$off 4096" >>"$path.data"
	done
	[[ $(stat -c %s "$path") == "$size" ]] || fail "mkimage_sparse: $path has the wrong size"
}

# ---------------------------------------------------------------------------
# Config tree and daemon

conf_set() {
	mkdir -p "$(dirname "$T/conf/$1")"
	printf '%s\n' "$2" >"$T/conf/$1"
}

make_conf() {
	local kv
	mkdir -p "$T/conf/db"
	if ((!_CONF_MADE)); then
		# Every listener on loopback, port chosen by the kernel: listen/nbd
		# and whatever other listen/* keys the schema in common/conf.c has
		# (listen/iscsi, ...), so no test ever binds a public or fixed port
		# and tests can run side by side.
		local key
		for key in listen/nbd $(grep -oE '"listen/[a-z0-9_]+"' "$SRCDIR/common/conf.c" 2>/dev/null | tr -d '"'); do
			conf_set "$key" 127.0.0.1:0
		done
		# Test images and overlays share this machine's one disk, and
		# small test filesystems stand in for overlay disks.
		conf_set overlay/allow_image_disk 1
		conf_set overlay/min_free 0
		conf_set paths/db db/bootlink.db
		conf_set paths/run run
		conf_set workers 2
		# OVERLAY_BLOCK_KB=64 runs a test with another overlay granularity
		# (tests/test-overlay-granularity.sh); $OVBLK is it in bytes.
		[[ -z ${OVERLAY_BLOCK_KB:-} ]] || conf_set overlay/block_kb "$OVERLAY_BLOCK_KB"
		_CONF_MADE=1
	fi
	for kv; do
		[[ $kv == *=* ]] || fail "make_conf: '$kv' is not KEY=VALUE"
		conf_set "${kv%%=*}" "${kv#*=}"
	done
}

ctl() {
	((_CONF_MADE)) || make_conf
	"$BUILD/bootlinkctl" -c "$T/conf" "$@"
}

_daemon_up_or_dead() {
	[[ -s $RUN/ready ]] || ! proc_alive "$DAEMON_PID"
}

start_daemon() {
	[[ -z $DAEMON_PID ]] || fail "start_daemon: bootlinkd is already running (pid $DAEMON_PID)"
	local bin=${DAEMON_BIN:-bootlinkd}
	[[ -x $BUILD/$bin ]] || skip "$BUILD/$bin is not built (run make)"
	make_conf "$@"
	rm -f "$RUN/ready" "$RUN"/listen/*
	echo "--- start_daemon $(date +%T.%N)" >>"$T/daemon.log"
	# shellcheck disable=SC2086 # DAEMON_WRAPPER is a command line
	ASAN_OPTIONS=${DAEMON_ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=0} \
		${DAEMON_WRAPPER:-} "$BUILD/$bin" -c "$T/conf" >>"$T/daemon.log" 2>&1 &
	DAEMON_PID=$!
	wait_for 10 _daemon_up_or_dead || fail "bootlinkd did not write $RUN/ready within 10 s"
	if ! proc_alive "$DAEMON_PID"; then
		local st=0
		wait "$DAEMON_PID" || st=$?
		DAEMON_PID=""
		fail "bootlinkd exited during start-up with status $st"
	fi
	local pid
	pid=$(<"$RUN/ready")
	[[ $pid == "$DAEMON_PID" ]] || fail "$RUN/ready holds '$pid', expected the daemon's pid $DAEMON_PID"
	[[ -s $RUN/listen/nbd ]] || fail "$RUN/listen/nbd is missing or empty after ready"
	# NBD_ADDR/NBD_HOST/NBD_PORT from <run>/listen/nbd, and the same for
	# every other listener (<run>/listen/iscsi -> ISCSI_ADDR/HOST/PORT).
	local f proto addr
	for f in "$RUN"/listen/*; do
		[[ -f $f ]] || continue
		proto=${f##*/}
		proto=${proto^^}
		addr=$(<"$f")
		[[ ${addr##*:} =~ ^[0-9]+$ && ${addr##*:} != 0 && -n ${addr%:*} ]] ||
			fail "$f holds '$addr', expected HOST:PORT with a real port"
		declare -g "${proto}_ADDR=$addr" "${proto}_HOST=${addr%:*}" "${proto}_PORT=${addr##*:}"
	done
	echo "bootlinkd pid $DAEMON_PID listening on $(cd "$RUN/listen" && for f in *; do printf '%s=%s ' "$f" "$(<"$f")"; done)"
}

assert_daemon_alive() {
	[[ -n $DAEMON_PID ]] && proc_alive "$DAEMON_PID" || fail "bootlinkd is not running${1:+ ($1)}"
}

# stop_daemon [SECS]: SIGTERM, then assert exit status 0 within SECS (15).
stop_daemon() {
	local secs=${1:-15} st=0
	[[ -n $DAEMON_PID ]] || fail "stop_daemon: bootlinkd is not running"
	kill -TERM "$DAEMON_PID"
	if ! wait_for "$secs" _all_gone "$DAEMON_PID"; then
		kill -KILL "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=""
		fail "bootlinkd did not exit within $secs s of SIGTERM"
	fi
	wait "$DAEMON_PID" || st=$?
	DAEMON_PID=""
	if _sanitizer_report "$T/daemon.log" >&2; then
		fail "the daemon log has a sanitizer report"
	fi
	((st == 0)) || fail "bootlinkd exited with status $st after SIGTERM (expected 0)"
}

# nbd_uri NAME: percent-encode everything outside [A-Za-z0-9._~/:-].
nbd_uri() {
	local name=$1 out="" c i
	for ((i = 0; i < ${#name}; i++)); do
		c=${name:i:1}
		case $c in
		[A-Za-z0-9._~/:-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	echo "nbd://$NBD_HOST:$NBD_PORT/$out"
}

# nbd_export_visible NAME: nbdinfo can open NAME (used with wait_for after a
# database change).
nbd_export_visible() {
	timeout 10 nbdinfo --size "$(nbd_uri "$1")" >/dev/null 2>&1
}

# "${NBDSH[@]}": nbdsh running the python script named by $NBDSH_SCRIPT
# (module nbd imported, no implicit handle); its exit status is the
# script's. A plain command line, so it works with timeout and spawn, and
# spawn's $! is nbdsh itself:
#   NBDSH_SCRIPT=$TESTS/nbd/options.py timeout 120 "${NBDSH[@]}"
NBDSH=(nbdsh -n -c 'import os; p = os.environ["NBDSH_SCRIPT"]; exec(compile(open(p).read(), p, "exec"))')

# nbd_list_names: the server's export list (NBD_OPT_LIST via nbdinfo), one
# name per line; fails if the server cannot be asked.
nbd_list_names() {
	local json
	json=$(timeout 10 nbdinfo --list --json "nbd://$NBD_HOST:$NBD_PORT" 2>/dev/null) || return 1
	python3 -c 'import json, sys; [print(e["export-name"]) for e in json.load(sys.stdin)["exports"]]' <<<"$json"
}

# nbd_export_listed NAME / nbd_export_unlisted NAME: the server answered the
# list request and NAME is (not) in it. For wait_for after a database change.
nbd_export_listed() {
	local names
	names=$(nbd_list_names) && grep -qxF -- "$1" <<<"$names"
}
nbd_export_unlisted() {
	local names
	names=$(nbd_list_names) && ! grep -qxF -- "$1" <<<"$names"
}

# cval NAME: the daemon's runtime-tree value cache/NAME (empty if absent).
cval() { cat "$RUN/cache/$1" 2>/dev/null || true; }
# tree_fresh: wait for a runtime tree snapshot taken after this call (each
# refresh rewrites cache/capacity_bytes; two rounds so the snapshot read is
# wholly from after the call).
tree_fresh() {
	for _ in 1 2; do
		touch "$T/.mark"
		wait_for 10 test "$RUN/cache/capacity_bytes" -nt "$T/.mark" || fail "the runtime tree is not refreshed"
	done
}
