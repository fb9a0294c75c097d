#!/bin/bash
# run.sh — bootlinkd against the peer NBD servers, in one run, as ratios.
#
#   make bench                     (= BUILD=build bench/run.sh)
#   BENCH_QUICK=1 bench/run.sh     smoke test, ~30 s: 256 MiB image, 2 s runs, 1 run each
#
# Starts each server itself on its own loopback port (bootlinkd, nbdkit,
# nbd-server, qemu-nbd), warms each up with one untimed sequential pass,
# runs every row BENCH_RUNS times per server (runs interleaved across the
# servers, so background load hits them alike), stops every server it
# started (by PID), prints the table and writes it as markdown with the
# machine, versions and exact command lines. docs/bench.md explains the rows
# and how to read them.
#
# Environment (defaults in brackets; quick-mode defaults second):
#   BUILD            where bootlinkd/bootlinkctl are              [build]
#   BENCH_SECONDS    measured seconds per run                     [10 | 2]
#   BENCH_RAMP       ramp seconds before measuring                [2 | 0]
#   BENCH_RUNS       runs per row and server                      [3 | 1]
#   BENCH_IMAGE_MB   test image size in MiB (random data)         [1024 | 256]
#   BENCH_SERVERS    which servers   [bootlinkd nbdkit nbd-server qemu-nbd]
#   BENCH_QEMU_CACHE qemu-nbd --cache mode (none = O_DIRECT)      [none]
#   BENCH_BOOTLINKD_SET  extra bootlinkd settings, "KEY=VALUE ..." written
#                    into its config tree, e.g. "cache/size_mb=2048"  []
#   BENCH_OUT        markdown report  [bench/results/latest.md | bench/.work/quick.md]
#   BENCH_TCP_CC     run everything in a network namespace whose TCP congestion
#                    control is this (e.g. cubic, Debian's default), so every server
#                    uses it alike (bench/tcp-cc.sh)           [the machine's own]
#
# A server that fails to start gets "n/a (reason)" and the run goes on; if
# bootlinkd is not built, only the peers run and the report says so.
# Exit status: 0 when at least one server produced figures, 1 when none did
# or the harness itself could not run (missing fio, no image). Figures never
# decide the exit status.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/.work
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD

