#!/bin/bash
# test-nbd-copy — whole-image reads through real clients are byte-identical:
# nbdcopy (libnbd; uses block status to skip holes) and qemu-img compare
# (qemu's NBD client) on a 1 MiB image, a 1 MiB + 1 byte image (a short last
# block) and a 3 GiB sparse image with data blocks scattered up to its very
# end; a client's MAC export reads as its linked image; the runtime tree
# counts what was read.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy nbdinfo qemu-img cmp
need_bootlink

MAC=52:54:00:aa:bb:01
mkimage "$T/one.img" 1M
mkimage "$T/odd.img" 1M+1
mkimage_sparse "$T/sparse.img" 3G
ctl image add one "$T/one.img"
ctl image add odd "$T/odd.img"
ctl image add sparse "$T/sparse.img"
ctl client add "$MAC" --image odd
start_daemon

# copy_cmp NAME FILE: nbdcopy the export to a file, compare with FILE.
copy_cmp() {
	local name=$1 file=$2 out=$T/out
	rm -f "$out"
	timeout 120 nbdcopy "$(nbd_uri "$name")" "$out" || fail "nbdcopy of export '$name' failed"
	[[ $(stat -c %s "$out") == "$(stat -c %s "$file")" ]] ||
		fail "nbdcopy of '$name': $(stat -c %s "$out") bytes, expected $(stat -c %s "$file")"
	cmp "$file" "$out" || fail "nbdcopy of export '$name' differs from $file"
	rm -f "$out"
	ok "nbdcopy $name: identical ($(stat -c %s "$file") bytes)"
}

# qemu_cmp NAME FILE: qemu-img compare. qemu (7.2) rounds an export's size
# up to a multiple of 512 and reads the tail past the server's end as zeros;
# so sizes are compared strictly (-s) only for 512-aligned images, and the
# unaligned image's last byte is still compared.
qemu_cmp() {
	local name=$1 file=$2 uri size want strict=()
	uri=$(nbd_uri "$name")
	size=$(stat -c %s "$file")
	((size % 512)) || strict=(-s)
	timeout 120 qemu-img compare "${strict[@]}" -f raw -F raw "$file" "$uri" ||
		fail "qemu-img compare $file $uri: differs (or failed)"
	want=$(((size + 511) / 512 * 512))
	size=$(timeout 60 qemu-img info --output=json -f raw "$uri" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["virtual-size"])')
	[[ $size == "$want" ]] || fail "qemu-img info $uri: virtual-size $size, expected $want"
	ok "qemu-img compare $name: identical"
}

copy_cmp one "$T/one.img"
copy_cmp odd "$T/odd.img"
copy_cmp sparse "$T/sparse.img"
copy_cmp "client/$MAC" "$T/odd.img"
copy_cmp "$MAC" "$T/odd.img"

qemu_cmp one "$T/one.img"
qemu_cmp odd "$T/odd.img"
qemu_cmp sparse "$T/sparse.img"
qemu_cmp "client/$MAC" "$T/odd.img"

# Several clients at once on the same image, each with its own connection.
pids=()
for i in 1 2 3 4; do
	spawn timeout 120 nbdcopy "$(nbd_uri one)" "$T/par$i"
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a parallel nbdcopy failed"
done
for i in 1 2 3 4; do
	cmp "$T/one.img" "$T/par$i" || fail "parallel copy $i differs"
done
ok "4 parallel copies identical"

# The runtime tree counts what was read (refreshed every runtime/interval_ms).
read_enough() {
	local f=$RUN/images/one/bytes_read
	[[ -r $f ]] && (($(<"$f") >= 6 * 1048576))
}
wait_for 10 read_enough ||
	fail "$RUN/images/one/bytes_read is '$(cat "$RUN/images/one/bytes_read" 2>/dev/null)', expected at least 6 MiB (6 full reads)"
ok "runtime tree: images/one/bytes_read = $(<"$RUN/images/one/bytes_read")"

assert_daemon_alive
stop_daemon
ok "done"
