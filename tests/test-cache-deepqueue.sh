#!/bin/bash
# test-cache-deepqueue — a client that queues more requests than
# limits/inflight (128) whose replies are ready at once: cache hits, image
# holes, and an ephemeral client's blocks in its RAM tier. One connection
# queues 1024 reads of 4 KiB, then 8 connections do it together (storm.py
# with no depth limit); every reply must be well-formed (libnbd checks the
# stream: magic, cookie, length) and carry the right bytes. A control run
# with limits/inflight above the queue depth shows the data are right.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

E=52:54:00:10:00:01
mkimage "$T/img" $((8 << 20))
mkimage_sparse "$T/sparse.img" $((8 << 20)) 0 $((4 << 20))
ctl image add base "$T/img"
ctl image add sparse "$T/sparse.img"
ctl client add "$E" --image base
start_daemon cache/size_mb=64 cache/prefetch=0 limits/inflight=128 overlay/dirs=overlays \
	overlay/ram_mb=16 overlay/boot_gap_s=3600 runtime/interval_ms=100

nt() { timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
# The ephemeral client's disk: the image with 1 MiB of pattern 5 at 2 MiB (in RAM).
timeout 60 python3 "$TESTS/overlay/mkexpect.py" "$T/img" "$T/client.img" w:$((2 << 20)):$((1 << 20)):5 >/dev/null
nt "$(nbd_uri "$E")" w:$((2 << 20)):$((1 << 20)):5 || fail "client $E: write failed"

failures=()
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else echo "FAIL: $what" >&2 && failures+=("$what"); fi
}
run_all() { # run_all LABEL
	# Warm the cache with block 0, then 1024 queued reads of it.
	check "$1: 1024 queued reads of a cached 64 KiB block" \
		nt "$(nbd_uri base)" rf:0:65536:"$T/img" qr:0:65536:1024:"$T/img"
	check "$1: 1024 queued reads of an image hole" \
		nt "$(nbd_uri sparse)" qr:$((1 << 20)):65536:1024:"$T/sparse.img"
	check "$1: 1024 queued reads of a client's RAM-tier blocks" \
		nt "$(nbd_uri "$E")" qr:$((2 << 20)):262144:1024:"$T/client.img"
	local uris=()
	for _ in 1 2 3 4 5 6 7 8; do uris+=("$(nbd_uri base)"); done
	check "$1: 8 connections, every read queued at once, over cached blocks" \
		env DEPTH=0 timeout 60 python3 "$TESTS/overlay/storm.py" "$T/img" 0 $((1 << 20)) concurrent "${uris[@]}"
}

# Control: limits/inflight above the queue depth (nothing pauses).
conf_set limits/inflight 4096
grep_applied() { grep -q 'limits/inflight changed: 128 -> 4096' "$T/daemon.log"; }
wait_for 10 grep_applied || fail "the daemon did not apply limits/inflight=4096"
run_all "control, limits/inflight=4096"
((${#failures[@]} == 0)) || fail "the control run failed: the test itself is wrong"

conf_set limits/inflight 128
grep_applied2() { grep -q 'limits/inflight changed: 4096 -> 128' "$T/daemon.log"; }
wait_for 10 grep_applied2 || fail "the daemon did not apply limits/inflight=128"
run_all "limits/inflight=128"

assert_daemon_alive
stop_daemon
if ((${#failures[@]})); then
	printf 'FAIL: %s\n' "${failures[@]}" >&2
	fail "${#failures[@]} checks failed"
fi
ok "done"