say() { printf 'bench: [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { say "error: $*"; exit 1; }

. "$BENCH/tcp-cc.sh"
bench_tcp_cc_reexec "$@"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
	MODE=quick; d_secs=2; d_ramp=0; d_runs=1; d_mb=256; d_out=$WORK/quick.md
else
	MODE=full; d_secs=10; d_ramp=2; d_runs=3; d_mb=1024; d_out=$BENCH/results/latest.md
fi
SECS=${BENCH_SECONDS:-$d_secs}
RAMP=${BENCH_RAMP:-$d_ramp}
RUNS=${BENCH_RUNS:-$d_runs}
IMAGE_MB=${BENCH_IMAGE_MB:-$d_mb}
read -ra SERVERS <<<"${BENCH_SERVERS:-bootlinkd nbdkit nbd-server qemu-nbd}"
QEMU_CACHE=${BENCH_QEMU_CACHE:-none}
BOOTLINKD_SET=${BENCH_BOOTLINKD_SET:-}
OUT=${BENCH_OUT:-$d_out}
[[ $OUT == /* ]] || OUT=$ROOT/$OUT
for v in SECS RAMP RUNS IMAGE_MB; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v='${!v}' is not a whole number"
done
((SECS > 0 && RUNS > 0 && IMAGE_MB > 0)) || die "BENCH_SECONDS, BENCH_RUNS and BENCH_IMAGE_MB must be > 0"

for n in "${SERVERS[@]}"; do
	case $n in bootlinkd | nbdkit | nbd-server | qemu-nbd) ;;
	*) die "BENCH_SERVERS: unknown server '$n' (known: bootlinkd nbdkit nbd-server qemu-nbd)" ;;
	esac
done
((${#SERVERS[@]} > 0)) || die "BENCH_SERVERS is empty"

for tool in fio python3; do
	command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
fio --enghelp 2>/dev/null | grep -qw nbd || die "this fio has no nbd ioengine"

CLK_TCK=$(getconf CLK_TCK)
EXPORT=bench
READY_TIMEOUT=15   # seconds a server gets to start answering

mkdir -p "$WORK" || die "cannot create $WORK"
TMP=$(mktemp -d "$WORK/tmp.XXXXXX") || die "cannot create a temp dir under $WORK"

declare -A PID=() PORT=() NA=() DIED=() DETAIL=() CACHE=() CMDLINE=() BASE_CHILDREN=()
STARTED=()        # every server PID we started (or nbd-server's daemon PID)
PARTIAL_IMAGE=""  # image being written, removed if we are interrupted
FIO_PID=""        # the measured fio run in flight
BL_RUN=""         # bootlinkd's runtime tree

# ---------------------------------------------------------------- process helpers

# alive PID: the process exists and is not a zombie.
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}

# children PID: its direct child processes, one per line.
children() { pgrep -P "$1" 2>/dev/null || true; }

# stop PID: SIGTERM, up to 5 s, then SIGKILL; its child processes too.
stop_pid() {
	local p=$1 c i
	alive "$p" || return 0
	local kids
	mapfile -t kids < <(children "$p")
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		alive "$p" || break
		sleep 0.1
	done
	alive "$p" && kill -KILL "$p" 2>/dev/null
	for c in "${kids[@]}"; do
		alive "$c" && kill -KILL "$c" 2>/dev/null
	done
	return 0
}

cleanup() {
	local p
	[[ -n $FIO_PID ]] && alive "$FIO_PID" && kill -TERM "$FIO_PID" 2>/dev/null
	for p in "${STARTED[@]}"; do
		stop_pid "$p"
	done
	[[ -n $PARTIAL_IMAGE ]] && rm -f "$PARTIAL_IMAGE"
	if [[ -d $TMP ]]; then
		# keep the last run's server and fio logs for a post-mortem
		rm -rf "$WORK/last-logs"
		mkdir -p "$WORK/last-logs"
		cp "$TMP"/*.log "$WORK/last-logs/" 2>/dev/null
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu_ticks PID: utime+stime of the process (all its threads) plus the
# cutime+cstime of children it has reaped, plus utime+stime of its live
# descendants. nbd-server forks a process per connection; the others are
# single processes.
cpu_ticks() {
	local p=$1 s f total=0 c
	s=$(cat "/proc/$p/stat" 2>/dev/null) || { echo -; return; }
	s=${s##*) }
	read -ra f <<<"$s"
	# f[0] is field 3 (state): utime=14 stime=15 cutime=16 cstime=17
	total=$((f[11] + f[12] + f[13] + f[14]))
	for c in $(children "$p"); do
		s=$(cpu_ticks "$c")
		[[ $s == - ]] || total=$((total + s))
	done
	echo "$total"
}

# settle PID: wait (up to 3 s) until the server has no more child processes
# than it had when idle, so no per-connection child is being reaped while we
# read the counters.
settle() {
	local p=$1 i n base
	base=${BASE_CHILDREN[$1]:-0}
	for ((i = 0; i < 30; i++)); do
		n=$(children "$p" | wc -l)
		((n <= base)) && return 0
		sleep 0.1
	done
	return 0
}

# free_port: a TCP port on 127.0.0.1 that nothing is bound to right now and
# that this run has not handed out yet.
declare -A USED_PORTS=()
free_port() {
	local p i
	for ((i = 0; i < 20; i++)); do
		p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])') || return 1
		[[ -z ${USED_PORTS[$p]:-} ]] && { USED_PORTS[$p]=1; echo "$p"; return 0; }
	done
	return 1
}

# why_dead NAME PID: sets WHY to how a dead server went away: its exit status
# (when it was our child) and the most telling line of its log. Not in a
# $(...) subshell: only this shell can collect its children's status.
WHY=""
why_dead() {
	local n=$1 p=$2 st line
	wait "$p" 2>/dev/null
	st=$?
	if ((st == 127)); then
		WHY="exit status unknown (not our child)"
	elif ((st > 128)); then
		WHY="killed by signal $((st - 128))"
	else
		WHY="exit status $st"
	fi
	line=$(grep -iE 'error|fatal|abort|assert|sanitizer|signal|terminated|killed|shutting down' "$TMP/$n.log" 2>/dev/null |
		tail -n 1 | cut -c1-160)
	WHY+="; log: ${line:-$(last_line "$TMP/$n.log")}"
}

# last_line FILE: the last non-empty line of a log, for an n/a reason.
last_line() {
	local l
	l=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr -d '\r' | cut -c1-160)
	echo "${l:-no output}"
}

# first_error FILE: the first line of a log that looks like the cause of a
# failed start (later lines are often just "start-up failed"), else the last.
first_error() {
	local l
	l=$(grep -iE -m 1 'error|fatal|fail|cannot|can.t|denied|invalid|unknown|usage|abort' "$1" 2>/dev/null |
		tr -d '\r' | cut -c1-160)
	echo "${l:-$(last_line "$1")}"
}

# probe PORT: an NBD handshake for our export answers with the image's size.
probe() {
	local size
	if command -v nbdinfo >/dev/null; then
		size=$(timeout 5 nbdinfo --size "nbd://127.0.0.1:$1/$EXPORT" 2>/dev/null) || return 1
		[[ $size == "$IMAGE_BYTES" ]]
	else
		timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
	fi
}

# wait_ready NAME PID PORT: bounded wait until the server answers on PORT.
wait_ready() {
	local name=$1 p=$2 port=$3 i
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		if ! alive "$p"; then
			NA[$name]="exited at start: $(first_error "$TMP/$name.log")"
			return 1
		fi
		probe "$port" && return 0
		sleep 0.1
	done
	NA[$name]="not answering on 127.0.0.1:$port after ${READY_TIMEOUT} s"
	stop_pid "$p"
	return 1
}

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

q() { printf '%q ' "$@" | sed 's/ $//'; }

# ---------------------------------------------------------------- servers
# Each start_* sets PID/PORT/DETAIL/CACHE/CMDLINE for its name, or NA[name]:
# the reason, written "short: details" (the table cell shows the short part).

start_bootlinkd() {
	local n=bootlinkd d="$TMP/bootlinkd" i v p
	if [[ ! -x $BUILD/bootlinkd ]]; then
		NA[$n]="not built: no $BUILD/bootlinkd"
		return 1
	fi
	if [[ ! -x $BUILD/bootlinkctl ]]; then
		NA[$n]="not built: no $BUILD/bootlinkctl to register the image"
		return 1
	fi
	mkdir -p "$d/listen" "$d/paths" "$d/db"
	echo 127.0.0.1:0 >"$d/listen/nbd"
	echo db/bootlink.db >"$d/paths/db"
	echo run >"$d/paths/run"
	echo 2 >"$d/workers"
	# NBD only, on loopback only: every other listener off. The other
	# protocols' defaults (iSCSI 0.0.0.0:3260, HTTP 0.0.0.0:80, ...) are
	# wildcard addresses that a test's bootlinkd may hold. The listen/* keys
	# are read from the binary itself (its config schema), so a protocol
	# added later is turned off too.
	local key lkeys=""
	for key in $(grep -aoE 'listen/[a-z0-9_]+' "$BUILD/bootlinkd" | sort -u) listen/iscsi listen/http; do
		[[ $key == listen/nbd || -e $d/$key ]] && continue
		echo off >"$d/$key"
		lkeys+=" $key=off"
	done
	local kv extra=""
	for kv in $BOOTLINKD_SET; do
		key=${kv%%=*}
		[[ $kv == *=* && $key =~ ^[a-z0-9_]+(/[a-z0-9_]+)*$ ]] ||
			{ NA[$n]="BENCH_BOOTLINKD_SET: '$kv' is not KEY=VALUE"; return 1; }
		mkdir -p "$d/$(dirname "$key")"
		printf '%s\n' "${kv#*=}" >"$d/$key"
		extra+=" $kv"
	done
	if ! "$BUILD/bootlinkctl" -c "$d" image add "$EXPORT" "$IMAGE" >"$TMP/bootlinkctl.log" 2>&1; then
		NA[$n]="bootlinkctl image add failed: $(first_error "$TMP/bootlinkctl.log")"
		return 1
	fi
	CMDLINE[$n]="$(q "$BUILD/bootlinkd" -c "$d")  (config: listen/nbd=127.0.0.1:0 paths/db=db/bootlink.db paths/run=run workers=2$lkeys$extra; bootlinkctl -c DIR image add $EXPORT IMAGE)"
	"$BUILD/bootlinkd" -c "$d" >"$TMP/$n.log" 2>&1 &
	p=$!
	STARTED+=("$p")
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		alive "$p" || { NA[$n]="exited at start: $(first_error "$TMP/$n.log")"; return 1; }
		[[ -e $d/run/ready && -s $d/run/listen/nbd ]] && break
		sleep 0.1
	done
	if [[ ! -e $d/run/ready ]]; then
		NA[$n]="no $d/run/ready after ${READY_TIMEOUT} s"
		stop_pid "$p"
		return 1
	fi
	v=$(tr -d ' \n' <"$d/run/listen/nbd")
	PORT[$n]=${v##*:}
	[[ ${PORT[$n]} =~ ^[0-9]+$ ]] || { NA[$n]="run/listen/nbd says '$v', no port"; stop_pid "$p"; return 1; }
	wait_ready "$n" "$p" "${PORT[$n]}" || return 1
	PID[$n]=$p
	BL_RUN=$d/run
	DETAIL[$n]="$BUILD/bootlinkd, tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), 2 workers"
	CACHE[$n]="its own business: O_DIRECT reads via io_uring into its own block cache (figures under Cache state)"
}

start_nbdkit() {
	local n=nbdkit port p
	command -v nbdkit >/dev/null || { NA[$n]="nbdkit not installed"; return 1; }
	port=$(free_port) || { NA[$n]="no free port"; return 1; }
	local cmd=(nbdkit -f -r -i 127.0.0.1 -p "$port" -e "$EXPORT" -t 16 --exit-with-parent file "$IMAGE")
	CMDLINE[$n]=$(q "${cmd[@]}")
	"${cmd[@]}" >"$TMP/$n.log" 2>&1 &
	p=$!
	STARTED+=("$p")
	wait_ready "$n" "$p" "$port" || return 1
	PID[$n]=$p PORT[$n]=$port
	DETAIL[$n]="nbdkit $(pkg_version nbdkit), file plugin, 16 threads"
	CACHE[$n]="page cache (buffered pread)"
}

start_nbd_server() {
	local n=nbd-server port p i conf="$TMP/nbd-server.conf" pidf="$TMP/nbd-server.pid"
	command -v nbd-server >/dev/null || { NA[$n]="nbd-server not installed"; return 1; }
	port=$(free_port) || { NA[$n]="no free port"; return 1; }
	echo 127.0.0.1 >"$TMP/nbd-server.allow"
	cat >"$conf" <<-EOF
		[generic]
			port = $port
			listenaddr = 127.0.0.1
		[$EXPORT]
			exportname = $IMAGE
			readonly = true
			authfile = $TMP/nbd-server.allow
	EOF
	# Without -d it forks into the background (with -d it would serve a
	# single connection); its PID comes from the pid file.
	local cmd=(nbd-server -C "$conf" -p "$pidf")
	CMDLINE[$n]="$(q "${cmd[@]}")  (config: [generic] port=$port listenaddr=127.0.0.1; [$EXPORT] exportname=IMAGE readonly=true)"
	if ! "${cmd[@]}" >"$TMP/$n.log" 2>&1; then
		NA[$n]="exited at start: $(first_error "$TMP/$n.log")"
		return 1
	fi
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		[[ -s $pidf ]] && break
		sleep 0.1
	done
	p=$(tr -dc 0-9 <"$pidf" 2>/dev/null)
	[[ -n $p ]] || { NA[$n]="no pid file after ${READY_TIMEOUT} s: $(last_line "$TMP/$n.log")"; return 1; }
	STARTED+=("$p")
	wait_ready "$n" "$p" "$port" || return 1
	PID[$n]=$p PORT[$n]=$port
	DETAIL[$n]="nbd-server $(pkg_version nbd-server), a process per connection"
	CACHE[$n]="page cache (buffered reads)"
}

start_qemu_nbd() {
	local n=qemu-nbd port p aio
	command -v qemu-nbd >/dev/null || { NA[$n]="qemu-nbd not installed"; return 1; }
	for aio in io_uring native threads; do
		# native AIO needs O_DIRECT; threads is the fallback for a buffered cache mode
		[[ $aio == native && $QEMU_CACHE != none && $QEMU_CACHE != directsync ]] && continue
		[[ $aio == threads && ($QEMU_CACHE == none || $QEMU_CACHE == directsync) ]] && continue
		port=$(free_port) || { NA[$n]="no free port"; return 1; }
		local cmd=(qemu-nbd -f raw -r -x "$EXPORT" -b 127.0.0.1 -p "$port" --persistent -e 16
			"--cache=$QEMU_CACHE" "--aio=$aio" "$IMAGE")
		CMDLINE[$n]=$(q "${cmd[@]}")
		"${cmd[@]}" >"$TMP/$n.log" 2>&1 &
		p=$!
		STARTED+=("$p")
		unset 'NA[$n]'
		if wait_ready "$n" "$p" "$port"; then
			PID[$n]=$p PORT[$n]=$port
			DETAIL[$n]="qemu-nbd $(pkg_version qemu-utils), --aio=$aio, 16 clients"
			case $QEMU_CACHE in
			none | directsync) CACHE[$n]="O_DIRECT (--cache=$QEMU_CACHE): bypasses the page cache" ;;
			*) CACHE[$n]="page cache (--cache=$QEMU_CACHE)" ;;
			esac
			return 0
		fi
		say "qemu-nbd --aio=$aio did not start (${NA[$n]}); trying the next AIO mode"
	done
	return 1
}

# ---------------------------------------------------------------- rows

ROW_IDS=(seq1m rand4k rand4k-2j)
declare -A ROW_TITLE=(
	[seq1m]="1 MiB seq read, QD 8, 1 job"
	[rand4k]="4 KiB random read, QD 32, 1 job"
	[rand4k-2j]="4 KiB random read, QD 32, 2 jobs"
)
declare -A ROW_UNIT=([seq1m]=MiB/s [rand4k]=IOPS [rand4k-2j]=IOPS)
declare -A ROW_ARGS=(
	[seq1m]="--rw=read --bs=1M --iodepth=8 --numjobs=1"
	[rand4k]="--rw=randread --bs=4k --iodepth=32 --numjobs=1 --norandommap"
	[rand4k-2j]="--rw=randread --bs=4k --iodepth=32 --numjobs=2 --norandommap"
)

# fio_cmd ROW PORT JSON: the exact command line of one measured run.
fio_cmd() {
	local row=$1 port=$2 json=$3
	local args
	read -ra args <<<"${ROW_ARGS[$row]}"
	FIO=(fio "--name=$row" --ioengine=nbd "--uri=nbd://127.0.0.1:$port/$EXPORT"
		"${args[@]}" --group_reporting --time_based "--runtime=$SECS"
		"--ramp_time=$RAMP" --output-format=json "--output=$json")
}

# One untimed sequential pass over the whole image.
warmup_cmd() {
	FIO=(fio --name=warmup --ioengine=nbd "--uri=nbd://127.0.0.1:$1/$EXPORT"
		--rw=read --bs=1M --iodepth=8 --numjobs=1 --output-format=json "--output=$2")
}

# run_one ROW SERVER RUN: one measured run; appends a line to results.tsv.
run_one() {
	local row=$1 n=$2 run=$3 p=${PID[$2]} json="$TMP/$1.$2.$3.json" flog="$TMP/fio.$1.$2.$3.log"
	local c0 c1 rc sum ticks
	if ! alive "$p"; then
		if [[ -z ${DIED[$n]:-} ]]; then
			why_dead "$n" "$p"
			DIED[$n]="died before $row run $run: $WHY"
		fi
		printf '%s\t%s\t%s\tfail\t\t\t\t\t%s\n' "$row" "$n" "$run" "server died" >>"$TMP/results.tsv"
		say "  $row $n run $run: skipped, ${DIED[$n]}"
		return
	fi
	settle "$p"
	fio_cmd "$row" "${PORT[$n]}" "$json"
	"${FIO[@]}" >"$flog" 2>&1 &
	FIO_PID=$!
	((RAMP > 0)) && sleep "$RAMP"
	c0=$(cpu_ticks "$p")
	wait "$FIO_PID"
	rc=$?
	FIO_PID=""
	settle "$p"
	c1=$(cpu_ticks "$p")
	ticks=-
	[[ $c0 != - && $c1 != - ]] && ticks=$((c1 - c0))
	if ((rc == 0)) && sum=$(python3 "$BENCH/fio_summary.py" "$json" 2>>"$flog"); then
		local io iops mib _runtime _p50 p99 ccores value
		IFS=$'\t' read -r io iops mib _runtime _p50 p99 ccores <<<"$sum"
		[[ ${ROW_UNIT[$row]} == MiB/s ]] && value=$mib || value=$iops
		printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t\t%s\n' "$row" "$n" "$run" "$value" "$io" "$ticks" "$p99" "$ccores" >>"$TMP/results.tsv"
		say "  $row $n run $run: $value ${ROW_UNIT[$row]}"
	else
		local why
		why="fio failed (rc $rc): $(last_line "$flog")"
		if ! alive "$p"; then
			why_dead "$n" "$p"
			DIED[$n]="died during $row run $run: $WHY"
			why="server died"
		fi
		printf '%s\t%s\t%s\tfail\t\t\t\t\t%s\n' "$row" "$n" "$run" "$why" >>"$TMP/results.tsv"
		say "  $row $n run $run: $why"
	fi
}

# ---------------------------------------------------------------- image

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

residency() {
	local b
	b=$(fincore -nb -o RES "$IMAGE" 2>/dev/null | tr -d ' ')
	[[ $b =~ ^[0-9]+$ ]] || { echo "?"; return; }
	echo "$((b * 100 / IMAGE_BYTES)) %"
}

# ---------------------------------------------------------------- go

meta() { printf '%s\t%s\n' "$1" "$2" >>"$TMP/meta.tsv"; }
: >"$TMP/results.tsv"
: >"$TMP/servers.tsv"
: >"$TMP/rows.tsv"

meta date "$(date '+%Y-%m-%d %H:%M:%S %Z')"
meta mode "$MODE"
meta runs "$RUNS"
meta seconds "$SECS"
meta ramp "$RAMP"
meta image "${IMAGE_MB} MiB of random data (no holes), $IMAGE"
meta clk_tck "$CLK_TCK"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta residency_start "$(residency)"
meta nproc "$(nproc)"
meta cpu "$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
meta mem "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
meta kernel "$(uname -srm)"
# The congestion control every server's sockets use: the machine's, or that of
# BENCH_TCP_CC's namespace; bbr paces every flow with a timer, which costs CPU
# in a VM (docs/bench.md).
meta tcp "congestion control $(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo '?'), qdisc on lo: $(tc qdisc show dev lo 2>/dev/null | awk '{print $2; exit}')${BENCH_TCP_CC_NS:+ (BENCH_TCP_CC: every server in network namespace $BENCH_TCP_CC_NS)}"
meta disk "$(df -hT "$WORK" | tail -n 1 | tr -s ' ')"
src=$(df --output=source "$WORK" | tail -n 1)
bd=$src
if [[ -b $src ]]; then
	bd+=", size $(lsblk -ndo SIZE "$src" 2>/dev/null | tr -d ' ')"
	model=$(lsblk -ndo MODEL "$src" 2>/dev/null | sed 's/ *$//')
	bd+=", model ${model:-not reported}"
	bd+=", rotational $(lsblk -ndo ROTA "$src" 2>/dev/null | tr -d ' ')"
	[[ $src == /dev/vd* ]] && bd+=" (virtio: a virtual disk, the host may cache it)"
fi
meta blockdev "$bd"
meta commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
for pkg in fio nbdkit nbd-server qemu-utils libnbd-bin liburing2; do
	meta "pkg:$pkg" "$(pkg_version "$pkg")"
done

say "mode $MODE: ${RUNS} run(s) x ${SECS} s (+${RAMP} s ramp) per row and server; image ${IMAGE_MB} MiB"
for n in "${SERVERS[@]}"; do
	case $n in
	bootlinkd) start_bootlinkd ;;
	nbdkit) start_nbdkit ;;
	nbd-server) start_nbd_server ;;
	qemu-nbd) start_qemu_nbd ;;
	esac
	if [[ -n ${PID[$n]:-} ]]; then
		say "$n: listening on 127.0.0.1:${PORT[$n]} (pid ${PID[$n]})"
	else
		say "$n: n/a (${NA[$n]:-failed to start})"
		: "${NA[$n]:=failed to start}"
	fi
done

if [[ -z ${PID[bootlinkd]:-} ]] && [[ " ${SERVERS[*]} " == *" bootlinkd "* ]]; then
	meta peers_only "bootlinkd is n/a (${NA[bootlinkd]}), so only the peers ran and there are no ratios."
fi

# Warm-up: one untimed sequential pass through each server. For the peers
# that read through the page cache this leaves the whole image cached.
warmup_cmd PORT RESULT.json
meta warmup_cmd "$(q "${FIO[@]}")"
LIVE=()
for n in "${SERVERS[@]}"; do
	[[ -n ${PID[$n]:-} ]] || continue
	say "$n: warm-up pass"
	warmup_cmd "${PORT[$n]}" "$TMP/warmup.$n.json"
	if "${FIO[@]}" >"$TMP/fio.warmup.$n.log" 2>&1 &&
		sum=$(python3 "$BENCH/fio_summary.py" "$TMP/warmup.$n.json" 2>>"$TMP/fio.warmup.$n.log"); then
		say "$n: warm-up read $(cut -f3 <<<"$sum") MiB/s"
		settle "${PID[$n]}"
		BASE_CHILDREN[${PID[$n]}]=$(children "${PID[$n]}" | wc -l)
		LIVE+=("$n")
	else
		NA[$n]="warm-up failed: $(last_line "$TMP/fio.warmup.$n.log")"
		alive "${PID[$n]}" || NA[$n]="died in warm-up: $(last_line "$TMP/$n.log")"
		say "$n: n/a (${NA[$n]})"
		stop_pid "${PID[$n]}"
		unset 'PID[$n]'
	fi
done

for row in "${ROW_IDS[@]}"; do
	fio_cmd "$row" PORT RESULT.json
	printf '%s\t%s\t%s\t%s\n' "$row" "${ROW_TITLE[$row]}" "${ROW_UNIT[$row]}" "$(q "${FIO[@]}")" >>"$TMP/rows.tsv"
done

if ((${#LIVE[@]} > 0)); then
	total=$((${#ROW_IDS[@]} * RUNS * ${#LIVE[@]} * (SECS + RAMP)))
	say "measuring: ${#LIVE[@]} server(s), about $total s"
fi
for row in "${ROW_IDS[@]}"; do
	for ((run = 1; run <= RUNS; run++)); do
		# rotate the order each run so no server always goes first
		for ((k = 0; k < ${#LIVE[@]}; k++)); do
			n=${LIVE[$(((k + run - 1) % ${#LIVE[@]}))]}
			[[ -n ${PID[$n]:-} ]] && run_one "$row" "$n" "$run"
		done
	done
done

meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta residency_end "$(residency)"
peer_cache=""
for n in "${SERVERS[@]}"; do
	[[ $n != bootlinkd && -n ${CACHE[$n]:-} && -z ${NA[$n]:-} ]] && peer_cache+="; $n: ${CACHE[$n]}"
done
case $QEMU_CACHE in none | directsync)
	peer_cache+=" (BENCH_QEMU_CACHE=writeback makes qemu-nbd read through the page cache too)" ;;
esac
meta cache_note "Every server had one untimed sequential pass over the whole image before measuring, so the image is in the page cache for the peers that read through it${peer_cache}. Whether bootlinkd uses O_DIRECT is its own business: it is measured as it ships."

for n in "${SERVERS[@]}"; do
	if [[ -n ${PID[$n]:-} && -z ${NA[$n]:-} ]]; then
		printf '%s\tok\t%s\t%s\t%s\n' "$n" "${DETAIL[$n]}${DIED[$n]:+; ${DIED[$n]}}" "${CACHE[$n]}" "${CMDLINE[$n]}" >>"$TMP/servers.tsv"
	else
		printf '%s\tna\t%s\t\t%s\n' "$n" "${NA[$n]:-failed}" "${CMDLINE[$n]:-}" >>"$TMP/servers.tsv"
	fi
done

# bootlinkd's own view of the run (runtime tree), for the cache-state notes.
rt() {
	local v
	v=$(tr -d ' \n' <"$BL_RUN/$1" 2>/dev/null)
	[[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}
if [[ -n $BL_RUN && -n ${PID[bootlinkd]:-} ]] && alive "${PID[bootlinkd]}"; then
	hits=$(rt cache/hits) misses=$(rt cache/misses)
	rate="-"
	((hits + misses > 0)) && rate="$((hits * 100 / (hits + misses))) %"
	meta bootlinkd_stats "block cache $(($(rt cache/capacity_bytes) / 1048576)) MiB in $(($(rt cache/block_size) / 1024)) KiB blocks: $hits hits, $misses misses (hit rate $rate), $(rt cache/evictions) evictions; image '$EXPORT': $(($(rt images/$EXPORT/bytes_read) / 1048576)) MiB served, $(rt images/$EXPORT/disk_reads) disk reads, $(($(rt images/$EXPORT/disk_bytes) / 1048576)) MiB read from disk"
fi

# Stop the servers before the report so nothing is left behind if it fails.
for p in "${STARTED[@]}"; do stop_pid "$p"; done

# Boot-storm rows (bench/storm.sh, its own servers; records into $TMP for report.py). BENCH_STORM=0 skips them.
[[ ${BENCH_STORM:-1} == 0 ]] || "$BENCH/storm.sh" --into "$TMP" || say "storm: bench/storm.sh exited with status $?"
# iSCSI rows and conformance counts against tgtd (bench/iscsi.sh, its own targets). BENCH_ISCSI=0 skips them.
[[ ${BENCH_ISCSI:-1} == 0 ]] || "$BENCH/iscsi.sh" --into "$TMP" || say "iscsi: bench/iscsi.sh exited with status $?"

# How close to the machine's limits, and the cost figures (bench/limits.sh). BENCH_LIMITS=0 skips them.
[[ ${BENCH_LIMITS:-1} == 0 ]] || BUILD=$BUILD "$BENCH/limits.sh" --into "$TMP" "$IMAGE" || say "limits: bench/limits.sh exited with status $?"

python3 "$BENCH/report.py" "$TMP" "$OUT" || die "report.py failed"
grep -q $'\tok\t' "$TMP/results.tsv" || { say "no server produced a figure"; exit 1; }
exit 0
