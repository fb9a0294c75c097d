#!/bin/bash
# test-overlay-zero — trim and write-zeroes on a client's disk, for an
# ephemeral client (RAM tier of 1 MiB, then its file) and a persistent one
# (file + map, checked again after a restart): aligned and unaligned ranges,
# over written blocks and over never-written ones, and the partial last
# block of an image whose size is not a multiple of 4 KiB, all read back as
# zeros while the bytes around them keep their contents; a partial write
# into a zeroed block leaves the rest of it zero. Block status
# (base:allocation) reports zeroed/trimmed blocks as hole+zero and written
# blocks as data; the whole disk (nbdcopy, sha256) is the image with the
# writes and zeroes applied. A client of a sparse image sees the image's
# holes as holes (libnbd and nbdinfo --map), and its own writes as data.
# Trimming a whole disk releases everything (runtime tree, data file).
#
# Every check runs; the failures are listed at the end.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy nbdinfo sha256sum
need_python_module nbd
need_bootlink

E=52:54:00:0c:00:01 # ephemeral
P=52:54:00:0c:00:02 # persistent
S=52:54:00:0c:00:03 # ephemeral, on the sparse image
SIZE=$(to_bytes 8M+1000) # last block: 1000 bytes at 8 MiB
mkimage "$T/img" "$SIZE"
mkimage_sparse "$T/sparse.img" 64M 0 $((5 << 20)) $((16 << 20)) $(((64 << 20) - 4096))
ctl image add base "$T/img"
ctl image add sparse "$T/sparse.img"
ctl client add "$E" --image base
ctl client add "$P" --image base --mode persistent
ctl client add "$S" --image sparse
conf=(overlay/dirs=overlays overlay/ram_mb=1 overlay/boot_gap_s=3600 runtime/interval_ms=100)
start_daemon "${conf[@]}"

