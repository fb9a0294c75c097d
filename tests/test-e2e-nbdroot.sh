#!/bin/bash
# test-e2e-nbdroot — real Linux clients boot with their root filesystem on NBD from bootlinkd.
#
# qemu (TCG) boots Debian's kernel directly (-kernel) with the bootlink initramfs
# (initramfs/build.sh): DHCP on qemu's user network, nbd-client (netlink) to bootlinkd at
# 10.0.2.2:PORT for export client/<MAC>, ext4 mounted, switch_root into the demo root
# (initramfs/demo-root.sh), whose /sbin/init prints "BOOTLINK-DEMO: previous boots: N", stores
# N+1 in /root/boots, syncs and powers off. Two clients boot side by side, three rounds:
#
#   1. ephemeral E and persistent P: both report previous boots: 0
#   2. E again: 0 (a new boot of an ephemeral client starts from the image: the file it wrote
#      is gone); P with bootlink.conns=2 (two connections): 1 (its write survived)
#   3. P with bootlink.ramoverlay=1 (NBD read-only, writes in RAM): 2, and nothing reaches the
#      server; a PC the server does not know: the initramfs says so in one line and gives up
#
# While each client is up (the demo root holds for a while: bootlink.demo.hold), the runtime
# tree must show its connections (2 for conns=2), bytes read, and writes to its disk in this
# boot (none with the RAM overlay). Each boot's time is printed; a boot takes 7-10 s on an idle
# 2-core machine, 20-40 s when it is busy. The initramfs-tools scripts are checked with sh -n.
# Skips (77) only when qemu cannot run or the Debian kernel package cannot be downloaded
# (fetched once into ~/.cache/bootlink, see initramfs/fetch-kernel.sh).
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
# The initramfs-tools hook and scripts (for installed clients) are not booted here: syntax only.
for f in "$SRCDIR"/initramfs/{init,udhcpc.script,hooks/bootlink,scripts/local-top/bootlink,scripts/init-bottom/bootlink}; do
	sh -n "$f" || fail "$f: sh -n failed"
