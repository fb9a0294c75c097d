#!/bin/bash
# iscsi.sh — the iSCSI rows: bootlinkd's iSCSI target against tgtd (the Linux
# SCSI target framework's user-space daemon), in one run, on the same image.
#
#   bench/iscsi.sh                   full: iscsi-perf rows, ISCSI_RUNS runs each, and the whole
#                                    iscsi-test-cu suite on both targets: bench/results/iscsi.md
#   bench/iscsi.sh --smoke           smoke test, seconds: one 2 s run per row, two cu suites
#   BENCH_QUICK=1 bench/iscsi.sh     the same as --smoke
#   bench/iscsi.sh --into DIR        called by bench/run.sh: records go into DIR
#                                    (its report.py adds the iSCSI section)
#
# Both targets serve the same image file from loopback: bootlinkd as its image
# target (read-only, LUN 0), tgtd as LUN 1 of a target of its own (LUN 0 is
# its controller). Rows (libiscsi's iscsi-perf, one connection, same settings
# for both): 4 KiB random reads at QD 32 (IOPS) and 1 MiB sequential reads at
# QD 8 (MiB/s), runs interleaved across the two, with the server's CPU over
# each run. Then libiscsi's conformance suite iscsi-test-cu, each suite in its
# own process with -d (destructive tests allowed), against a scratch disk of
# each: bootlinkd's client target (its writable overlay over a 64 MiB image)
# and a tgtd LUN on a copy of that image. docs/bench.md, "iSCSI", has the rest.
#
# Environment (defaults in brackets; smoke defaults second):
#   BUILD             where bootlinkd/bootlinkctl are                 [build]
#   ISCSI_SECONDS     measured seconds per run                        [10 | 2]
#   ISCSI_RUNS        runs per row and server                         [BENCH_RUNS or 3 | 1]
#   ISCSI_IMAGE_MB    image size, MiB of random data (shared with run.sh: image-<MiB>M.raw)
#                                                                     [BENCH_IMAGE_MB or 1024 | 256]
#   ISCSI_CU_SUITES   iscsi-test-cu suites                  [every ALL.* suite | ALL.Inquiry ALL.Read10]
#   ISCSI_CU_TIMEOUT  seconds one suite may take                      [120]
#   ISCSI_SERVERS     [bootlinkd tgtd]
#   ISCSI_OUT         report  [bench/results/iscsi.md | bench/.work/iscsi-smoke.md]
#   BENCH_WORK        scratch directory (images, temp dirs, last logs)  [bench/.work]
#
# Exit status: 0 when at least one server produced figures and bootlinkd (if
# it ran) did not crash or hang in the suite; 1 otherwise. Figures and pass
# counts never decide it.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=${BENCH_WORK:-$BENCH/.work}
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

