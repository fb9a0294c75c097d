#!/bin/bash
# test-coalesce — daemon/coalesce_us: a worker gathers a batch only for
# clients that pipeline. A client that waits for each reply (one request
# per receive) must never make a worker wait for a batch
# (totals/batched_waits stays put); a client with 1024 reads queued at once
# does (it goes up), and every byte it gets is right; with
# daemon/coalesce_us=0 (live) nothing is batched and the bytes stay right.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

mkimage "$T/img" $((8 << 20))
ctl image add base "$T/img"
start_daemon runtime/interval_ms=100 cache/size_mb=64

nt() { timeout 120 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
batched() {
	local v
	v=$(cat "$RUN/totals/batched_waits" 2>/dev/null) || true
	[[ $v =~ ^[0-9]+$ ]] || fail "totals/batched_waits is missing or not a number: '$v'"
	echo "$v"
}

tree_fresh
b0=$(batched)
[[ $b0 == 0 ]] || fail "batched waits before any client: $b0, expected 0"

# One request at a time: 512 reads of 4 KiB spread over the image, each
# waiting for its reply (then 64 reads of 64 KiB, sequential).
steps=()
for i in $(seq 0 511); do steps+=("rf:$(((i * 4099 % 2048) * 4096)):4096:$T/img"); done
for i in $(seq 0 63); do steps+=("rf:$((i * 65536)):65536:$T/img"); done
nt "$(nbd_uri base)" "${steps[@]}" || fail "one-at-a-time reads: wrong data"
tree_fresh
b1=$(batched)
[[ $b1 == "$b0" ]] || fail "a client waiting for each reply made workers batch: batched_waits $b0 -> $b1"
ok "576 one-at-a-time reads: right bytes, no batched wait ($b1)"

# Pipelined: 1024 reads queued at once, four times over the image.
for off in 0 $((2 << 20)) $((4 << 20)) $((6 << 20)); do
	nt "$(nbd_uri base)" qr:$off:$((2 << 20)):1024:"$T/img" || fail "1024 queued reads at $off: wrong data"
done
tree_fresh
b2=$(batched)
((b2 > b1)) || fail "4 x 1024 queued reads never made a worker batch: batched_waits $b1 -> $b2"
ok "4 x 1024 queued reads: right bytes, $((b2 - b1)) batched waits"

# Off, live.
conf_set daemon/coalesce_us 0
applied() { grep -q 'daemon/coalesce_us changed: 20 -> 0' "$T/daemon.log"; }
wait_for 10 applied || fail "the daemon did not apply daemon/coalesce_us=0"
tree_fresh
b3=$(batched)
for off in 0 $((4 << 20)); do
	nt "$(nbd_uri base)" qr:$off:$((2 << 20)):1024:"$T/img" || fail "coalesce_us=0: 1024 queued reads at $off: wrong data"
done
tree_fresh
b4=$(batched)
[[ $b4 == "$b3" ]] || fail "daemon/coalesce_us=0 still batched: batched_waits $b3 -> $b4"
ok "daemon/coalesce_us=0: right bytes, no batched wait"

assert_daemon_alive
stop_daemon
