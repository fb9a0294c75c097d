#!/bin/bash
# test-cache-singleflight — 32 connections (16 on the image export, 16 on
# 16 clients' disks over the same image) read the same cold 4 MiB region at
# once, each in its own request sizes and order: every byte is read from
# disk once (cache/disk_bytes and images/<name>/disk_bytes go up by exactly
# 4 MiB; a block may take several reads, as the cache fills 4 KiB units as
# they are asked for), and every connection gets the image's bytes. A second
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

ival() { cat "$RUN/images/base/$1" 2>/dev/null || true; }
storm() { # storm OFF LEN
	timeout 120 python3 "$TESTS/overlay/storm.py" "$T/img" "$1" "$2" concurrent "${uris[@]}" ||
		fail "a connection of the storm on [$1, +$2) failed or read wrong data"
}

tree_fresh
[[ $(cval disk_reads) == 0 ]] || fail "cache/disk_reads is $(cval disk_reads) before any client read"
r0=$(ival disk_bytes)
r0=${r0:-0}

# Storm 1: [4 MiB, 8 MiB), cold.
storm $((4 << 20)) $((4 << 20))
tree_fresh
d=$(cval disk_bytes) i=$(ival disk_bytes) n=$(cval disk_reads)
echo "cache: disk_bytes=$d disk_reads=$n misses=$(cval misses) waits=$(cval waits) hits=$(cval hits) blocks=$(cval blocks)"
[[ $d == $((4 << 20)) ]] || fail "32 connections read 4 cold MiB: cache/disk_bytes is $d, expected $((4 << 20)) (each byte read once)"
[[ $((i - r0)) == $((4 << 20)) ]] || fail "images/base/disk_bytes went up by $((i - r0)), expected $((4 << 20))"
[[ $(cval blocks) == 64 ]] || fail "cache/blocks is $(cval blocks), expected 64"
((n >= 64 && n <= 64 * 16)) || fail "cache/disk_reads is $n: expected 64..1024 (one to sixteen 4 KiB-unit reads per block)"
ok "storm 1: 32 connections at once, 64 cold blocks, 4 MiB from disk in $n reads (waits=$(cval waits))"

# Storm 2: [10 MiB + 64 KiB, 14 MiB + 64 KiB), cold; its blocks are new.
storm $(((10 << 20) + 65536)) $((4 << 20))
tree_fresh
d=$(cval disk_bytes)
[[ $d == $((8 << 20)) ]] || fail "after a second storm on 64 other cold blocks: cache/disk_bytes is $d, expected $((8 << 20))"
ok "storm 2: 64 more cold blocks, 4 MiB more from disk"

# Storm 1's region again: all hits.
storm $((4 << 20)) $((4 << 20))
tree_fresh
d=$(cval disk_bytes)
[[ $d == $((8 << 20)) ]] || fail "re-reading cached blocks: cache/disk_bytes is $d, expected it to stay $((8 << 20))"
ok "storm 1 again: no disk reads"

u=$(cval used_bytes) c=$(cval capacity_bytes)
((u <= c)) || fail "cache/used_bytes $u > capacity_bytes $c"
assert_daemon_alive
stop_daemon
ok "done"
