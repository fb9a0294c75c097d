#!/bin/bash
# test-e2e-attach — bootlink-attach in a qemu guest (TCG) running Debian's kernel, against
# bootlinkd on this machine (10.0.2.2:PORT from the guest): the maintenance workflow.
#
# The guest's initramfs is the bootlink initramfs (initramfs/build.sh: busybox, Debian's kernel
# modules) with, appended as a second cpio archive, bootlink-attach and the shared libraries
# ldd names, a modules.dep for busybox's modprobe, and tests/attach/guest-init as /init, which
# (every step a console line the test checks):
#   1. attaches the image export (a disk made here: one partition at 1 MiB (sfdisk), ext4 in
#      it (mke2fs -E offset -d)) on /dev/nbd0 over two connections: bootlink-attach loads the
#      nbd module itself, with partitions (max_part=15); the device is read-only, has the
#      image's size, --status says connected; mounts /dev/nbd0p1 read-only and prints
#      hello.txt; a second attach on /dev/nbd0 is refused as busy and a detach while mounted is
#      refused; unmounts, detaches: size 0 and --status says disconnected
#   2. attaches a (persistent) client's export on a device the kernel picks: writable; writes
#      written.txt, detaches; the test reads the file back from bootlinkd (nbdcopy + debugfs)
#   3. attaches the image on /dev/nbd1 with a dead-connection timeout and mounts it;
#      --reconfigure while its connection lives is refused (the kernel took no socket), and so
#      is one with another export; the test restarts bootlinkd on the same port; the guest's
#      --reconfigure (retried each second) gives the device a new connection (the kernel says
#      "reconnected socket") and hello.txt reads again with the page cache dropped; detach
# Bounded: 240 s for the whole guest (a TCG boot takes 15-40 s here). Skips (77) only when
# qemu cannot run or Debian's kernel cannot be downloaded (initramfs/fetch-kernel.sh).
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
need_bootlink
need mke2fs sfdisk debugfs nbdcopy cpio gzip ldd busybox nbd-client
ATTACH=$BUILD/bootlink-attach
[[ -x $ATTACH ]] || skip "$ATTACH is not built (run make)"
sh -n "$TESTS/attach/guest-init" || fail "tests/attach/guest-init: sh -n failed"
qemu_usable || skip "$QEMU_WHY"
kernel_fetch || skip "$QEMU_WHY"
initramfs_cached || fail "initramfs/build.sh failed"

# --- the guest's initramfs: the bootlink one + bootlink-attach and /init -----------------------
stage=$T/extra
mkdir -p "$stage/sbin" "$stage/lib/modules/$KVER"
install -m 0755 "$TESTS/attach/guest-init" "$stage/init"
cp "$ATTACH" "$stage/sbin/bootlink-attach"
for lib in $(ldd "$ATTACH" | grep -o '/[^ ]*'); do
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done
# build.sh puts the modules flat in /lib/modules/KVER; busybox's modprobe finds nbd.ko by this.
echo "nbd.ko:" >"$stage/lib/modules/$KVER/modules.dep"
(cd "$stage" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$T/extra.cpio.gz"
cat "$INITRD" "$T/extra.cpio.gz" >"$T/initrd"

# --- the image and the daemon -------------------------------------------------------------------
TOKEN=hello-$RANDOM$RANDOM
WTOKEN=written-$RANDOM$RANDOM
MAC=52:54:00:a7:7a:01
mkdir -p "$T/files"
echo "$TOKEN" >"$T/files/hello.txt"
truncate -s 16M "$T/fs.img"
echo 'start=2048, type=83' | sfdisk -q "$T/fs.img" >/dev/null
mke2fs -q -F -t ext4 -E offset=1048576 -d "$T/files" "$T/fs.img" 15M
size=$(stat -c %s "$T/fs.img")
ctl image add maint "$T/fs.img" >/dev/null
ctl client add "$MAC" --image maint --mode persistent >/dev/null
start_daemon overlay/dirs=overlays
port=$NBD_PORT

qemu_start g -kernel "$VMLINUZ" -initrd "$T/initrd" \
	-append "console=ttyS0 quiet panic=-1 attach.server=10.0.2.2:$port attach.image=maint attach.client=client/$MAC attach.token=$WTOKEN" \
	-nic "user,model=virtio-net-pci,mac=52:54:00:a7:7a:99"
LOG=$(qemu_log g)
BAD='ATTACH-E2E: FAILED|Kernel panic'
# watch SECS OK: wait for the console line OK (SECS from the guest's start); fail with the
# console's tail on anything else.
watch() {
	local rc=0
	QEMU_KEEP=1 qemu_watch g "$1" "$2" "$BAD" || rc=$?
	if ((rc != 0)); then
		echo "--- console ($LOG)" >&2
		tail -n 30 "$LOG" >&2
		case $rc in
		2) fail "no '$2' on the console within $1 s" ;;
		3) fail "the guest stopped before '$2'" ;;
		*) fail "guest: $QEMU_MATCH" ;;
		esac
	fi
}
# line PATTERN: the console line matching the extended regex PATTERN must be there.
line() {
	grep -a -q -E "$1" "$LOG" || {
		grep -a 'ATTACH-E2E' "$LOG" | tail -n 20 >&2
		fail "no console line matching '$1'"
	}
}

