#!/bin/bash
# test-cache-bootset — boot-set learning (daemon/bootset.c): the cache blocks
# a client reads in its first cache/learn_s seconds are remembered, saved
# when the daemon stops, and read ahead into the cache when it starts again
# (cache/prefetch=1): the next "boot" of a client then reads nothing from
# disk. With cache/prefetch=0 nothing is read ahead; reads after the
# learning window are not learned.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink

SIZE=$((32 << 20))
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img" >/dev/null
ctl client add 52:54:00:10:00:01 --image base >/dev/null
nt() { timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
cval() { cat "$RUN/cache/$1" 2>/dev/null || echo 0; }
ival() { cat "$RUN/images/base/$1" 2>/dev/null || echo 0; }
is() { [[ $("$1" "$2") == "$3" ]]; }
conf=(cache/size_mb=64 cache/block_kb=64 cache/learn_s=60 runtime/interval_ms=100 overlay/dirs=overlays)

# The "boot": 8 scattered reads of 4 KiB, each in its own 64 KiB cache block,
# through the client's disk; plus one read 1 MiB in that spans 16 blocks.
BOOT=()
for i in 0 3 7 12 100 200 300 400; do BOOT+=("rf:$((i * 65536 + 512)):4096:$T/img"); done
BOOT+=("rf:$((24 << 20)):1048576:$T/img")
want=$((8 + 16))

start_daemon "${conf[@]}" cache/prefetch=1
nt "$(nbd_uri client/52:54:00:10:00:01)" "${BOOT[@]}" || fail "the boot reads returned wrong data"
wait_for 10 is ival bootset_blocks "$want" || fail "images/base/bootset_blocks is '$(ival bootset_blocks)', expected $want"
ok "a boot's reads are learned: $want cache blocks in the boot set"
stop_daemon
[[ -s $T/conf/db/bootsets/$(( (1 << 24) | 1 )).bits ]] || fail "no boot set saved under the database directory: $(ls -R "$T/conf/db")"
ok "the boot set is saved at stop"

start_daemon "${conf[@]}" cache/prefetch=1
wait_for 10 is cval disk_reads "$want" || fail "after a restart, cache/disk_reads is '$(cval disk_reads)', expected the $want prefetched blocks"
grep -q "boot set of $want blocks read ahead" "$T/daemon.log" || fail "the read-ahead is not logged"
nt "$(nbd_uri base)" "${BOOT[@]}" || fail "reads after the read-ahead returned wrong data"
sleep_until_fresh() { touch "$T/.m"; wait_for 10 test "$RUN/cache/capacity_bytes" -nt "$T/.m"; touch "$T/.m"; wait_for 10 test "$RUN/cache/capacity_bytes" -nt "$T/.m"; }
sleep_until_fresh || fail "the runtime tree is not refreshed"
[[ $(cval disk_reads) == "$want" ]] || fail "the boot after a restart read from disk: cache/disk_reads $(cval disk_reads), expected $want"
ok "after a restart the boot set is read ahead ($want blocks) and the next boot reads nothing from disk"
stop_daemon

start_daemon "${conf[@]}" cache/prefetch=0
sleep_until_fresh || fail "the runtime tree is not refreshed"
[[ $(cval disk_reads) == 0 ]] || fail "cache/prefetch=0 still read $(cval disk_reads) blocks ahead"
stop_daemon
ok "cache/prefetch=0: nothing is read ahead"

# Reads outside the learning window are not learned (learn_s=0: nothing is).
rm -rf "$T/conf/db/bootsets"
start_daemon "${conf[@]}" cache/learn_s=0 cache/prefetch=1
nt "$(nbd_uri base)" "${BOOT[@]}" || fail "reads returned wrong data"
sleep_until_fresh || fail "the runtime tree is not refreshed"
[[ $(ival bootset_blocks) == 0 ]] || fail "cache/learn_s=0 still learned $(ival bootset_blocks) blocks"
stop_daemon
ok "cache/learn_s=0: nothing is learned"
