#!/bin/bash
# test-cache-partial — the cache fills 64 KiB blocks in 4 KiB units as
# clients ask for them. 16 connections at once read the same scattered small
# pieces of a cold 8 MiB region (512 B .. 20 KiB, most not 4 KiB aligned),
# each in its own order: every byte is right, and cache/disk_bytes is
# exactly the 4 KiB units the pieces cover (no unit read twice, nothing read
# around them). Then a reader going forward 4 KiB at a time through a cold
# 1 MiB costs at most two disk reads per block (the second one runs to the
# end of the block), and a whole-block reader one.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

SIZE=$((32 << 20))
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img"
start_daemon cache/size_mb=64 cache/block_kb=64 cache/prefetch=0 runtime/interval_ms=100
uri=$(nbd_uri base)

storm() { # storm MODE OFF LEN NCONN
	local uris=()
	for _ in $(seq 1 "$4"); do uris+=("$uri"); done
	timeout 120 python3 "$TESTS/overlay/storm.py" "$T/img" "$2" "$3" "$1" "${uris[@]}" >"$T/storm.out" ||
		fail "the $1 storm on [$2, +$3) failed or read wrong data: $(tail -1 "$T/storm.out")"
	cat "$T/storm.out"
}

tree_fresh
[[ $(cval disk_bytes) == 0 ]] || fail "cache/disk_bytes is $(cval disk_bytes) before any read"

storm scattered $((1 << 20)) $((8 << 20)) 16
want=$(sed -n 's/^units_bytes=//p' "$T/storm.out")
[[ -n $want ]] || fail "storm.py printed no units_bytes"
tree_fresh
got=$(cval disk_bytes)
echo "cache: disk_bytes=$got (units covered: $want) disk_reads=$(cval disk_reads) misses=$(cval misses) waits=$(cval waits)"
[[ $got == "$want" ]] || fail "16 connections reading scattered pieces: cache/disk_bytes is $got, expected exactly $want (the 4 KiB units they cover)"
((want < (8 << 20) / 2)) || fail "the scattered pieces cover $want bytes of 8 MiB: the test no longer reads sparsely"
ok "scattered cold reads: $got bytes from disk = the 4 KiB units read, of $((8 << 20)) in the region"

# The same pieces again: all hits.
storm scattered $((1 << 20)) $((8 << 20)) 4
tree_fresh
[[ $(cval disk_bytes) == "$got" ]] || fail "re-reading cached units read $(( $(cval disk_bytes) - got )) more bytes from disk"
ok "the same pieces again: no disk reads"

# Forward, 4 KiB at a time, one connection: <= 2 disk reads per 64 KiB block.
r0=$(cval disk_reads) b0=$(cval disk_bytes)
DEPTH=1 storm forward4k $((16 << 20)) $((1 << 20)) 1
tree_fresh
dr=$(($(cval disk_reads) - r0)) db=$(($(cval disk_bytes) - b0))
((dr <= 32)) || fail "reading 16 cold blocks forward 4 KiB at a time took $dr disk reads, expected at most 32"
[[ $db == $((1 << 20)) ]] || fail "reading 1 MiB forward read $db bytes from disk, expected 1048576"
ok "forward 4 KiB reads of 16 cold blocks: $dr disk reads, $db bytes"

# Whole blocks: one read each.
r0=$(cval disk_reads)
storm concurrent $((20 << 20)) $((1 << 20)) 1
tree_fresh
dr=$(($(cval disk_reads) - r0))
[[ $dr == 16 ]] || fail "reading 16 cold blocks in 64 KiB pieces took $dr disk reads, expected 16"
ok "whole-block reads: one disk read per block"

assert_daemon_alive
stop_daemon
ok "done"
