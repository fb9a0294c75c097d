#!/bin/bash
# storm.sh — the boot-storm rows: N clients boot at once from one golden image,
# each with its own copy-on-write view of it, against bootlinkd and the peers.
#
#   bench/storm.sh                   full: 32 and 128 clients, cold and warm, STORM_RUNS runs
#   bench/storm.sh --smoke           smoke test, seconds: 4 clients, 8 MiB each, one run
#   BENCH_QUICK=1 bench/storm.sh     the same as --smoke
#   bench/storm.sh --into DIR        called by bench/run.sh: records go into DIR
#                                    (its report.py adds the storm section)
#
# Every client replays the same synthetic Windows-like boot trace (bench/storm.c:
# ~STORM_MB MiB of reads, ~5 % writes, its own order and its own writes), all
# clients at once from one process over libnbd. Per (clients, server, run):
# the server is started afresh with nothing cached (page cache dropped, when
# the kernel lets us), the storm runs ("cold"), and then runs again at once on
# the same server ("warm"). Recorded: total time, per-client p50/p99, bytes the
# server read from disk, server CPU. docs/bench.md, "Boot storm", has the rest.
#
# Environment (defaults in brackets; smoke defaults second):
#   BUILD            where bootlinkd/bootlinkctl are                  [build]
#   STORM_CLIENTS    client counts, one row pair each                 ["32 128" | 4]
#   STORM_MB         MiB each client reads                            [400 | 8]
#   STORM_IMAGE_MB   image size, MiB of seeded random data            [4096 | 256]
#   STORM_RUNS       runs per row and server                          [BENCH_RUNS or 3 | 1]
#   STORM_QD         requests in flight per client                    [8]
#   STORM_SEED       trace seed                                       [1]
#   STORM_CACHE_MB   bootlinkd cache/size_mb                          [2048 | 256]
#   STORM_SERVERS    [bootlinkd nbd-server nbdkit], or those of BENCH_SERVERS
#   STORM_BOOTLINKD_SET  extra bootlinkd settings "KEY=VALUE ..." (after BENCH_BOOTLINKD_SET)
#   STORM_TIMEOUT    seconds one storm may take                       [900]
#   STORM_NBD_THREADS  nbd-server max_threads      [its default, 4; 1 avoids its copy-on-write race]
#   STORM_OUT        report  [bench/results/storm.md | bench/.work/storm-smoke.md]
#
# Exit status: 0 when at least one server produced figures and bootlinkd (if
# it ran) answered every request with the right data; 1 otherwise. Figures
# never decide it.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/.work
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

say() { printf 'storm: [%3ds] %s\n' "$SECONDS" "$*" >&2; }
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
	MODE=smoke; d_clients=4; d_mb=8; d_img=256; d_runs=1; d_cache=256; d_out=$WORK/storm-smoke.md
else
	MODE=full; d_clients="32 128"; d_mb=400; d_img=4096; d_runs=${BENCH_RUNS:-3}; d_cache=2048
	d_out=$BENCH/results/storm.md