say() { printf 'iscsi: [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { say "error: $*"; exit 1; }

SMOKE=${BENCH_QUICK:-0} INTO=""
while (($#)); do
	case $1 in
	--smoke) SMOKE=1 ;;
	--into) INTO=${2:?--into needs a directory}; shift ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (--smoke, --into DIR)" ;;
	esac
	shift
done
if [[ $SMOKE == 1 ]]; then
	MODE=smoke; d_secs=2; d_runs=1; d_img=256; d_suites="ALL.Inquiry ALL.Read10"; d_out=$WORK/iscsi-smoke.md
else
	MODE=full; d_secs=10; d_runs=${BENCH_RUNS:-3}; d_img=${BENCH_IMAGE_MB:-1024}; d_suites=""
	d_out=$BENCH/results/iscsi.md
fi
SECS=${ISCSI_SECONDS:-$d_secs}
RUNS=${ISCSI_RUNS:-$d_runs}
IMAGE_MB=${ISCSI_IMAGE_MB:-$d_img}
CU_TIMEOUT=${ISCSI_CU_TIMEOUT:-120}
read -ra SERVERS <<<"${ISCSI_SERVERS:-bootlinkd tgtd}"
OUT=${ISCSI_OUT:-$d_out}
[[ $OUT == /* ]] || OUT=$ROOT/$OUT
for v in SECS RUNS IMAGE_MB CU_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} > 0)) || die "$v='${!v}' is not a whole number > 0"
done
((IMAGE_MB >= 64)) || die "ISCSI_IMAGE_MB must be >= 64"
for n in "${SERVERS[@]}"; do
	case $n in bootlinkd | tgtd) ;;
	*) die "ISCSI_SERVERS: unknown server '$n' (known: bootlinkd tgtd)" ;;
	esac
done
((${#SERVERS[@]})) || die "ISCSI_SERVERS is empty"
for tool in iscsi-perf iscsi-test-cu python3; do
	command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs libiscsi-bin)"
done
if [[ -n ${ISCSI_CU_SUITES:-} || -n $d_suites ]]; then
	read -ra SUITES <<<"${ISCSI_CU_SUITES:-$d_suites}"
else
	mapfile -t SUITES < <(iscsi-test-cu --list | grep -E '^ALL\.[^.]+$')
fi
((${#SUITES[@]})) || die "no iscsi-test-cu suites (iscsi-test-cu --list shows none)"

mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/iscsi.XXXXXX") || die "cannot create a temp dir under $WORK"
REC=${INTO:-$TMP}
mkdir -p "$REC" || die "cannot create $REC"
: >"$REC/iscsi.tsv"
: >"$REC/iscsi-cu.tsv"
: >"$REC/iscsi-meta.tsv"
: >"$REC/iscsi-servers.tsv"

declare -A PID=() URL=() CU_URL=() NA=() CMDLINE=() DETAIL=() DIED=()
STARTED=()
PERF_PID=""
PARTIAL_IMAGE=""
TGT_CTL=""      # tgtd's control port (tgtadm -C), once it runs
BL_RUN=$TMP/bootlinkd/run
IQN_BL=iqn.2026-11.org.bootlink
IQN_TGT=iqn.2026-11.org.bootlink.bench
CU_MAC=52:54:00:00:be:01

alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}

# tgt_stop: tgtd ignores SIGTERM while it has targets: delete them, then
# the system; SIGKILL if it is still there after 5 s.
tgt_stop() {
	local p=${PID[tgtd]:-} i t
	[[ -n $p ]] && alive "$p" || return 0
	if [[ -n $TGT_CTL ]]; then
		for t in 1 2; do
			timeout 10 tgtadm -C "$TGT_CTL" --lld iscsi --mode target --op delete --force --tid "$t" >/dev/null 2>&1
		done
		timeout 10 tgtadm -C "$TGT_CTL" --mode system --op delete >/dev/null 2>&1
	fi
	for ((i = 0; i < 50; i++)); do
		alive "$p" || break
		sleep 0.1
	done
	alive "$p" && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	[[ -n $TGT_CTL ]] && rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock"
	return 0
}

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
	local p=$1 i
	alive "$p" || return 0
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		alive "$p" || break
		sleep 0.1
	done
	alive "$p" && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}

cleanup() {
	local p
	[[ -n $PERF_PID ]] && alive "$PERF_PID" && kill -KILL "$PERF_PID" 2>/dev/null
	tgt_stop
	for p in "${STARTED[@]}"; do stop_pid "$p"; done
	[[ -n $PARTIAL_IMAGE ]] && rm -f "$PARTIAL_IMAGE"
	if [[ -d $TMP ]]; then
		rm -rf "$WORK/last-iscsi-logs"
		mkdir -p "$WORK/last-iscsi-logs"
		cp "$TMP"/*.log "$TMP"/*.tsv "$WORK/last-iscsi-logs/" 2>/dev/null
		cp -r "$TMP/cu" "$WORK/last-iscsi-logs/" 2>/dev/null
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

meta() { printf '%s\t%s\n' "$1" "$2" >>"$REC/iscsi-meta.tsv"; }
q() { printf '%q ' "$@" | sed 's/ $//'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
last_line() {
	local l
	l=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr -d '\r' | cut -c1-160)
	echo "${l:-no output}"
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ticks PID: utime+stime of the process (every thread), in clock ticks.
ticks() {
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -; return; }
	s=${s##*) }
	read -ra f <<<"$s"
	echo $((f[11] + f[12]))
}

# probe URL: a login and READ CAPACITY within 5 s.
probe() { timeout 5 iscsi-readcapacity16 "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- images

IMAGE_BYTES=$((IMAGE_MB * 1048576))
IMAGE=$WORK/image-${IMAGE_MB}M.raw
if [[ ! -f $IMAGE || $(stat -c %s "$IMAGE") != "$IMAGE_BYTES" ]]; then
	avail=$(df -B1 --output=avail "$WORK" | tail -n 1 | tr -d ' ')
	((avail > IMAGE_BYTES + (1 << 30))) || die "not enough space under $WORK for a ${IMAGE_MB} MiB image"
	say "creating $IMAGE (${IMAGE_MB} MiB of random data, kept for later runs)"
	PARTIAL_IMAGE=$(mktemp "$WORK/image.XXXXXX") || die "cannot create a temp file under $WORK"
	head -c "$IMAGE_BYTES" /dev/urandom >"$PARTIAL_IMAGE" || die "cannot write $PARTIAL_IMAGE"
	chmod 644 "$PARTIAL_IMAGE"
	mv "$PARTIAL_IMAGE" "$IMAGE" || die "cannot rename the image into place"
	PARTIAL_IMAGE=""
fi
# The conformance suite writes: each target gets its own scratch copy of
# the same 64 MiB (bootlinkd writes into the client's overlay, never the file).
head -c $((64 << 20)) "$IMAGE" >"$TMP/cu-bootlinkd.raw" && cp "$TMP/cu-bootlinkd.raw" "$TMP/cu-tgtd.raw" ||
	die "cannot write the scratch disks under $TMP"

# ---------------------------------------------------------------- servers

start_bootlinkd() {
	local n=bootlinkd d=$TMP/bootlinkd i p key v
	[[ -x $BUILD/bootlinkd && -x $BUILD/bootlinkctl ]] || { NA[$n]="not built: no $BUILD/bootlinkd or bootlinkctl"; return 1; }
	mkdir -p "$d/listen" "$d/paths" "$d/overlay" "$d/overlays"
	echo 127.0.0.1:0 >"$d/listen/iscsi"
	for key in $(grep -aoE 'listen/[a-z0-9_]+' "$BUILD/bootlinkd" | sort -u) listen/nbd listen/http; do
		[[ $key == listen/iscsi || -e $d/$key ]] || echo off >"$d/$key"
	done
	echo db/bootlink.db >"$d/paths/db"
	echo run >"$d/paths/run"
	echo 2 >"$d/workers"
	echo overlays >"$d/overlay/dirs"
	echo 1 >"$d/overlay/allow_image_disk"
	echo 0 >"$d/overlay/min_free"
	if ! { "$BUILD/bootlinkctl" -c "$d" image add bench "$IMAGE" &&
		"$BUILD/bootlinkctl" -c "$d" image add cu "$TMP/cu-bootlinkd.raw" &&
		"$BUILD/bootlinkctl" -c "$d" client add "$CU_MAC" --image cu; } >"$TMP/bootlinkctl.log" 2>&1; then
		NA[$n]="bootlinkctl failed: $(last_line "$TMP/bootlinkctl.log")"
		return 1
	fi
	CMDLINE[$n]="$(q "$BUILD/bootlinkd" -c "$d")  (config: listen/iscsi=127.0.0.1:0, other listeners off, workers=2, overlay/dirs=overlays; bootlinkctl: image add bench IMAGE; image add cu SCRATCH; client add $CU_MAC --image cu)"
	"$BUILD/bootlinkd" -c "$d" >"$TMP/$n.log" 2>&1 &
	p=$!
	STARTED+=("$p")
	for ((i = 0; i < 150; i++)); do
		alive "$p" || { NA[$n]="exited at start: $(last_line "$TMP/$n.log")"; return 1; }
		[[ -e $d/run/ready && -s $d/run/listen/iscsi ]] && break
		sleep 0.1
	done
	v=$(tr -d ' \n' <"$d/run/listen/iscsi" 2>/dev/null)
	[[ -e $d/run/ready && $v == *:* ]] || { NA[$n]="no run/ready or run/listen/iscsi after 15 s"; return 1; }
	URL[$n]=iscsi://$v/$IQN_BL:image.bench/0
	CU_URL[$n]=iscsi://$v/$IQN_BL:client.${CU_MAC//:/}/0
	probe "${URL[$n]}" || { NA[$n]="no answer to a login on ${URL[$n]}"; return 1; }
	PID[$n]=$p
	DETAIL[$n]="$BUILD/bootlinkd, tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), 2 workers; image target (LUN 0) for the rows, a client target (writable overlay over the 64 MiB scratch image) for the suite"
}

start_tgtd() {
	local n=tgtd p port i tries
	command -v tgtd >/dev/null && command -v tgtadm >/dev/null || { NA[$n]="tgtd not installed (Debian package tgt)"; return 1; }
	port=$(free_port) || { NA[$n]="no free port"; return 1; }
	# A control port (tgtadm -C) of our own, so no other tgtd is touched.
	for ((tries = 0; tries < 5; tries++)); do
		TGT_CTL=$((20000 + RANDOM % 10000))
		[[ -e /var/run/tgtd/socket.$TGT_CTL.lock ]] && continue
		tgtd -f -C "$TGT_CTL" --iscsi "portal=127.0.0.1:$port" >"$TMP/$n.log" 2>&1 &
		p=$!
		PID[$n]=$p
		for ((i = 0; i < 50; i++)); do
			alive "$p" || break
			tgtadm -C "$TGT_CTL" --mode target --op show >/dev/null 2>&1 && break 2
			sleep 0.1
		done
		tgt_stop
		unset 'PID[$n]'
	done
	[[ -n ${PID[$n]:-} ]] || { NA[$n]="did not start: $(last_line "$TMP/$n.log")"; TGT_CTL=""; return 1; }
	local T=(tgtadm -C "$TGT_CTL" --lld iscsi)
	if ! { "${T[@]}" --mode target --op new --tid 1 --targetname "$IQN_TGT:perf" &&
		"${T[@]}" --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$IMAGE" &&
		"${T[@]}" --mode logicalunit --op update --tid 1 --lun 1 --params readonly=1 &&
		"${T[@]}" --mode target --op bind --tid 1 --initiator-address 127.0.0.1 &&
		"${T[@]}" --mode target --op new --tid 2 --targetname "$IQN_TGT:cu" &&
		"${T[@]}" --mode logicalunit --op new --tid 2 --lun 1 --backing-store "$TMP/cu-tgtd.raw" &&
		"${T[@]}" --mode target --op bind --tid 2 --initiator-address 127.0.0.1; } >>"$TMP/$n.log" 2>&1; then
		NA[$n]="tgtadm failed: $(last_line "$TMP/$n.log")"
		return 1
	fi
	CMDLINE[$n]="tgtd -f -C CTL --iscsi portal=127.0.0.1:PORT; tgtadm -C CTL --lld iscsi: target $IQN_TGT:perf LUN 1 --backing-store IMAGE (readonly=1), target $IQN_TGT:cu LUN 1 --backing-store SCRATCH, both bound to 127.0.0.1"
	URL[$n]=iscsi://127.0.0.1:$port/$IQN_TGT:perf/1
	CU_URL[$n]=iscsi://127.0.0.1:$port/$IQN_TGT:cu/1
	probe "${URL[$n]}" || { NA[$n]="no answer to a login on ${URL[$n]}"; return 1; }
	DETAIL[$n]="tgtd $(pkg_version tgt), its defaults (backing store rdwr: buffered pread/pwrite through the page cache, a pool of I/O threads); LUN 1 (LUN 0 is its controller)"
}

# ---------------------------------------------------------------- rows

ROW_IDS=(rand4k seq1m)
declare -A ROW_TITLE=([rand4k]="4 KiB random read, QD 32" [seq1m]="1 MiB sequential read, QD 8")
declare -A ROW_UNIT=([rand4k]=IOPS [seq1m]=MiB/s)
# iscsi-perf: -b blocks of 512 bytes per request, -m requests in flight, -r random, -t seconds
declare -A ROW_ARGS=([rand4k]="-m 32 -b 8 -r" [seq1m]="-m 8 -b 2048")
declare -A ROW_BYTES=([rand4k]=4096 [seq1m]=1048576)

# perf_run ARGS URL SECS LOG: one iscsi-perf run; prints its average IOPS.
perf_run() {
	local args=$1 url=$2 secs=$3 log=$4 rc v
	# shellcheck disable=SC2086
	timeout -s INT $((secs + 30)) iscsi-perf $args -t "$secs" "$url" >"$log" 2>&1 &
	PERF_PID=$!
	wait "$PERF_PID"
	rc=$?
	PERF_PID=""
	v=$(tr '\r' '\n' <"$log" | sed -n 's/^iops average \([0-9][0-9]*\) .*/\1/p' | tail -n 1)
	((rc == 0)) && [[ -n $v ]] || return 1
	echo "$v"
}

# run_one ROW SERVER RUN: one measured run; appends a line to iscsi.tsv:
#   row server run status value io_bytes cpu_ticks note
run_one() {
	local row=$1 n=$2 run=$3 p=${PID[$2]} log=$TMP/perf.$1.$2.$3.log c0 c1 iops value cpu=- io
	if ! alive "$p"; then
		: "${DIED[$n]:=died before $row run $run: $(last_line "$TMP/$n.log")}"
		printf '%s\t%s\t%s\tfail\t\t\t\t%s\n' "$row" "$n" "$run" "server died" >>"$REC/iscsi.tsv"
		return
	fi
	c0=$(ticks "$p")
	if iops=$(perf_run "${ROW_ARGS[$row]}" "${URL[$n]}" "$SECS" "$log"); then
		c1=$(ticks "$p")
		[[ $c0 != - && $c1 != - ]] && cpu=$((c1 - c0))
		io=$((iops * ROW_BYTES[$row] * SECS))
		if [[ ${ROW_UNIT[$row]} == MiB/s ]]; then
			value=$(awk -v i="$iops" -v b="${ROW_BYTES[$row]}" 'BEGIN { printf "%.1f", i * b / 1048576 }')
		else
			value=$iops
		fi
		printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t\n' "$row" "$n" "$run" "$value" "$io" "$cpu" >>"$REC/iscsi.tsv"
		say "  $row $n run $run: $value ${ROW_UNIT[$row]}"
	else
		local why="iscsi-perf failed: $(last_line "$log")"
		alive "$p" || { DIED[$n]="died during $row run $run: $(last_line "$TMP/$n.log")"; why="server died"; }
		printf '%s\t%s\t%s\tfail\t\t\t\t%s\n' "$row" "$n" "$run" "$why" >>"$REC/iscsi.tsv"
		say "  $row $n run $run: $why"
	fi
}

# cu_suite SERVER SUITE: one iscsi-test-cu suite in its own process; appends
# one line per test to iscsi-cu.tsv: server suite.test status (PASS, SKIP,
# FAIL, CRASH = the process died in it, HANG = timeout in it).
cu_suite() {
	local n=$1 s=$2 log=$TMP/cu/$1.${2#ALL.}.log st=0
	timeout -k 5 "$CU_TIMEOUT" iscsi-test-cu -d -v -t "$s" "${CU_URL[$n]}" >"$log" 2>&1 || st=$?
	python3 "$BENCH/cu_summary.py" --server "$n" --status "$st" "$log" >>"$REC/iscsi-cu.tsv" 2>>"$TMP/cu_summary.log" ||
		printf '%s\t%s\tCRASH\n' "$n" "${s#ALL.}" >>"$REC/iscsi-cu.tsv"
	((st == 124 || st == 137)) && say "  $n: suite $s hung (no result within $CU_TIMEOUT s)"
	return 0
}

# ---------------------------------------------------------------- the run

meta mode "$MODE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta runs "$RUNS"
meta seconds "$SECS"
meta image "${IMAGE_MB} MiB of random data ($(basename "$IMAGE")); suite scratch disks: 64 MiB each"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta clk_tck "$(getconf CLK_TCK)"
meta suites "${#SUITES[@]}"
meta cu_cmd "iscsi-test-cu -d -v -t SUITE URL (each suite its own process, timeout $CU_TIMEOUT s)"
for row in "${ROW_IDS[@]}"; do
	meta "row:$row" "${ROW_TITLE[$row]}"$'\t'"${ROW_UNIT[$row]}"$'\t'"iscsi-perf ${ROW_ARGS[$row]} -t $SECS URL"
done
if [[ -z $INTO ]]; then
	meta nproc "$(nproc)"
	meta cpu "$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
	meta mem "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	meta kernel "$(uname -srm)"
	meta disk "$(df -hT "$WORK" | tail -n 1 | tr -s ' ')"
	meta commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
fi
for pkg in tgt libiscsi-bin liburing2; do meta "pkg:$pkg" "$(pkg_version "$pkg")"; done
mkdir -p "$TMP/cu"

say "mode $MODE: ${RUNS} run(s) x ${SECS} s per row and server; image ${IMAGE_MB} MiB; ${#SUITES[@]} cu suite(s)"
LIVE=()
for n in "${SERVERS[@]}"; do
	case $n in
	bootlinkd) start_bootlinkd ;;
	tgtd) start_tgtd ;;
	esac
	if [[ -n ${NA[$n]:-} ]]; then
		say "$n: n/a (${NA[$n]})"
		[[ $n == tgtd ]] && tgt_stop
		unset 'PID[$n]'
	else
		say "$n: ${URL[$n]} (pid ${PID[$n]})"
		LIVE+=("$n")
	fi
done

# Warm-up, untimed: the image into the page cache (what tgtd reads through),
# then one sequential pass through each server (bootlinkd's block cache).
cat "$IMAGE" >/dev/null
meta residency "$(fincore -nb -o RES "$IMAGE" 2>/dev/null | tr -d ' ' | awk -v t="$IMAGE_BYTES" '{ printf "%d %%", $1 * 100 / t }')"
for n in "${LIVE[@]}"; do
	# 1 MiB requests for long enough to cover the image at 512 MiB/s
	w=$(((IMAGE_MB + 511) / 512 + 1))
	perf_run "-m 8 -b 2048" "${URL[$n]}" "$w" "$TMP/warmup.$n.log" >/dev/null ||
		say "$n: warm-up failed: $(last_line "$TMP/warmup.$n.log")"
done
meta warmup "cat IMAGE >/dev/null, then iscsi-perf -m 8 -b 2048 -t S URL on each server (S = 1 s per 512 MiB + 1)"

for row in "${ROW_IDS[@]}"; do
	for ((run = 1; run <= RUNS; run++)); do
		for ((k = 0; k < ${#LIVE[@]}; k++)); do
			n=${LIVE[$(((k + run - 1) % ${#LIVE[@]}))]}
			run_one "$row" "$n" "$run"
		done
	done
done

if [[ -d $BL_RUN ]] && [[ -n ${PID[bootlinkd]:-} ]]; then
	rt() { local v; v=$(tr -d ' \n' <"$BL_RUN/$1" 2>/dev/null); [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0; }
	meta bootlinkd_stats "block cache $(($(rt cache/capacity_bytes) / 1048576)) MiB: $(rt cache/hits) hits, $(rt cache/misses) misses; image bench: $(($(rt images/bench/disk_bytes) / 1048576)) MiB read from disk"
fi

BL_BAD=0
for n in "${LIVE[@]}"; do
	say "$n: iscsi-test-cu, ${#SUITES[@]} suite(s)"
	for s in "${SUITES[@]}"; do
		alive "${PID[$n]}" || { : "${DIED[$n]:=died in the suite before $s: $(last_line "$TMP/$n.log")}"; break; }
		cu_suite "$n" "$s"
	done
	alive "${PID[$n]}" || { : "${DIED[$n]:=died in the suite: $(last_line "$TMP/$n.log")}"; }
	read -r p f k c < <(awk -F'\t' -v n="$n" '$1 == n { c[$3]++ } END { print c["PASS"]+0, c["FAIL"]+0, c["SKIP"]+0, c["CRASH"]+c["HANG"] }' "$REC/iscsi-cu.tsv")
	say "$n: iscsi-test-cu: $p passed, $f failed, $k skipped, $c crashed or hung"
	[[ $n == bootlinkd ]] && { [[ -n ${DIED[$n]:-} ]] || ((c > 0)); } && BL_BAD=1
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

for n in "${SERVERS[@]}"; do
	if [[ -z ${NA[$n]:-} ]]; then
		printf '%s\tok\t%s\t%s\n' "$n" "${DETAIL[$n]}${DIED[$n]:+; ${DIED[$n]}}" "${CMDLINE[$n]}" >>"$REC/iscsi-servers.tsv"
	else
		printf '%s\tna\t%s\t%s\n' "$n" "${NA[$n]}" "${CMDLINE[$n]:-}" >>"$REC/iscsi-servers.tsv"
	fi
done
tgt_stop
for p in "${STARTED[@]}"; do stop_pid "$p"; done

if [[ -z $INTO ]]; then
	python3 "$BENCH/report.py" --iscsi "$REC" "$OUT" || die "report.py failed"
fi
grep -q $'\tok\t' "$REC/iscsi.tsv" || { say "no server produced a figure"; exit 1; }
((BL_BAD == 0)) || { say "bootlinkd crashed, hung or died in the suite (see above)"; exit 1; }
exit 0