watch 150 'ATTACH-E2E: RESTART THE SERVER'
grep -a 'ATTACH-E2E' "$LOG" | sed 's/^ */    /'
line "ATTACH-E2E: attached /dev/nbd0: size $size ro 1 /dev/nbd0 connected $size\$"
line "ATTACH-E2E:   bootlink-attach: /dev/nbd0: 'maint' from 10.0.2.2:$port, $size bytes, .*read-only.*, 2 connections"
line "ATTACH-E2E: hello.txt: $TOKEN\$"
line 'ATTACH-E2E: nbd loaded with max_part 15$'
ok "image attached on /dev/nbd0 (module loaded by bootlink-attach, 2 connections, read-only), its partition mounted, file read"
line 'ATTACH-E2E:   bootlink-attach: /dev/nbd0 is busy: it is already connected'
line 'ATTACH-E2E: second attach: exit 1$'
line 'ATTACH-E2E:   bootlink-attach: /dev/nbd0 is mounted on /mnt: unmount it first'
line 'ATTACH-E2E: detach while mounted: exit 1$'
line 'ATTACH-E2E: after detach: size 0 /dev/nbd0 disconnected$'
ok "busy device and mounted detach refused; after detach /dev/nbd0 has size 0 and is disconnected"
line 'ATTACH-E2E: client export on /dev/nbd[0-9]+: ro 0$'
line "ATTACH-E2E: wrote written.txt on client/$MAC and detached"
nbdcopy "$(nbd_uri "client/$MAC")" "$T/client.img"
dd if="$T/client.img" of="$T/client.p1" bs=1M skip=1 status=none
got=$(debugfs -R 'cat /written.txt' "$T/client.p1" 2>/dev/null)
[[ $got == "$WTOKEN" ]] || fail "written.txt on client/$MAC holds '$got', expected '$WTOKEN'"
ok "client export attached writable on a free device; the file the guest wrote reads back from bootlinkd"

line "ATTACH-E2E: before restart: $TOKEN\$"
line 'ATTACH-E2E:   bootlink-attach: /dev/nbd1: the kernel took none of the new connections: none of its connections is dead'
line 'ATTACH-E2E: reconfigure while connected: exit 1$'
line "ATTACH-E2E:   bootlink-attach: /dev/nbd1 is attached to 'maint', not 'client/$MAC'"
line 'ATTACH-E2E: reconfigure with another export: exit 1$'
ok "reconfigure refused while the connections live, and for another export"
stop_daemon
start_daemon "listen/nbd=127.0.0.1:$port"
[[ $NBD_PORT == "$port" ]] || fail "bootlinkd came back on port $NBD_PORT, not $port"
watch 240 'ATTACH-E2E: DONE'
grep -a 'ATTACH-E2E' "$LOG" | sed -n '/RESTART/,$p' | sed 's/^ */    /'
line 'ATTACH-E2E: reconfigured after [0-9]+ tries'
line "ATTACH-E2E: after reconfigure: $TOKEN\$"
line 'ATTACH-E2E: dmesg: .*nbd1: reconnected socket'
line "ATTACH-E2E:   bootlink-attach: /dev/nbd1: 1 new connection to 'maint' at 10.0.2.2:$port"
ok "after a restart of bootlinkd, --reconfigure gave /dev/nbd1 new connections and it reads again"
echo "guest done in ${QEMU_SECS}s"
qemu_stop g
assert_daemon_alive
stop_daemon
ok "done"
