#!/bin/bash
# limits.sh — how close bootlinkd gets to what the machine itself can do, and a cost figure
# that does not depend on how busy the machine is. Called by bench/run.sh (after its own
# servers are stopped) with --into DIR; report.py (bench/limits_report.py) adds the section.
#
#   bench/limits.sh --into DIR IMAGE         records into DIR/limits.tsv
#   BENCH_QUICK=1 ...                        one short run of each (smoke)
#
# Rows (each run LIMITS_RUNS times, default BENCH_RUNS or 3; 1 when quick):
#   tcp      iperf3, one stream over 127.0.0.1, MiB/s: what plain TCP over loopback carries
#   direct   fio --ioengine=io_uring --direct=1 1 MiB sequential reads, QD 8, straight from
#            the image file: what the disk gives a program that reads it well
#   cold     a freshly started bootlinkd (empty block cache, cache/prefetch=0) serving the
#            same reads over NBD (fio nbd engine, 1 MiB, QD 8, the whole image once), MiB/s
#   instr    valgrind --tool=callgrind: user-space instructions bootlinkd executes per 4 KiB
#            read served from its cache (fio nbd, QD 32, LIMITS_CG_IOS reads after a warm-up
#            pass; instrumentation on only while they run). Repeatable on a noisy machine.
#   rss_idle bytes of bootlinkd RSS per idle NBD connection (LIMITS_IDLE connections that
#            finished the handshake and sit in transmission), from /proc/PID/status
#
# Lines of DIR/limits.tsv: row, run, status (ok|fail), value, note.
# A row whose tool is missing is recorded as fail with the reason; the exit status is 0
# unless the arguments are wrong.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

say() { printf 'limits: [%3ds] %s\n' "$SECONDS" "$*" >&2; }

