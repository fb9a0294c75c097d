#!/bin/bash
# test-crash — nothing acknowledged as durable is lost when bootlinkd is
# killed with SIGKILL, and an image commit killed midway leaves the old
# version usable.
#
# Part 1: three persistent clients (two on one image, one on another) each
# run tests/crash/crashio.py: batches of writes in flight at once (some with
# FUA), then FLUSH, with a journal of what was sent, acknowledged and
# flushed. At a random moment after every writer has flushed at least once
# in this round, bootlinkd gets SIGKILL; it is restarted, every client's
# whole disk is checked against its journal (each block holds its last
# durable write or a later one, never an older one; never-written blocks are
# the image's), and the database must pass PRAGMA integrity_check. CRASH_ROUNDS
# rounds (default 6; `make soak` runs many more).
#
# Part 2: a maintenance client writes 96 MiB and flushes; `bootlinkctl image
# commit` is killed with SIGKILL while it copies the overlay: the image still
# has one version, serves it byte for byte, the maintenance overlay is intact
# and the database passes integrity_check; a second commit then succeeds and
# the image serves the new version.
. "$(dirname "$0")/lib/common.sh"
need python3 sqlite3 nbdcopy cmp
need_python_module nbd
need_bootlink

ROUNDS=${CRASH_ROUNDS:-6}
CRASHIO=$TESTS/crash/crashio.py
DB=$T/conf/db/bootlink.db
mkimage "$T/img1" 16M
mkimage "$T/img2" 16M
ctl image add one "$T/img1"
ctl image add two "$T/img2"
CLIENTS=(52:54:00:c0:00:01 52:54:00:c0:00:02 52:54:00:c0:00:03)
IMG=([0]=img1 [1]=img1 [2]=img2)
ctl client add "${CLIENTS[0]}" --image one --mode persistent
ctl client add "${CLIENTS[1]}" --image one --mode persistent
ctl client add "${CLIENTS[2]}" --image two --mode persistent
CONF=(overlay/dirs=overlays paths/versions=versions overlay/boot_gap_s=0 runtime/interval_ms=100)

db_ok() {
	local r
	r=$(timeout 30 sqlite3 "$DB" "PRAGMA integrity_check") || fail "sqlite3 cannot open the database: $r"
	[[ $r == ok ]] || fail "PRAGMA integrity_check after $1: $r"
}

# kill9_daemon: SIGKILL and reap bootlinkd (start_daemon may run again).
kill9_daemon() {
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=""
}

flushes() {
	if [[ -f $1 ]]; then
		awk '/^F /{n++} END{print n+0}' "$1"
	else
		echo 0
	fi
}

survived=0 lost=0
for ((round = 1; round <= ROUNDS; round++)); do
	start_daemon "${CONF[@]}" >/dev/null
	pids=() before=()
	for i in 0 1 2; do
		before[i]=$(flushes "$T/journal$i")
		timeout 120 python3 "$CRASHIO" write "$(nbd_uri "client/${CLIENTS[i]}")" "$T/journal$i" "$round$i" \
			>>"$T/writer$i.log" 2>&1 &
		pids+=($!)
		_PIDS+=($!)
	done
	for i in 0 1 2; do
		wait_for 30 eval '(( $(flushes "$T/journal'$i'") > before['$i'] ))' ||
			fail "round $round: writer $i flushed nothing within 30 s"
	done
	# A random moment in the middle of the writing: 0..1.5 s more.
	sleep "$((RANDOM % 1500 / 1000)).$(printf %03d $((RANDOM % 1000)))"
	kill9_daemon
	for p in "${pids[@]}"; do
		wait "$p" || fail "round $round: a writer failed (see $T/writer*.log)"
	done
	db_ok "kill -9 round $round"
	start_daemon "${CONF[@]}" >/dev/null
	for i in 0 1 2; do
		if ! timeout 120 python3 "$CRASHIO" verify "$(nbd_uri "client/${CLIENTS[i]}")" "$T/journal$i" \
			"$T/${IMG[i]}" >"$T/verify.out" 2>&1; then
			cat "$T/verify.out"
			n=$(sed -n 's/.*lost writes: \([0-9]*\).*/\1/p' "$T/verify.out")
			lost=$((lost + ${n:-1}))
			fail "round $round: client ${CLIENTS[i]} lost acknowledged writes"
		fi
		((round < ROUNDS)) || cat "$T/verify.out"
	done
	stop_daemon
	survived=$((survived + 1))