nt() { timeout 120 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
mkexpect() { timeout 60 python3 "$TESTS/overlay/mkexpect.py" "$@"; }
failures=()
# check WHAT CMD...: run CMD; on failure record WHAT and go on.
check() {
	local what=$1
	shift
	if "$@"; then
		ok "$what"
	else
		echo "FAIL: $what" >&2
		failures+=("$what")
	fi
}
disk_sum() {
	rm -f "$T/disk"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/disk" && sha256sum <"$T/disk" | cut -d' ' -f1
}
M=$((1 << 20)) END=$((8 << 20)) # END: start of the partial last block

# First the data that trims and zeroes will hit: 0..2 MiB (RAM, then the
# file for the ephemeral client) and the last 8 KiB + 1000 bytes.
WRITES=(w:0:$((2 * M)):1 w:-9192:9192:1)
# Then, in this order (EDITS for mkexpect: what the disk must read as):
#   zero  aligned               [0, 64K)
#   trim  aligned               [64K, 128K)
#   zero  unaligned             [200000, 230000)     partial blocks at both ends
#   trim  unaligned             [300000, 330000)
#   zero  aligned, never written  [3M, 3M+256K)
#   trim  aligned, never written  [4M, 5M)
#   zero  unaligned, never written [5M+1000, 5M+9000)
#   zero  unaligned inside the partial last block [END+400, END+700)
#   trim  the whole partial last block [END, SIZE) (aligned start, ends at the end)
#   zero  [END-4096, SIZE)     the full block before it and the partial one
#   write 50 bytes into the middle of the trimmed [64K, 128K) and of the
#         zeroed [3M, 3M+256K): the rest of those blocks stays zero
OPS=(zero:0:65536 trim:65536:65536 zero:200000:30000 trim:300000:30000
	zero:$((3 * M)):262144 trim:$((4 * M)):$((M)) zero:$((5 * M + 1000)):8000
	zero:$((END + 400)):300 trim:$((END)):1000 w:$((2 * M - 4096)):4096:2 zero:$((END - 4096)):5096
	w:$((65536 + 1000)):50:3 w:$((3 * M + 5000)):50:3)
EDITS=("${WRITES[@]}" z:0:65536 z:65536:65536 z:200000:30000 z:300000:30000
	z:$((3 * M)):262144 z:$((4 * M)):$((M)) z:$((5 * M + 1000)):8000
	z:$((END + 400)):300 z:$((END)):1000 w:$((2 * M - 4096)):4096:2 z:$((END - 4096)):5096
	w:$((65536 + 1000)):50:3 w:$((3 * M + 5000)):50:3)
want=$(mkexpect "$T/img" "$T/want" "${EDITS[@]}")

# Reads: every zeroed range is zero; the bytes just around keep their contents.
READS=(rz:0:65536 rz:65536:1000 r:$((65536 + 1000)):50:3 rz:$((65536 + 1050)):$((65536 - 1050))
	r:131072:68928:1 rz:200000:30000 r:230000:70000:1 rz:300000:30000 r:330000:$((2 * M - 4096 - 330000)):1
	r:$((2 * M - 4096)):4096:2 rf:$((2 * M)):$((M)):"$T/img"
	rz:$((3 * M)):5000 r:$((3 * M + 5000)):50:3 rz:$((3 * M + 5050)):$((262144 - 5050)) rf:$((3 * M + 262144)):4096:"$T/img"
	rf:$((4 * M - 4096)):4096:"$T/img" rz:$((4 * M)):$((M))
	rf:$((5 * M)):1000:"$T/img" rz:$((5 * M + 1000)):8000 rf:$((5 * M + 9000)):4096:"$T/img"
	r:$((END - 8192)):4096:1 rz:$((END - 4096)):5096)
# Block status of whole blocks: written = data, zeroed/trimmed = hole+zero,
# never written = the image's (data).
STATUS=(bs:0:65536:hole bs:65536:4096:data bs:69632:61440:hole bs:131072:65536:data
	bs:$((2 * M - 4096)):4096:data bs:$((2 * M)):$((M)):data
	bs:$((3 * M)):4096:hole bs:$((3 * M + 4096)):4096:data bs:$((3 * M + 8192)):$((262144 - 8192)):hole
	bs:$((4 * M)):$((M)):hole bs:$((END - 8192)):4096:data bs:$((END - 4096)):5096:hole)
# The whole blocks inside the unaligned zero and trim ranges:
# [200704, 229376) and [303104, 327680).
STATUS_INNER=(bs:200704:28672:zero bs:303104:24576:zero)
if ((OVBLK == 65536)); then
	# 64 KiB blocks: a partial block of a zeroed range gets zeros written
	# (data), a write into a zeroed block makes all of it data, and the
	# unaligned ranges hold no whole block.
	STATUS=(bs:0:65536:hole bs:65536:65536:data bs:131072:$((2 * M - 131072)):data bs:$((2 * M)):$((M)):data
		bs:$((3 * M)):65536:data bs:$((3 * M + 65536)):196608:hole bs:$((4 * M)):$((M)):hole
		bs:$((END - 65536)):65536:data bs:$((END)):1000:hole)
	STATUS_INNER=()
elif ((OVBLK != 4096)); then
	ok "block status expectations are written for 4 and 64 KiB blocks only: not checked at $OVBLK bytes"
	STATUS=() STATUS_INNER=()
fi

for mac in "$E" "$P"; do
	uri=$(nbd_uri "$mac")
	check "$mac: writes" nt "$uri" "${WRITES[@]}" flush
	check "$mac: trims and write-zeroes" nt "$uri" "${OPS[@]}" flush
	for r in "${READS[@]}"; do
		check "$mac: read $r" nt "$uri" "$r"
	done
	((${#STATUS[@]} == 0)) ||
		check "$mac: block status: written blocks are data, zeroed/trimmed blocks hole+zero" nt "$uri" "${STATUS[@]}"
	for s in "${STATUS_INNER[@]}"; do
		check "$mac: block status $s (whole blocks inside an unaligned range)" nt "$uri" "$s"
	done
	check "$mac: whole disk (nbdcopy) is the image with the writes and zeroes" test "$(disk_sum "$mac")" == "$want"
done

# Persistent: the zero state is in the map; the same after a restart.
stop_daemon
start_daemon "${conf[@]}"
uri=$(nbd_uri "$P")
for r in "${READS[@]}"; do
	check "$P after restart: read $r" nt "$uri" "$r"
done
((${#STATUS[@]} == 0)) || check "$P after restart: block status" nt "$uri" "${STATUS[@]}"
check "$P after restart: whole disk (nbdcopy)" test "$(disk_sum "$P")" == "$want"

# A client of a sparse image: the image's holes are holes, its data blocks
# data; writes into a hole become data, a trimmed data block a hole.
uri=$(nbd_uri "$S")
SM=$((64 << 20))
check "$S: block status of the sparse image" nt "$uri" bs:0:4096:data bs:4096:$((5 * M - 4096)):hole \
	bs:$((5 * M)):4096:data bs:$((5 * M + 4096)):$((11 * M - 4096)):hole bs:$((16 * M)):4096:data \
	bs:$((16 * M + 4096)):$((SM - 16 * M - 8192)):hole bs:$((SM - 4096)):4096:data
check "$S: image holes read as zeros, data as the image" nt "$uri" rz:4096:$((5 * M - 4096)) \
	rf:$((5 * M)):4096:"$T/sparse.img" rf:$((SM - 4096)):4096:"$T/sparse.img"
# (A write of at least one overlay block, a trim of exactly one.)
SW=$((OVBLK > 8192 ? OVBLK : 8192))
check "$S: write into a hole, trim a data block" nt "$uri" w:$((8 * M)):$SW:4 trim:$((5 * M)):$OVBLK flush \
	bs:$((8 * M)):$SW:data bs:$((8 * M - 4096)):4096:hole bs:$((8 * M + SW)):4096:hole \
	bs:$((5 * M)):$OVBLK:hole r:$((8 * M)):$SW:4 rz:$((5 * M)):$OVBLK
# nbdinfo --map (another client of base:allocation) agrees.
map_ok() {
	local out
	out=$(timeout 30 nbdinfo --map "$uri") || return 1
	echo "$out" | awk -v m=$M -v sm=$SM -v sw=$SW '
		{ off = $1; len = $2; t = $3 }
		# each data extent must be one of the expected ones
		t == 0 && !((off == 0 && len == 4096) || (off == 16 * m && len == 4096) ||
			(off == 8 * m && len == sw) || (off == sm - 4096 && len == 4096)) { bad = 1 }
		t == 0 { n++ }
		END { exit (bad || n != 4) }' || { echo "$out"; return 1; }
}
check "$S: nbdinfo --map shows exactly the 4 data extents" map_ok

# A trim of the whole disk (one request, more than 8 MiB) releases every
# block: the disk reads as zeros, block status is one hole, the runtime
# tree holds no overlay bytes and the persistent data file no space.
rt() { cat "$RUN/clients/$1/$2" 2>/dev/null || true; }
rt_is() { [[ $(rt "$1" "$2") == "$3" ]]; }
released() { rt_is "$1" overlay_ram_bytes 0 && rt_is "$1" overlay_file_bytes 0; }
for mac in "$E" "$P"; do
	nt "$(nbd_uri "$mac")" w:$M:$((3 * M)):6 flush >/dev/null || true # (again) something in RAM and in the file
	check "$mac: trim of the whole disk: reads zeros, block status one hole" \
		nt "$(nbd_uri "$mac")" trim:0:"$SIZE" flush rz:0:"$SIZE" bs:0:"$SIZE":hole
	check "$mac: runtime tree: no overlay bytes after trimming everything" wait_for 5 released "$mac"
done
# (The partial last block shares a filesystem block that cannot be punched.)
data_before_end() { # data_before_end FILE END: print the first data range before END
	python3 - "$1" "$2" <<-'PY'
		import os, sys
		fd, end = os.open(sys.argv[1], os.O_RDONLY), int(sys.argv[2])
		try:
		    d = os.lseek(fd, 0, os.SEEK_DATA)
		except OSError:
		    sys.exit(0)
		if d < end:
		    print(f"data at {d}..{os.lseek(fd, d, os.SEEK_HOLE)}")
	PY
}
data=$T/conf/overlays/${P//:/}.data
left=$(data_before_end "$data" "$END")
check "$P: the data file holds no space before its partial last block after trimming everything${left:+ ($left)}" \
	test -z "$left"

assert_daemon_alive
stop_daemon
if ((${#failures[@]})); then
	printf 'FAIL: %s\n' "${failures[@]}" >&2
	fail "${#failures[@]} checks failed"
fi
ok "done"
