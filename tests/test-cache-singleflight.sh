#!/bin/bash
# test-cache-singleflight — 32 connections (16 on the image export, 16 on
# 16 clients' disks over the same image) read the same cold 4 MiB region at
# once, each in its own request sizes and order: every 64 KiB cache block
# is read from disk once (cache/disk_reads and images/<name>/disk_reads go
# up by exactly 64), and every connection gets the image's bytes. A second
# cold region is stormed the same way, then the first again: no disk reads.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

SIZE=$((16 << 20))
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img"
macs=()
for i in $(seq 1 16); do
	macs+=("52:54:00:0f:00:$(printf %02x "$i")")
	ctl client add "${macs[-1]}" --image base >/dev/null
done
# cache/prefetch=0: nothing but the clients reads the image.
start_daemon cache/size_mb=64 cache/block_kb=64 cache/prefetch=0 overlay/dirs=overlays runtime/interval_ms=100

uris=()
for i in $(seq 1 16); do
	uris+=("$(nbd_uri base)" "$(nbd_uri "client/${macs[i - 1]}")")
done

cval() { cat "$RUN/cache/$1" 2>/dev/null || true; }
ival() { cat "$RUN/images/base/$1" 2>/dev/null || true; }
# tree_fresh: wait for a runtime tree snapshot taken after this call (each
# refresh rewrites cache/capacity_bytes; two rounds so the snapshot read is
# wholly from after the call).
tree_fresh() {
	for _ in 1 2; do
		touch "$T/.mark"
		wait_for 10 test "$RUN/cache/capacity_bytes" -nt "$T/.mark" || fail "the runtime tree is not refreshed"
	done
}
storm() { # storm OFF LEN
	timeout 120 python3 "$TESTS/overlay/storm.py" "$T/img" "$1" "$2" concurrent "${uris[@]}" ||
		fail "a connection of the storm on [$1, +$2) failed or read wrong data"
}

tree_fresh
[[ $(cval disk_reads) == 0 ]] || fail "cache/disk_reads is $(cval disk_reads) before any client read"
r0=$(ival disk_reads)
r0=${r0:-0}

# Storm 1: [4 MiB, 8 MiB), cold.
storm $((4 << 20)) $((4 << 20))
tree_fresh
d=$(cval disk_reads) i=$(ival disk_reads)
echo "cache: disk_reads=$d misses=$(cval misses) waits=$(cval waits) hits=$(cval hits) blocks=$(cval blocks)"
[[ $d == 64 ]] || fail "32 connections read 64 cold blocks: cache/disk_reads is $d, expected 64 (one disk read per block)"
[[ $((i - r0)) == 64 ]] || fail "images/base/disk_reads went up by $((i - r0)), expected 64"
[[ $(cval misses) == 64 ]] || fail "cache/misses is $(cval misses), expected 64"
ok "storm 1: 32 connections at once, 64 cold blocks, 64 disk reads (waits=$(cval waits))"

# Storm 2: [10 MiB + 64 KiB, 14 MiB + 64 KiB), cold; its blocks are new.
storm $(((10 << 20) + 65536)) $((4 << 20))
tree_fresh
d=$(cval disk_reads)
[[ $d == 128 ]] || fail "after a second storm on 64 other cold blocks: cache/disk_reads is $d, expected 128"
ok "storm 2: 64 more cold blocks, 64 more disk reads"

# Storm 1's region again: all hits.
storm $((4 << 20)) $((4 << 20))
tree_fresh
d=$(cval disk_reads)
[[ $d == 128 ]] || fail "re-reading cached blocks: cache/disk_reads is $d, expected it to stay 128"
ok "storm 1 again: no disk reads"

u=$(cval used_bytes) c=$(cval capacity_bytes)
((u <= c)) || fail "cache/used_bytes $u > capacity_bytes $c"
assert_daemon_alive
stop_daemon
ok "done"