done
db_ok "the last round"
echo "kill -9 rounds survived: $survived, lost writes: $lost"
ok "$ROUNDS kill -9 rounds: every write acknowledged after FLUSH/FUA read back; database intact"

# ---- part 2: image commit killed midway --------------------------------------
M=52:54:00:c0:00:0f
mkimage "$T/mimg" 128M
ctl image add mimg "$T/mimg"
ctl client add "$M" --image mimg --mode maintenance
start_daemon "${CONF[@]}" >/dev/null
head -c 96M /dev/urandom >"$T/mdata"
cp "$T/mimg" "$T/mexpect"
dd if="$T/mdata" of="$T/mexpect" conv=notrunc status=none
timeout 120 nbdcopy --flush "$T/mdata" "$(nbd_uri "client/$M")"
wait_for 10 eval '[[ $(cat "$RUN/clients/$M/connections" 2>/dev/null || echo 0) == 0 ]]' ||
	fail "the maintenance client is still connected"
tmp_appeared() { compgen -G "$T/conf/versions/*.tmp" >/dev/null || ! proc_alive "$1"; }
versions_are() {
	local n
	n=$(ctl --json image versions mimg | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["versions"]), d["current"])')
	[[ $n == "$1" ]] || fail "after a killed $2: versions/current = $n, expected $1"
}
# kill_midway WHAT VERSIONS FILE: run `bootlinkctl image WHAT mimg` (a command
# that does its work in the foreground) three times,
# each killed with SIGKILL while it writes its .tmp file (at once, or a few
# tens of ms later); each time the image must still have VERSIONS
# ("count current") and serve FILE byte for byte.
kill_midway() {
	local what=$1 versions=$2 file=$3 attempt cpid st
	for attempt in 1 2 3; do
		"$BUILD/bootlinkctl" -c "$T/conf" image "$what" mimg --note "killed" >"$T/ctl.out" 2>&1 &
		cpid=$!
		_PIDS+=($cpid)
		wait_for 30 tmp_appeared "$cpid" || fail "$what wrote no file within 30 s"
		((attempt == 1)) || sleep "0.0$((RANDOM % 5))"
		kill -KILL "$cpid" 2>/dev/null || true
		st=0
		wait "$cpid" || st=$?
		((st == 137)) || fail "$what exited with status $st before it was killed (attempt $attempt): $(cat "$T/ctl.out")"
		interrupted=$((interrupted + 1))
		db_ok "$what killed with SIGKILL"
		versions_are "$versions" "$what"
		rm -f "$T/got"
		timeout 60 nbdcopy "$(nbd_uri mimg)" "$T/got"
		cmp -s "$T/got" "$file" || fail "after a killed $what the image export does not read as before"
	done
}
interrupted=0
kill_midway commit "1 1" "$T/mimg"
rm -f "$T/got"
timeout 60 nbdcopy "$(nbd_uri "client/$M")" "$T/got"
cmp -s "$T/got" "$T/mexpect" || fail "after killed commits the maintenance client's overlay is not intact"
wait_for 10 eval '[[ $(cat "$RUN/clients/$M/connections" 2>/dev/null || echo 0) == 0 ]]' ||
	fail "the maintenance client is still connected"
ok "$interrupted commits killed midway: still version 1, served byte for byte, overlay intact, database ok"
ctl image commit mimg --note "after the kills" >/dev/null
db_ok "a commit"
export_is() {
	rm -f "$T/got"
	timeout 60 nbdcopy "$(nbd_uri mimg)" "$T/got" 2>/dev/null && cmp -s "$T/got" "$T/mexpect"
}
wait_for 15 export_is || fail "after the second commit the image export does not read as version 2"
ok "a commit after the killed ones: version 2 served"
stop_daemon
