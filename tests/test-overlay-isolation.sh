#!/bin/bash
# test-overlay-isolation — two clients on one image write different
# patterns to the same offsets (aligned, unaligned, the partial last block of
# an image whose size is not a multiple of 4 KiB, through two connections of
# each client at once); each reads back its own bytes, and the untouched
# parts still read as the image. The image export, nbdcopy and qemu-img
# compare of the image stay byte-identical to the image file, and writes,
# trims and write-zeroes on the image export fail with EPERM.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy qemu-img cmp
need_python_module nbd
need_bootlink

A=52:54:00:0a:00:01
B=52:54:00:0a:00:02
SIZE=$(to_bytes 8M+1000) # last block: 1000 bytes
mkimage "$T/img" "$SIZE"
cp "$T/img" "$T/img.orig"
ctl image add base "$T/img"
ctl client add "$A" --image base
ctl client add "$B" --image base --mode persistent
start_daemon overlay/dirs=overlays overlay/boot_gap_s=3600 overlay/ram_mb=1 runtime/interval_ms=100

# NBDTOOL: a plain command line, so spawn's $! is timeout itself (killed at exit).
NBDTOOL=(timeout 120 python3 "$TESTS/overlay/nbdtool.py")
nt() { "${NBDTOOL[@]}" "$@"; }

# The same places for both clients: aligned, unaligned, across blocks,
# 2 MiB (past A's 1 MiB RAM tier: spills to its file), the last 1000 bytes
# and a range ending at the very end.
places=(0:4096 5000:3 12287:2 65536:131072 $((1 << 20)):$((2 << 20)) -1000:1000 -5000:4000 -7:7)
steps_for() { # steps_for OP SEED
	local p out=()
	for p in "${places[@]}"; do out+=("$1:$p:$2"); done
	echo "${out[@]}"
}
# Writes of A and B interleaved: two connections of each, at once.
pids=()
for c in "$A:1" "$B:2"; do
	mac=${c%:*} seed=${c##*:}
	# shellcheck disable=SC2046
	spawn "${NBDTOOL[@]}" "$(nbd_uri "client/$mac")" $(steps_for w "$seed") flush
	pids+=($!)
	# the second connection writes the other half of the 4 MiB area later (same seed)
	spawn "${NBDTOOL[@]}" "$(nbd_uri "$mac")" w:$((3 << 20)):$((1 << 20)):"$seed" flush
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
ok "clients $A and $B wrote different patterns to the same offsets"

# shellcheck disable=SC2046
nt "$(nbd_uri "client/$A")" $(steps_for r 1) r:$((3 << 20)):$((1 << 20)):1 ||
	fail "client $A does not read back its own writes"
# shellcheck disable=SC2046
nt "$(nbd_uri "client/$B")" $(steps_for r 2) r:$((3 << 20)):$((1 << 20)):2 ||
	fail "client $B does not read back its own writes"
ok "each client reads its own pattern"

# Every spelling of a MAC names the same disk.
nt "$(nbd_uri "52-54-00-0A-00-01")" r:0:4096:1 && nt "$(nbd_uri "client/52-54-00-0a-00-01")" r:0:4096:1 &&
	nt "$(nbd_uri "client/52:54:00:0A:00:01")" r:0:4096:1 || fail "another spelling of $A does not show its writes"
ok "52-54-00-0A-00-01, client/52-54-00-0a-00-01 and client/52:54:00:0A:00:01 are $A's disk"

# Unwritten parts of a client's disk read as the image, also next to written bytes.
for mac in "$A" "$B"; do
	nt "$(nbd_uri "$mac")" rf:4096:896:"$T/img" rf:5003:7284:"$T/img" rf:12289:53247:"$T/img" \
		rf:196608:851968:"$T/img" rf:$((4 << 20)):$(((4 << 20) - 4000)):"$T/img" ||
		fail "client $mac: unwritten ranges do not read as the image"
done
ok "unwritten ranges read as the image on both clients"

# The image export and the image file are untouched.
cmp "$T/img" "$T/img.orig" || fail "the image file changed"
nt "$(nbd_uri base)" size:"$SIZE" rf:0:"$SIZE":"$T/img" || fail "the image export shows a client's writes"
timeout 60 nbdcopy "$(nbd_uri base)" "$T/copy"
cmp "$T/img" "$T/copy" || fail "nbdcopy of the image export differs from the image file"
timeout 60 qemu-img compare -f raw -F raw "$T/img" "$(nbd_uri base)" >/dev/null ||
	fail "qemu-img compare: the image export differs from the image file"
ok "image export, nbdcopy and qemu-img compare: identical to the image file"

# Writes to the image export are refused with EPERM.
nt "$(nbd_uri base)" ew:0:4096:EPERM ew:5000:3:EPERM ew:-1000:1000:EPERM et:0:65536:EPERM ez:0:65536:EPERM \
	rf:0:65536:"$T/img" || fail "the image export accepted a write (or failed with another errno)"
if timeout 30 qemu-io -f raw -c 'write -P 0x55 0 4096' "$(nbd_uri base)" >"$T/qemu-io.log" 2>&1; then
	cat "$T/qemu-io.log"
	fail "qemu-io wrote to the read-only image export"
fi
cmp "$T/img" "$T/img.orig" || fail "the image file changed"
nt "$(nbd_uri base)" rf:0:"$SIZE":"$T/img" || fail "the image export changed after refused writes"
ok "writes, trims and write-zeroes on the image export fail with EPERM; nothing changed"

# Still isolated afterwards; the runtime tree counts each client's own writes.
nt "$(nbd_uri "client/$A")" r:0:4096:1 || fail "client $A's data changed"
nt "$(nbd_uri "client/$B")" r:0:4096:2 || fail "client $B's data changed"
writes_counted() {
	local m
	for m in "$A" "$B"; do
		[[ $(cat "$RUN/clients/$m/writes" 2>/dev/null) == $((${#places[@]} + 1)) ]] || return 1
	done
}
wait_for 5 writes_counted ||
	fail "runtime tree: clients/*/writes are $(cat "$RUN/clients/$A/writes" "$RUN/clients/$B/writes" 2>&1 | xargs), expected $((${#places[@]} + 1)) each"
ok "runtime tree counts $((${#places[@]} + 1)) writes per client"

assert_daemon_alive
stop_daemon
ok "done"