fi
read -ra CLIENTS <<<"${STORM_CLIENTS:-$d_clients}"
MB=${STORM_MB:-$d_mb}
IMAGE_MB=${STORM_IMAGE_MB:-$d_img}
RUNS=${STORM_RUNS:-$d_runs}
QD=${STORM_QD:-8}
SEED=${STORM_SEED:-1}
CACHE_MB=${STORM_CACHE_MB:-$d_cache}
TIMEOUT=${STORM_TIMEOUT:-900}
NBD_THREADS=${STORM_NBD_THREADS:-}
OUT=${STORM_OUT:-$d_out}
[[ $OUT == /* ]] || OUT=$ROOT/$OUT
for v in MB IMAGE_MB RUNS QD SEED CACHE_MB TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v='${!v}' is not a whole number"
done
[[ -z $NBD_THREADS || $NBD_THREADS =~ ^[1-9][0-9]*$ ]] || die "STORM_NBD_THREADS='$NBD_THREADS' is not a whole number > 0"
((MB > 0 && IMAGE_MB >= 64 && RUNS > 0 && QD > 0)) || die "STORM_MB, STORM_RUNS, STORM_QD must be > 0, STORM_IMAGE_MB >= 64"
MAXC=0
for n in "${CLIENTS[@]}"; do
	[[ $n =~ ^[0-9]+$ ]] && ((n > 0 && n <= 4096)) || die "STORM_CLIENTS: '$n' is not 1..4096"
	((n > MAXC)) && MAXC=$n
done
((${#CLIENTS[@]})) || die "STORM_CLIENTS is empty"
if [[ -n ${STORM_SERVERS:-} ]]; then
	read -ra SERVERS <<<"$STORM_SERVERS"
else
	SERVERS=()
	for n in bootlinkd nbd-server nbdkit; do
		[[ -z ${BENCH_SERVERS:-} || " $BENCH_SERVERS " == *" $n "* ]] && SERVERS+=("$n")
	done
fi
for n in "${SERVERS[@]}"; do
	case $n in bootlinkd | nbd-server | nbdkit) ;;
	*) die "STORM_SERVERS: unknown server '$n' (known: bootlinkd nbd-server nbdkit)" ;;
	esac
done
((${#SERVERS[@]})) || { say "no storm servers selected (BENCH_SERVERS=${BENCH_SERVERS:-})"; exit 0; }

mkdir -p "$WORK"
TMP=$(mktemp -d "$WORK/storm.XXXXXX") || die "cannot create a temp dir under $WORK"
REC=${INTO:-$TMP}
mkdir -p "$REC" || die "cannot create $REC"
: >"$REC/storm.tsv"
: >"$REC/storm-meta.tsv"
: >"$REC/storm-servers.tsv"

declare -A PID=() PORT=() NA=() CMDLINE=() DETAIL=()
STARTED=()
STORM_PID=""
PARTIAL_IMAGE=""
BL_DIR=$TMP/bootlinkd
# The runtime tree on tmpfs, as it ships (paths/run = /run/bootlink, a tmpfs on
# Debian; this VM's /run is not one, hence /dev/shm). On a disk filesystem its
# refreshes (a file created and renamed per changed counter) cost a storm of
# 128 clients a quarter of the daemon's CPU in ext4 inode allocation.
BL_RUN=$(mktemp -d /dev/shm/bootlink-storm.XXXXXX 2>/dev/null) || BL_RUN=$BL_DIR/run

alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s:0:1} != Z ]]
}
children() { pgrep -P "$1" 2>/dev/null || true; }
stop_pid() {
	local p=$1 c i kids
	alive "$p" || return 0
	mapfile -t kids < <(children "$p")
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		alive "$p" || break
		sleep 0.1
	done
	alive "$p" && kill -KILL "$p" 2>/dev/null
	for c in "${kids[@]}"; do
		alive "$c" && kill -KILL "$c" 2>/dev/null
	done
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	local p
	[[ -n $STORM_PID ]] && alive "$STORM_PID" && kill -TERM "$STORM_PID" 2>/dev/null
	for p in "${STARTED[@]}"; do stop_pid "$p"; done
	[[ -n $PARTIAL_IMAGE ]] && rm -f "$PARTIAL_IMAGE"
	[[ $BL_RUN == /dev/shm/* ]] && rm -rf "$BL_RUN"
	if [[ -d $TMP ]]; then
		rm -rf "$WORK/last-storm-logs"
		mkdir -p "$WORK/last-storm-logs"
		cp "$TMP"/*.log "$TMP"/*.json "$TMP"/*.tsv "$WORK/last-storm-logs/" 2>/dev/null
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

meta() { printf '%s\t%s\n' "$1" "$2" >>"$REC/storm-meta.tsv"; }
q() { printf '%q ' "$@" | sed 's/ $//'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
last_line() {
	local l
	l=$(grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr -d '\r' | cut -c1-160)
	echo "${l:-no output}"
}
first_error() {
	local l
	l=$(grep -iE -m 1 'error|fatal|fail|cannot|can.t|denied|invalid|unknown|usage|abort' "$1" 2>/dev/null |
		tr -d '\r' | cut -c1-160)
	echo "${l:-$(last_line "$1")}"
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ticks PID / rbytes PID: utime+stime (clock ticks) / read_bytes from
# /proc/PID/io, each including reaped children (the kernel adds an exited
# child's to its parent's when the parent waits for it) and live ones
# (nbd-server forks a process per connection).
ticks() {
	local p=$1 s f total c
	s=$(cat "/proc/$p/stat" 2>/dev/null) || { echo -; return; }
	s=${s##*) }
	read -ra f <<<"$s"
	total=$((f[11] + f[12] + f[13] + f[14]))
	for c in $(children "$p"); do
		s=$(ticks "$c")
		[[ $s == - ]] || total=$((total + s))
	done
	echo "$total"
}
rbytes() {
	local p=$1 v c s
	v=$(awk '/^read_bytes:/ {print $2}' "/proc/$p/io" 2>/dev/null)
	[[ $v =~ ^[0-9]+$ ]] || { echo -; return; }
	for c in $(children "$p"); do
		s=$(rbytes "$c")
		[[ $s == - ]] || v=$((v + s))
	done
	echo "$v"
}
# settle PID: wait (up to 10 s) until the server has no per-connection child
# processes left, so their counters have been added to the parent's.
settle() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -z $(children "$1") ]] && return 0
		sleep 0.1
	done
}
# bl_fresh: wait until bootlinkd's runtime tree holds a snapshot taken after
# this call (two refreshes of cache/capacity_bytes).
bl_fresh() {
	local i k
	for k in 1 2; do
		touch "$TMP/.mark"
		for ((i = 0; i < 100; i++)); do
			[[ $BL_RUN/cache/capacity_bytes -nt $TMP/.mark ]] && break
			sleep 0.05
		done
	done
}
rt() {
	local v
	v=$(tr -d ' \n' <"$BL_RUN/$1" 2>/dev/null)
	[[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}

# probe PORT: the image export answers a handshake with the image's size.
probe() {
	local size
	size=$(timeout 5 nbdinfo --size "nbd://127.0.0.1:$1/$2" 2>/dev/null) || return 1
	[[ $size == "$IMAGE_BYTES" ]]
}
wait_ready() { # NAME PID PORT EXPORT
	local i
	for ((i = 0; i < 200; i++)); do
		alive "$2" || { NA[$1]="exited at start: $(first_error "$TMP/$1.log")"; return 1; }
		probe "$3" "$4" && return 0
		sleep 0.1
	done
	NA[$1]="not answering on 127.0.0.1:$3 after 20 s"
	stop_pid "$2"
	return 1
}

# ---------------------------------------------------------------- build, image

for tool in cc pkg-config python3 nbdinfo; do
	command -v "$tool" >/dev/null || die "$tool is not installed (make deps installs it)"
done
pkg-config --exists libnbd || die "libnbd-dev is not installed (make deps installs it)"
STORM=$WORK/storm
if [[ ! -x $STORM || $BENCH/storm.c -nt $STORM ]]; then
	say "building $STORM"
	# shellcheck disable=SC2046 # pkg-config output is a list of flags
	cc -O2 -Wall -o "$STORM.tmp" "$BENCH/storm.c" $(pkg-config --cflags --libs libnbd) -lm ||
		die "cannot build bench/storm.c"
	mv "$STORM.tmp" "$STORM"
fi

IMAGE_BYTES=$((IMAGE_MB * 1048576))
IMAGE=$WORK/storm-${IMAGE_MB}M.raw
if [[ ! -f $IMAGE || $(stat -c %s "$IMAGE") != "$IMAGE_BYTES" ]]; then
	avail=$(df -B1 --output=avail "$WORK" | tail -n 1 | tr -d ' ')
	((avail > IMAGE_BYTES + (2 << 30))) || die "not enough space under $WORK for a ${IMAGE_MB} MiB image"
	say "creating $IMAGE (${IMAGE_MB} MiB of seeded random data, kept for later runs)"
	PARTIAL_IMAGE=$WORK/storm-image.partial
	"$STORM" mkimage "$PARTIAL_IMAGE" "$IMAGE_MB" || die "cannot write $PARTIAL_IMAGE"
	mv "$PARTIAL_IMAGE" "$IMAGE" || die "cannot rename the image into place"
	PARTIAL_IMAGE=""
fi

# Can we drop the page cache? (root, and a kernel that lets this namespace.)
DROP=0
if sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	DROP=1
	meta drop_caches "yes: before every cold storm (sync; echo 3 > /proc/sys/vm/drop_caches)"
else
	meta drop_caches "no: /proc/sys/vm/drop_caches is not writable here, so the peers' cold storms may find the image in the page cache"
fi
drop_caches() { ((DROP)) && sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; }

# ---------------------------------------------------------------- servers

mac() { printf '52:54:00:5b:%02x:%02x' $(($1 >> 8)) $(($1 & 255)); }

# bootlinkd's config tree, database, image and clients, made once.
setup_bootlinkd() {
	local d=$BL_DIR i key kv
	mkdir -p "$d/db"
	set_conf() { mkdir -p "$d/$(dirname "$1")" && printf '%s\n' "$2" >"$d/$1"; }
	set_conf listen/nbd 127.0.0.1:0
	# every other listener (listen/iscsi, listen/http, ...) off
	for key in $(grep -oE '"listen/[a-z0-9_]+"' "$ROOT/common/conf.c" 2>/dev/null | tr -d '"'); do
		[[ $key == listen/nbd ]] || set_conf "$key" off
	done
	set_conf paths/db db/bootlink.db
	set_conf paths/run "$BL_RUN"
	set_conf paths/versions versions
	set_conf workers 2
	set_conf cache/size_mb "$CACHE_MB"
	set_conf cache/prefetch 0
	set_conf overlay/dirs overlays
	set_conf overlay/allow_image_disk 1
	set_conf overlay/min_free 0
	set_conf overlay/boot_gap_s 0
	BL_EXTRA=""
	for kv in ${BENCH_BOOTLINKD_SET:-} ${STORM_BOOTLINKD_SET:-}; do
		key=${kv%%=*}
		[[ $kv == *=* && $key =~ ^[a-z0-9_]+(/[a-z0-9_]+)*$ ]] || { NA[bootlinkd]="'$kv' is not KEY=VALUE"; return 1; }
		set_conf "$key" "${kv#*=}"
		BL_EXTRA+=" $kv"
	done
	say "bootlinkd: registering the image and $MAXC clients"
	if ! "$BUILD/bootlinkctl" -c "$d" image add storm "$IMAGE" >"$TMP/bootlinkctl.log" 2>&1; then
		NA[bootlinkd]="bootlinkctl image add failed: $(first_error "$TMP/bootlinkctl.log")"
		return 1
	fi
	: >"$TMP/exports.bootlinkd"
	for ((i = 1; i <= MAXC; i++)); do
		if ! "$BUILD/bootlinkctl" -c "$d" client add "$(mac "$i")" --image storm >>"$TMP/bootlinkctl.log" 2>&1; then
			NA[bootlinkd]="bootlinkctl client add failed: $(first_error "$TMP/bootlinkctl.log")"
			return 1
		fi
		echo "client/$(mac "$i")" >>"$TMP/exports.bootlinkd"
	done
	CMDLINE[bootlinkd]="$(q "$BUILD/bootlinkd" -c "$d")  (config: listen/nbd=127.0.0.1:0, other listen/* off, workers=2, cache/size_mb=$CACHE_MB, cache/prefetch=0, overlay/dirs=overlays, overlay/boot_gap_s=0, overlay/allow_image_disk=1, overlay/min_free=0, paths/run=$BL_RUN (tmpfs)$BL_EXTRA; bootlinkctl image add storm IMAGE; bootlinkctl client add 52:54:00:5b:00:01.. --image storm, ephemeral)"
	DETAIL[bootlinkd]="$BUILD/bootlinkd, tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), 2 workers, every client its own ephemeral overlay"
}

start_bootlinkd() {
	local n=bootlinkd d=$BL_DIR p i v
	rm -f "$BL_RUN/ready"
	"$BUILD/bootlinkd" -c "$d" >>"$TMP/$n.log" 2>&1 &
	p=$!
	STARTED+=("$p")
	for ((i = 0; i < 200; i++)); do
		alive "$p" || { NA[$n]="exited at start: $(first_error "$TMP/$n.log")"; return 1; }
		[[ -e $BL_RUN/ready && -s $BL_RUN/listen/nbd ]] && break
		sleep 0.1
	done
	[[ -e $BL_RUN/ready ]] || { NA[$n]="no run/ready after 20 s"; stop_pid "$p"; return 1; }
	v=$(tr -d ' \n' <"$BL_RUN/listen/nbd")
	PORT[$n]=${v##*:}
	wait_ready "$n" "$p" "${PORT[$n]}" storm || return 1
	PID[$n]=$p
}

start_nbd_server() {
	local n=nbd-server port p i conf=$TMP/nbd-server.conf pidf=$TMP/nbd-server.pid
	port=$(free_port) || { NA[$n]="no free port"; return 1; }
	mkdir -p "$TMP/nbd-cow"
	rm -f "$TMP"/nbd-cow/* "$pidf"
	echo 127.0.0.1 >"$TMP/nbd-server.allow"
	cat >"$conf" <<-EOF
		[generic]
			port = $port
			listenaddr = 127.0.0.1
			${NBD_THREADS:+max_threads = $NBD_THREADS}
		[storm]
			exportname = $IMAGE
			copyonwrite = true
			cowdir = $TMP/nbd-cow
			authfile = $TMP/nbd-server.allow
	EOF
	local cmd=(nbd-server -C "$conf" -p "$pidf")
	CMDLINE[$n]="$(q "${cmd[@]}")  (config: [generic] port=PORT listenaddr=127.0.0.1${NBD_THREADS:+ max_threads=$NBD_THREADS}; [storm] exportname=IMAGE copyonwrite=true cowdir=TMP/nbd-cow)"
	DETAIL[$n]="nbd-server $(pkg_version nbd-server), a process per connection, each connection its own copy-on-write diff file"
	"${cmd[@]}" >>"$TMP/$n.log" 2>&1 || { NA[$n]="exited at start: $(first_error "$TMP/$n.log")"; return 1; }
	for ((i = 0; i < 100; i++)); do
		[[ -s $pidf ]] && break
		sleep 0.1
	done
	p=$(tr -dc 0-9 <"$pidf" 2>/dev/null)
	[[ -n $p ]] || { NA[$n]="no pid file: $(last_line "$TMP/$n.log")"; return 1; }
	STARTED+=("$p")
	wait_ready "$n" "$p" "$port" storm || return 1
	PID[$n]=$p PORT[$n]=$port
}

start_nbdkit() {
	local n=nbdkit port p
	port=$(free_port) || { NA[$n]="no free port"; return 1; }
	mkdir -p "$TMP/nbdkit-tmp"
	rm -f "$TMP"/nbdkit-tmp/*
	local cmd=(nbdkit -f -i 127.0.0.1 -p "$port" -e storm -t 16 --exit-with-parent
		--filter=cow --filter=cache file "$IMAGE" cache-on-read=true)
	CMDLINE[$n]="TMPDIR=TMP/nbdkit-tmp $(q "${cmd[@]}")"
	DETAIL[$n]="nbdkit $(pkg_version nbdkit), cow filter over cache filter (cache-on-read=true) over the file plugin, 16 threads; the cow overlay is shared by every connection"
	TMPDIR=$TMP/nbdkit-tmp "${cmd[@]}" >>"$TMP/$n.log" 2>&1 &
	p=$!
	STARTED+=("$p")
	wait_ready "$n" "$p" "$port" storm || return 1
	PID[$n]=$p PORT[$n]=$port
}

start_server() {
	unset 'NA[$1]' 'PID[$1]'
	case $1 in
	bootlinkd) start_bootlinkd ;;
	nbd-server) start_nbd_server ;;
	nbdkit) start_nbdkit ;;
	esac
}

stop_server() {
	[[ -n ${PID[$1]:-} ]] && stop_pid "${PID[$1]}"
	unset 'PID[$1]'
}

# ---------------------------------------------------------------- one storm

# storm_one SERVER CLIENTS CACHE RUN: one storm; appends a line to storm.tsv:
#   row server run status total_s p50_s p99_s disk_bytes proc_read_bytes
#   cpu_ticks bytes_read bytes_written verified reconnects note
# status: ok; wrong (figures, but a data check failed); fail (no figures)
storm_one() {
	local n=$1 nc=$2 cache=$3 run=$4 p=${PID[$1]} row="c$2-$3"
	local json="$TMP/storm.$n.$nc.$cache.$run.json" log="$TMP/storm.$n.$nc.$cache.$run.log"
	local r0 r1 c0 c1 d0=0 d1=0 rc args=()
	if [[ $n == bootlinkd ]]; then
		args=(--exports "$TMP/exports.bootlinkd")
		bl_fresh
		d0=$(rt images/storm/disk_bytes)
	else
		args=(--export storm)
	fi
	[[ $n == nbdkit ]] && args+=(--shared-cow)
	r0=$(rbytes "$p") c0=$(ticks "$p")
	"$STORM" run --port "${PORT[$n]}" "${args[@]}" --image "$IMAGE" --clients "$nc" --qd "$QD" \
		--mb "$MB" --seed "$SEED" --timeout "$TIMEOUT" --label "$n, $nc clients, $cache, run $run" \
		>"$json" 2>"$log" &
	STORM_PID=$!
	wait "$STORM_PID"
	rc=$?
	STORM_PID=""
	[[ $n == nbd-server ]] && settle "$p"
	if [[ $n == bootlinkd ]]; then
		bl_fresh
		d1=$(rt images/storm/disk_bytes)
	fi
	r1=$(rbytes "$p") c1=$(ticks "$p")
	local rd=- cpu=- disk
	[[ $r0 != - && $r1 != - ]] && rd=$((r1 - r0))
	[[ $c0 != - && $c1 != - ]] && cpu=$((c1 - c0))
	if [[ $n == bootlinkd ]]; then disk=$((d1 - d0)); else disk=$rd; fi
	local line
	line=$(python3 - "$json" "$rc" <<-'EOF'
		import json, sys
		try:
		    j = json.load(open(sys.argv[1]))
		except Exception as e:
		    print("fail\t\t\t\t\t\t\t\tno result (exit status %s)" % sys.argv[2]); sys.exit()
		v = j["verify"]
		bad, wrong = [], []
		if j["errors"]: bad.append("%d request errors" % j["errors"])
		if j["failed_clients"]: bad.append("%d clients failed" % j["failed_clients"])
		if v["mismatches"]: wrong.append("%d of %d checked reads differ from the image" % (v["mismatches"], v["reads_checked"]))
		if v["readback_mismatches"]:
		    wrong.append("%d of %d read-backs differ from the client's own writes" % (
		        v["readback_mismatches"], v["readback_mismatches"] + v["readback_ok"]))
		c = j["client_s"]
		# fail: no usable figures; wrong: figures, but the server returned wrong data
		st = "fail" if bad or j["total_s"] is None else "wrong" if wrong else "ok"
		bad += wrong
		print("\t".join(str(x) for x in (st, j["total_s"], c["p50"], c["p99"], j["bytes_read"], j["bytes_written"],
		      "%d reads, %d read-backs" % (v["reads_checked"], v["readback_ok"] + v["readback_mismatches"]),
		      j.get("reconnects", 0), "; ".join(bad))))
		EOF
	)
	local st total p50 p99 br bw ver recon note
	IFS=$'\t' read -r st total p50 p99 br bw ver recon note <<<"$line"
	if [[ $st == fail && -z $note ]]; then note="exit status $rc: $(last_line "$log")"; fi
	alive "$p" || { note="server died${note:+; $note}"; st=fail; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$n" "$run" "$st" "$total" "$p50" "$p99" \
		"$disk" "$rd" "$cpu" "$br" "$bw" "$ver" "$recon" "$note" >>"$REC/storm.tsv"
	if [[ $st != fail ]]; then
		say "  $nc clients $cache $n run $run: total $total s, client p50 $p50 s p99 $p99 s, disk $((disk / 1048576)) MiB$( ((recon > 0)) && echo ", $recon handshakes retried")${note:+; WRONG DATA: $note}"
		[[ $st == wrong && $n == bootlinkd ]] && BL_BAD=1
	else
		say "  $nc clients $cache $n run $run: FAILED: $note"
		[[ $n == bootlinkd ]] && BL_BAD=1
	fi
	[[ $n == bootlinkd ]] && meta "bootlinkd_cache:c$nc-$cache" "$(bl_cache_line)"
	[[ $st != fail ]]
}

bl_cache_line() {
	local hits misses
	hits=$(rt cache/hits) misses=$(rt cache/misses)
	echo "cache $(($(rt cache/capacity_bytes) / 1048576)) MiB in $(($(rt cache/block_size) / 1024)) KiB blocks, since the daemon started: $hits hits, $misses misses, $(rt cache/waits) waits, $(rt cache/evictions) evictions, $(($(rt cache/used_bytes) / 1048576)) MiB used; image: $(rt images/storm/disk_reads) disk reads, $(($(rt images/storm/disk_bytes) / 1048576)) MiB from disk"
}

# ---------------------------------------------------------------- the run

meta mode "$MODE"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta clients "${CLIENTS[*]}"
meta runs "$RUNS"
meta qd "$QD"
meta mb "$MB"
meta image "${IMAGE_MB} MiB of seeded random data ($(basename "$IMAGE"))"
meta servers "${SERVERS[*]}"
meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
meta storm_cmd "bench/.work/storm run --port PORT (--export storm | --exports FILE) --image IMAGE --clients N --qd $QD --mb $MB --seed $SEED (nbdkit: --shared-cow)"
"$STORM" trace --image "$IMAGE" --mb "$MB" --seed "$SEED" >"$TMP/trace.json" 2>>"$TMP/storm.log" &&
	meta trace "$(cat "$TMP/trace.json")"
if [[ -z $INTO ]]; then
	meta nproc "$(nproc)"
	meta cpu "$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
	meta mem "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	meta kernel "$(uname -srm)"
	meta disk "$(df -hT "$WORK" | tail -n 1 | tr -s ' ')"
	meta commit "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
	for pkg in nbdkit nbd-server libnbd0 liburing2; do meta "pkg:$pkg" "$(pkg_version "$pkg")"; done
fi

LIVE=()
for n in "${SERVERS[@]}"; do
	case $n in
	bootlinkd)
		if [[ ! -x $BUILD/bootlinkd || ! -x $BUILD/bootlinkctl ]]; then
			NA[$n]="not built: no $BUILD/bootlinkd or bootlinkctl"
		else
			setup_bootlinkd
		fi ;;
	nbd-server) command -v nbd-server >/dev/null || NA[$n]="nbd-server not installed" ;;
	nbdkit) command -v nbdkit >/dev/null || NA[$n]="nbdkit not installed" ;;
	esac
	if [[ -n ${NA[$n]:-} ]]; then
		say "$n: n/a (${NA[$n]})"
	else
		LIVE+=("$n")
	fi
done

BL_BAD=0
declare -A GOT=()
for ((run = 1; run <= RUNS; run++)); do
	for nc in "${CLIENTS[@]}"; do
		for ((k = 0; k < ${#LIVE[@]}; k++)); do
			n=${LIVE[$(((k + run - 1) % ${#LIVE[@]}))]}
			drop_caches
			if ! start_server "$n"; then
				say "$n: n/a (${NA[$n]})"
				for cache in cold warm; do
					printf 'c%s-%s\t%s\t%s\tfail\t\t\t\t\t\t\t\t\t\t\t%s\n' "$nc" "$cache" "$n" "$run" "start: ${NA[$n]}" >>"$REC/storm.tsv"
				done
				[[ $n == bootlinkd ]] && BL_BAD=1
				continue
			fi
			storm_one "$n" "$nc" cold "$run" && GOT[$n]=1
			storm_one "$n" "$nc" warm "$run" && GOT[$n]=1
			stop_server "$n"
		done
	done
done
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

for n in "${SERVERS[@]}"; do
	if [[ -n ${CMDLINE[$n]:-} ]]; then
		st=na
		[[ -n ${GOT[$n]:-} ]] && st=ok
		printf '%s\t%s\t%s\t%s\n' "$n" "$st" "${DETAIL[$n]:-}${NA[$n]:+; ${NA[$n]}}" "${CMDLINE[$n]}" >>"$REC/storm-servers.tsv"
	else
		printf '%s\tna\t%s\t\n' "$n" "${NA[$n]:-not run}" >>"$REC/storm-servers.tsv"
	fi
done

if [[ -z $INTO ]]; then
	python3 "$BENCH/report.py" --storm "$REC" "$OUT" || die "report.py failed"
fi
((${#GOT[@]})) || { say "no server produced a storm figure"; exit 1; }
((BL_BAD == 0)) || { say "bootlinkd failed a storm (see above)"; exit 1; }
exit 0