INTO="" IMAGE=""
if [[ ${1:-} == --into && $# == 3 ]]; then
	INTO=$2 IMAGE=$3
else
	echo "usage: limits.sh --into DIR IMAGE" >&2
	exit 2
fi
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then d_runs=1 d_secs=2 d_ios=20000; else d_runs=${BENCH_RUNS:-3} d_secs=${BENCH_SECONDS:-10} d_ios=200000; fi
RUNS=${LIMITS_RUNS:-$d_runs}
SECS=${BENCH_SECONDS:-$d_secs}
CG_IOS=${LIMITS_CG_IOS:-$d_ios}
IDLE=${LIMITS_IDLE:-200}
REC=$INTO/limits.tsv
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-limits.XXXXXX") || exit 1
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$REC"; }
alive() { kill -0 "$1" 2>/dev/null; }
mib_of_fio() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.1f" % (sum(x["read"]["bw_bytes"] for x in j["jobs"]) / 1048576))' "$1"; }

# bl_start DIR [KEY=VALUE...]: a bootlinkd on 127.0.0.1 (NBD only) serving IMAGE as "bench";
# sets BL_PID and BL_PORT. Runs under $BL_WRAPPER when set (valgrind).
bl_start() {
	local d=$1 kv i
	shift
	rm -rf "$d"
	mkdir -p "$d/listen" "$d/paths" "$d/db" "$d/cache"
	echo 127.0.0.1:0 >"$d/listen/nbd"
	echo off >"$d/listen/iscsi"
	echo off >"$d/listen/http"
	echo db/bootlink.db >"$d/paths/db"
	echo run >"$d/paths/run"
	echo 2 >"$d/workers"
	for kv; do
		mkdir -p "$d/$(dirname "${kv%%=*}")"
		echo "${kv#*=}" >"$d/${kv%%=*}"
	done
	"$BUILD/bootlinkctl" -c "$d" image add bench "$IMAGE" >"$d.ctl.log" 2>&1 || return 1
	${BL_WRAPPER:-} "$BUILD/bootlinkd" -c "$d" >"$d.log" 2>&1 &
	BL_PID=$!
	PIDS+=("$BL_PID")
	for ((i = 0; i < 600; i++)); do
		alive "$BL_PID" || return 1
		[[ -e $d/run/ready && -s $d/run/listen/nbd ]] && break
		sleep 0.1
	done
	BL_PORT=$(sed 's/.*://' "$d/run/listen/nbd")
	[[ $BL_PORT =~ ^[0-9]+$ ]]
}

bl_stop() {
	kill -TERM "$BL_PID" 2>/dev/null
	timeout 20 tail --pid="$BL_PID" -f /dev/null 2>/dev/null || kill -9 "$BL_PID" 2>/dev/null
	wait "$BL_PID" 2>/dev/null
}

row_tcp() {
	command -v iperf3 >/dev/null || { rec tcp "$1" fail "" "iperf3 is not installed"; return; }
	local port=$((20000 + RANDOM % 20000))
	iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$TMP/iperf-s.log" 2>&1 &
	local sp=$!
	PIDS+=("$sp")
	local i
	for ((i = 0; i < 50; i++)); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.1; done
	if timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "$port" -P 1 -t "$SECS" -J >"$TMP/iperf.json" 2>"$TMP/iperf.err"; then
		rec tcp "$1" ok "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.1f" % (j["end"]["sum_received"]["bits_per_second"] / 8 / 1048576))' "$TMP/iperf.json")" ""
	else
		rec tcp "$1" fail "" "iperf3 failed: $(tail -n 1 "$TMP/iperf.err")"
	fi
	kill "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null
}

row_direct() {
	if fio --name=direct --ioengine=io_uring --direct=1 --filename="$IMAGE" --rw=read --bs=1M --iodepth=8 \
		--output-format=json --output="$TMP/direct.json" >"$TMP/direct.log" 2>&1; then
		rec direct "$1" ok "$(mib_of_fio "$TMP/direct.json")" ""
	else
		rec direct "$1" fail "" "fio failed: $(tail -n 1 "$TMP/direct.log")"
	fi
}

row_cold() {
	local mb=$(($(stat -c %s "$IMAGE") / 1048576 + 64))
	if ! bl_start "$TMP/cold" cache/prefetch=0 "cache/size_mb=$mb"; then
		rec cold "$1" fail "" "bootlinkd did not start: $(tail -n 1 "$TMP/cold.log" 2>/dev/null)"
		return
	fi
	if fio --name=cold --ioengine=nbd "--uri=nbd://127.0.0.1:$BL_PORT/bench" --rw=read --bs=1M --iodepth=8 \
		--output-format=json --output="$TMP/cold.json" >"$TMP/cold-fio.log" 2>&1; then
		rec cold "$1" ok "$(mib_of_fio "$TMP/cold.json")" "disk reads $(cat "$TMP/cold/run/images/bench/disk_reads" 2>/dev/null)"
	else
		rec cold "$1" fail "" "fio failed: $(tail -n 1 "$TMP/cold-fio.log")"
	fi
	bl_stop
}

row_instr() {
	command -v valgrind >/dev/null || { rec instr 1 fail "" "valgrind is not installed"; return; }
	# An AddressSanitizer build (make SANITIZE=1) cannot run under valgrind.
	if grep -aq __asan_init "$BUILD/bootlinkd"; then
		rec instr 1 fail "" "$BUILD/bootlinkd is an AddressSanitizer build, which valgrind cannot run"
		return
	fi
	local out="$TMP/callgrind.out" n tot
	BL_WRAPPER="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$out" \
		bl_start "$TMP/cg" workers=1 || { rec instr 1 fail "" "bootlinkd under callgrind did not start"; return; }
	local uri="nbd://127.0.0.1:$BL_PORT/bench" size
	size=$(stat -c %s "$IMAGE")
	((size > 256 << 20)) && size=$((256 << 20))
	fio --name=warm --ioengine=nbd "--uri=$uri" --rw=read --bs=1M --iodepth=8 --size="$size" --output=/dev/null >/dev/null 2>&1
	callgrind_control -i on "$BL_PID" >/dev/null 2>&1
	fio --name=cg --ioengine=nbd "--uri=$uri" --rw=randread --bs=4k --iodepth=32 --norandommap --size="$size" \
		--number_ios="$CG_IOS" --output=/dev/null >"$TMP/cg-fio.log" 2>&1
	callgrind_control -i off "$BL_PID" >/dev/null 2>&1
	callgrind_control -d "$BL_PID" >/dev/null 2>&1
	# the requests the measured connection served, from its disconnect line
	n=$(grep -oE 'disconnected: [0-9]+ requests' "$TMP/cg.log" | tail -n 1 | grep -oE '[0-9]+')
	kill -9 "$BL_PID" 2>/dev/null
	wait "$BL_PID" 2>/dev/null
	tot=0
	local f t
	for f in "$out"*; do
		t=$(callgrind_annotate "$f" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{gsub(",", "", $1); print $1}')
		[[ $t =~ ^[0-9]+$ ]] && tot=$((tot + t))
	done
	if [[ $n =~ ^[0-9]+$ ]] && ((n > 0 && tot > 0)); then
		rec instr 1 ok "$((tot / n))" "$n requests, $tot instructions"
	else
		rec instr 1 fail "" "no figure (requests '$n', instructions '$tot')"
	fi
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

row_rss_idle() {
	bl_start "$TMP/idle" || { rec rss_idle 1 fail "" "bootlinkd did not start"; return; }
	local before after
	python3 "$ROOT/bench/idle_conns.py" 127.0.0.1 "$BL_PORT" bench 8 - >/dev/null 2>&1 # warm-up: first allocations
	before=$(rss_kib "$BL_PID")
	python3 "$ROOT/bench/idle_conns.py" 127.0.0.1 "$BL_PORT" bench "$IDLE" "$TMP/idle.ready" >"$TMP/idle.log" 2>&1 &
	local hp=$! i
	PIDS+=("$hp")
	for ((i = 0; i < 600; i++)); do [[ -e $TMP/idle.ready ]] && break; alive "$hp" || break; sleep 0.1; done
	if [[ -e $TMP/idle.ready ]]; then
		after=$(rss_kib "$BL_PID")
		rec rss_idle 1 ok "$(((after - before) * 1024 / IDLE))" "$IDLE connections: RSS $before -> $after KiB"
	else
		rec rss_idle 1 fail "" "the idle connections did not come up: $(tail -n 1 "$TMP/idle.log")"
	fi
	kill "$hp" 2>/dev/null
	wait "$hp" 2>/dev/null
	bl_stop
}

for ((r = 1; r <= RUNS; r++)); do
	say "run $r/$RUNS: TCP over loopback (iperf3)"
	row_tcp "$r"
	say "run $r/$RUNS: O_DIRECT reads from the image file (fio io_uring)"
	row_direct "$r"
	say "run $r/$RUNS: cold reads through a fresh bootlinkd"
	row_cold "$r"
done
say "instructions per cached 4 KiB read (callgrind, $CG_IOS reads)"
row_instr
say "RSS per idle connection ($IDLE connections)"
row_rss_idle
exit 0