done
for f in "$SRCDIR"/initramfs/*.sh; do
	bash -n "$f" || fail "$f: bash -n failed"
done
ok "initramfs scripts parse (sh -n, bash -n)"
need_bootlink
need mke2fs cpio gzip modprobe busybox nbd-client
qemu_usable || skip "$QEMU_WHY"
kernel_fetch || skip "$QEMU_WHY"
initramfs_cached || fail "initramfs/build.sh failed"
"$SRCDIR/initramfs/demo-root.sh" "$T/root.img" 2>/dev/null

E=52:54:00:e2:00:01 # ephemeral
P=52:54:00:e2:00:02 # persistent
U=52:54:00:e2:00:99 # not known to the server
ctl image add demo "$T/root.img" >/dev/null
ctl client add "$E" --image demo >/dev/null
ctl client add "$P" --image demo --mode persistent >/dev/null
# boot_gap_s=0: a client's next connection after all of its connections closed is a new boot.
start_daemon overlay/dirs=overlays overlay/boot_gap_s=0 runtime/interval_ms=100 cache/size_mb=64

OK_RE='BOOTLINK-DEMO: (saved boot counter|FAILED)'
BAD_RE='bootlink: boot failed|Kernel panic|BOOTLINK-DEMO: FAILED'
# boot NAME MAC [KERNEL-ARGS...]: start a client; its console goes to $T/NAME.console. It holds
# (stays up, connected) for 60 s after it saved its counter, so the live runtime tree can be
# checked; it is stopped as soon as that is done.
boot() {
	local name=$1 mac=$2
	shift 2
	qemu_start "$name" -kernel "$VMLINUZ" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 bootlink.nbd=10.0.2.2:$NBD_PORT/client/$mac bootlink.onfail=poweroff bootlink.failwait=0 bootlink.demo.hold=60 $*" \
		-nic "user,model=virtio-net-pci,mac=$mac"
}
# booted NAME MAC WANT CONNS WRITES: wait for NAME's boot (90 s at most); it must report WANT
# previous boots; then, while it is up, the runtime tree must show CONNS connections of MAC that
# read bytes, and writes of this boot to the client's disk (WRITES=yes) or none (no). Then stop
# it and wait until the tree shows it gone.
booted() {
	local name=$1 mac=$2 want=$3 conns=$4 writes=$5 rc=0 log got
	log=$(qemu_log "$name")
	QEMU_KEEP=1 qemu_watch "$name" 90 "$OK_RE" "$BAD_RE" || rc=$?
	if ((rc != 0)) || [[ $QEMU_MATCH != *"saved boot counter"* ]]; then
		echo "--- console of $name ($log)" >&2
		tail -n 25 "$log" >&2
		case $rc in
		2) fail "$name: no result on the console within 90 s" ;;
		3) fail "$name: the guest stopped without a result" ;;
		*) fail "$name: $QEMU_MATCH" ;;
		esac
	fi
	got=$(grep -a -o 'BOOTLINK-DEMO: previous boots: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
	grep -a -q 'BOOTLINK-DEMO: booted from ' "$log" || fail "$name: no 'booted from' line on the console"
	echo "$name: $(grep -a -o 'booted from .*' "$log"); previous boots: ${got:-?}; boot took ${QEMU_SECS}s"
	[[ $got == "$want" ]] || fail "$name: reported previous boots: ${got:-none}, expected $want"
	tree_fresh # a snapshot taken after the guest's sync
	if ! wait_for 5 tree_shows "$mac" "$conns" "$writes"; then
		qemu_stop "$name"
		fail "$name: runtime tree: $TREE (want $conns connection(s), bytes read, writes this boot: $writes)"
	fi
	echo "$name: runtime tree while up: $TREE"
	qemu_stop "$name"
	gone() { tree_fresh && [[ $(cat "$RUN/clients/$mac/connections" 2>/dev/null) == 0 ]]; }
	wait_for 10 gone || fail "$name: the runtime tree still shows $(cat "$RUN/clients/$mac/connections") connections after the guest stopped"
	BASE_W[$mac]=$(<"$RUN/clients/$mac/writes")
}
# tree_fresh: wait until the runtime tree holds a snapshot taken after this call (each refresh
# writes cache/ before clients/, in new files: two refreshes after a marker, and the first of
# them has written all its files).
declare -A BASE_W=()
# tree_shows MAC CONNS WRITES: clients/MAC/connections is CONNS, as many connections/* have
# export client/MAC and they read something (with one vCPU the kernel sends every request on
# the first connection); clients/MAC/writes went up since the client's last boot (WRITES=yes)
# or did not (no). A persistent client's disk stays open from boot to boot and its counters
# add up; an ephemeral client's start from 0 at each boot. Leaves what it saw in TREE.
# (connections/*/bytes_written is shown, not asserted: bootlinkd counts it for iSCSI only.)
tree_shows() {
	local mac=$1 conns=$2 writes=$3 d n=0 r=0 w=0 c exp br bw cw cb base dw
	c=$(cat "$RUN/clients/$mac/connections" 2>/dev/null || echo "?")
	cw=$(cat "$RUN/clients/$mac/writes" 2>/dev/null || echo "?")
	cb=$(cat "$RUN/clients/$mac/bytes_written" 2>/dev/null || echo "?")
	for d in "$RUN"/connections/*; do
		exp=$(cat "$d/export" 2>/dev/null) || continue
		[[ $exp == "client/$mac" ]] || continue
		br=$(cat "$d/bytes_read" 2>/dev/null) || continue
		bw=$(cat "$d/bytes_written" 2>/dev/null) || continue
		n=$((n + 1)) r=$((r + br)) w=$((w + bw))
	done
	[[ $cw =~ ^[0-9]+$ && $cb =~ ^[0-9]+$ ]] || {
		TREE="clients/$mac/writes is '$cw', bytes_written '$cb'"
		return 1
	}
	base=${BASE_W[$mac]:-0}
	dw=$((cw >= base ? cw - base : cw))
	TREE="clients/$mac: connections=$c writes=$cw ($dw this boot) bytes_written=$cb; $n connections/* with export client/$mac: bytes_read=$r bytes_written=$w"
	[[ $c == "$conns" ]] && ((n == conns && r > 0)) || return 1
	if [[ $writes == yes ]]; then ((dw > 0)); else ((dw == 0)); fi
}

t0=$SECONDS
# --- round 1: first boots -------------------------------------------------------------------
boot e1 "$E"
boot p1 "$P"
booted e1 "$E" 0 1 yes
booted p1 "$P" 0 1 yes
ok "first boots: ephemeral and persistent clients booted from NBD and saved a file"

# --- round 2: the second boot -----------------------------------------------------------------
boot e2 "$E"
boot p2 "$P" bootlink.conns=2
booted e2 "$E" 0 1 yes
booted p2 "$P" 1 2 yes
[[ $(<"$RUN/clients/$E/boots") -ge 2 ]] || fail "runtime tree: $E boots is $(<"$RUN/clients/$E/boots"), expected 2"
ok "second boots: the ephemeral client's file is gone (0), the persistent client's is there (1, over 2 connections)"

# --- round 3: RAM overlay; an unknown PC --------------------------------------------------------
boot p3 "$P" bootlink.ramoverlay=1
boot u3 "$U"
booted p3 "$P" 2 1 no
grep -a -q 'booted from overlay' "$(qemu_log p3)" || fail "p3: the root is not the RAM overlay"
rc=0
qemu_watch u3 90 'bootlink: boot failed' 'BOOTLINK-DEMO|Kernel panic' || rc=$?
((rc == 0)) || {
	tail -n 20 "$(qemu_log u3)" >&2
	fail "unknown client: expected a failure line, got: ${QEMU_MATCH:-nothing} (rc $rc)"
}
line=$(grep -a -o 'bootlink: export client/.*' "$(qemu_log u3)" | head -n 1)
[[ $line == "bootlink: export client/$U not found on the server (is the PC linked? bootlinkctl client add $U --image IMAGE)" ]] ||
	fail "unknown client: the console says '${line:-nothing}'"
echo "u3: '$line', gave up after ${QEMU_SECS}s"
ok "RAM overlay: the persistent disk is read-only (2 boots seen, nothing written); an unknown PC gets one clear line"

echo "6 boots in $((SECONDS - t0)) s"
assert_daemon_alive
stop_daemon
ok "done"
