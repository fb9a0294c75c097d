#!/bin/bash
# test-overlay-partial — partial-block writes from several connections of
# one client at once never lose each other. A 4 KiB overlay block written
# for the first time in part is merged with the image's block; two
# connections writing different 512-byte sectors of the same never-written
# blocks at the same moment (connected first, started together, every
# write queued at once) must both land,
# and the sectors nobody wrote must still be the image's. Three rounds on
# fresh regions, for an ephemeral client (1 MiB RAM tier, then its file)
# and a persistent one; the persistent one is checked again after a flush,
# kill -9 and a restart.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

E=52:54:00:13:00:01
P=52:54:00:13:00:02
mkimage "$T/img" $((16 << 20))
ctl image add base "$T/img"
ctl client add "$E" --image base
ctl client add "$P" --image base --mode persistent
conf=(overlay/dirs=overlays overlay/ram_mb=1 overlay/boot_gap_s=3600 runtime/interval_ms=100)
start_daemon "${conf[@]}"

NBDTOOL=(timeout 120 python3 "$TESTS/overlay/nbdtool.py")
nt() { "${NBDTOOL[@]}" "$@"; }
# Each round: 256 blocks where A writes the even sectors and B the odd ones,
# then 256 blocks where C writes sector 5 and D sector 2 (the rest: image).
# Sector maps (one character per 512-byte sector of a 4 KiB block):
MA=1.1.1.1. MB=.2.2.2.2 MAB=12121212
MC=.....3.. MD=..4..... MCD=..4..3..
NB=256
round() { # round MAC BASE: the writers connect, start together, then check
	local mac=$1 base=$2 pids=() p nfail=0 i=0 w
	local r1=$base r2=$((base + NB * 4096))
	rm -f "$T"/ready.* "$T/go"
	for w in "$mac sw:$r1:$NB:$MA" "client/$mac sw:$r1:$NB:$MB" "$mac sw:$r2:$NB:$MC" "client/$mac sw:$r2:$NB:$MD"; do
		i=$((i + 1))
		spawn "${NBDTOOL[@]}" "$(nbd_uri "${w%% *}")" mark:"$T/ready.$i" wait:"$T/go" "${w#* }"
		pids+=($!)
	done
	all_ready() { [[ -e $T/ready.1 && -e $T/ready.2 && -e $T/ready.3 && -e $T/ready.4 ]]; }
	wait_for 30 all_ready || fail "client $mac: the writers did not connect"
	touch "$T/go"
	for p in "${pids[@]}"; do wait "$p" || nfail=$((nfail + 1)); done
	((nfail == 0)) || fail "client $mac: $nfail writers failed"
	nt "$(nbd_uri "$mac")" "sr:$r1:$NB:$MAB:$T/img" "sr:$r2:$NB:$MCD:$T/img" ||
		fail "client $mac: concurrent partial writes to the same blocks at $base lost a sector (or the image's sectors changed)"
}

for mac in "$E" "$P"; do
	for base in 0 $((4 << 20)) $((8 << 20)); do
		round "$mac" "$base"
	done
	ok "client $mac: 3 rounds of 4 connections writing different sectors of the same 1024 blocks at once: nothing lost"
done

# Everything again, on new connections; the persistent client also after a
# flush, kill -9 and a restart.
check_all() { # check_all MAC
	local base steps=()
	for base in 0 $((4 << 20)) $((8 << 20)); do
		steps+=("sr:$base:$NB:$MAB:$T/img" "sr:$((base + NB * 4096)):$NB:$MCD:$T/img")
	done
	nt "$(nbd_uri "$1")" "${steps[@]}" rf:$((12 << 20)):$((4 << 20)):"$T/img"
}
check_all "$E" || fail "client $E: the sectors changed on a later connection"
nt "$(nbd_uri "$P")" flush || fail "client $P: flush failed"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
start_daemon "${conf[@]}"
check_all "$P" || fail "client $P: the sectors are not all there after flush, kill -9 and a restart"
ok "all sectors read back on new connections; the persistent client's after kill -9 and a restart too"

assert_daemon_alive
stop_daemon
ok "done"
