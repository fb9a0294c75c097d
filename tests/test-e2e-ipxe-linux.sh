#!/bin/bash
# test-e2e-ipxe-linux — PCs boot Linux through the whole chain, starting from qemu's iPXE ROM.
#
#   qemu -boot n (iPXE in the e1000 option ROM, TCG) → DHCP + TFTP from qemu's user network:
#   first.ipxe → chain http://10.0.2.2:PORT/boot.ipxe (bootlinkd) → /ipxe?mac=... → that PC's
#   script → kernel + initrd over HTTP from bootlinkd (/boot/demo/vmlinuz, /initrd) → the bootlink
#   initramfs mounts client/<MAC> over NBD from bootlinkd → the demo root prints
#   "BOOTLINK-DEMO: previous boots: N", saves N+1 in /root/boots and powers off.
#
# Round 1, three PCs at once:
#   E  ephemeral, offered a menu (demo, other; 2 s timeout): the iPXE menu times out, the default
#      (its linked image) boots: previous boots 0
#   P  persistent, with its own kernel option bootlink.conns=2: previous boots 0
#   U  unknown MAC, clients/autoadd = 0: the "not linked" screen arrives on the serial console
# Round 2 ("reboot": the same MACs boot again; the script fetch starts a new boot):
#   E  previous boots 0 (its write is gone), P  previous boots 1 (its write survived)
#   U  clients/autoadd = 1 (live), clients/default_image = demo: the "registering" line, then the
#      PC is registered (PC001, an event) and boots: previous boots 0
# Each boot is bounded (120 s); a boot takes 20-40 s here, more on a busy machine (no_timer_check:
# under TCG on a loaded machine the kernel's IO-APIC timer check may fail and panic).
# Skips (77) when qemu or its iPXE ROM cannot run, or no Debian kernel can be fetched.
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
need_bootlink
need mke2fs cpio gzip modprobe busybox nbd-client curl
qemu_usable || skip "$QEMU_WHY"
[[ -e /usr/lib/ipxe/qemu/efi-e1000.rom || -e /usr/share/qemu/efi-e1000.rom || -e /usr/share/qemu/pxe-e1000.rom ]] ||
	skip "no iPXE ROM for qemu's e1000 (Debian package ipxe-qemu)"
kernel_fetch || skip "$QEMU_WHY"
initramfs_cached || fail "initramfs/build.sh failed"
"$SRCDIR/initramfs/demo-root.sh" "$T/root.img" 2>/dev/null
cp "$T/root.img" "$T/other.img"

E=52:54:00:e3:00:01 # ephemeral, with a menu
P=52:54:00:e3:00:02 # persistent
U=52:54:00:e3:00:99 # unknown
ctl image add demo "$T/root.img" --description "bootlink demo root" >/dev/null
ctl image add other "$T/other.img" >/dev/null
ctl image set demo --kernel "$VMLINUZ" --initrd "$INITRD" \
	--cmdline "console=ttyS0 quiet panic=-1 no_timer_check bootlink.onfail=poweroff bootlink.failwait=0" >/dev/null
ctl client add "$E" --image demo >/dev/null
ctl client set "$E" --menu demo,other --menu-timeout 2 >/dev/null
ctl client add "$P" --image demo --mode persistent >/dev/null
ctl client set "$P" --cmdline "bootlink.conns=2" >/dev/null
start_daemon overlay/dirs=overlays runtime/interval_ms=200 cache/size_mb=64

# The first script, as a site's TFTP server would hand it out: chain to bootlinkd's /boot.ipxe
# (qemu's user network reaches the host's loopback at 10.0.2.2).
mkdir -p "$T/tftp"
printf '#!ipxe\necho E2E: first script from TFTP\nchain http://10.0.2.2:%s/boot.ipxe || echo E2E: CHAIN-FAILED\n' \
	"$HTTP_PORT" >"$T/tftp/first.ipxe"

OK_RE='BOOTLINK-DEMO: (saved boot counter|FAILED)'
BAD_RE='bootlink: boot failed|Kernel panic|BOOTLINK-DEMO: FAILED|E2E: CHAIN-FAILED|could not be loaded|No bootable device'
BOOT_BAD_RE="$BAD_RE|this PC cannot boot yet"
# SeaBIOS copies what the option ROM prints (iPXE's screens) to the serial console when fw_cfg
# etc/sercon-port names the port (qemu sets it only with -nographic); 0x3f8, little-endian.
printf '\xf8\x03' >"$T/sercon"
# pxe NAME MAC: start a PC that boots from its NIC's iPXE ROM.
pxe() {
	qemu_start "$1" -boot n -fw_cfg "name=etc/sercon-port,file=$T/sercon" \
		-nic "user,model=e1000,mac=$2,tftp=$T/tftp,bootfile=first.ipxe"
}
# booted NAME WANT: NAME reached the demo root within 120 s and reported WANT previous boots.
booted() {
	local name=$1 want=$2 rc=0 log got
	log=$(qemu_log "$name")
	qemu_watch "$name" 120 "$OK_RE" "$BOOT_BAD_RE" || rc=$?
	if ((rc != 0)) || [[ $QEMU_MATCH != *"saved boot counter"* ]]; then
		echo "--- console of $name ($log)" >&2
		tail -n 30 "$log" >&2
		case $rc in
		2) fail "$name: no result on the console within 120 s" ;;
		3) fail "$name: the guest stopped without a result" ;;
		*) fail "$name: $QEMU_MATCH" ;;
		esac
	fi
	got=$(grep -a -o 'BOOTLINK-DEMO: previous boots: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
	echo "$name: $(grep -a -o 'booted from .*' "$log" | head -n 1); previous boots: ${got:-?}; ${QEMU_SECS}s from power-on"
	[[ $got == "$want" ]] || fail "$name: reported previous boots: ${got:-none}, expected $want"
	grep -a -q 'E2E: first script from TFTP' "$log" || fail "$name: the console does not show the TFTP script (not an iPXE boot?)"
}
# screen NAME TEXT: TEXT arrives on NAME's console within 120 s (then it is stopped).
screen() {
	local rc=0
	qemu_watch "$1" 120 "$2" "$BAD_RE|BOOTLINK-DEMO" || rc=$?
	((rc == 0)) || {
		tail -n 20 "$(qemu_log "$1")" >&2
		fail "$1: expected '$2' on the console, got: ${QEMU_MATCH:-nothing} (rc $rc)"
	}
	echo "$1: '$QEMU_MATCH' after ${QEMU_SECS}s"
}

t0=$SECONDS
# --- round 1 -------------------------------------------------------------------------------------
pxe e1 "$E"
pxe p1 "$P"
pxe u1 "$U"
screen u1 "This PC \(MAC $U\) is not linked to an image"
# The screen's text, its lines (wrapped to fit 80 columns) joined again.
text=$(sed 's/^ *[0-9.]* //' "$(qemu_log u1)" | tr '\n' ' ' | tr -s ' ')
[[ $text == *"Link it with: bootlinkctl client add $U --image NAME"* ]] || fail "u1: the screen does not say how to link the PC"
ok "unknown PC, autoadd off: the screen saying how to link it arrives on the serial console"
booted e1 0
booted p1 0
grep -q "http: boot script for $E (PC001): a menu of 2 images" "$T/daemon.log" || fail "e1: no menu was served"
grep -q "http: boot script for $E (PC001): linux, image demo" "$T/daemon.log" || fail "e1: the menu's default (demo) was not fetched"
grep -q "http: image demo: initrd sent" "$T/daemon.log" || fail "no initrd sent over HTTP"
[[ $(cat "$RUN/clients/$P/connections" 2>/dev/null || echo 0) =~ ^[0-9]+$ ]]
grep -a -q "bootlink.conns=2" <(timeout 10 curl -s "http://$HTTP_ADDR/ipxe?mac=$P") || fail "P's script lacks its own option"
ok "first boots through iPXE: menu timed out to the default, kernel + initrd over HTTP, NBD root; both saved a file"

# --- round 2 -------------------------------------------------------------------------------------
conf_set clients/default_image demo
conf_set clients/autoadd 1
wait_for 10 grep -q "config: clients/autoadd changed: 0 -> 1" "$T/daemon.log" || fail "clients/autoadd is not live"
pxe e2 "$E"
pxe p2 "$P"
pxe u2 "$U"
booted e2 0
booted p2 1
ok "second boots: the ephemeral PC's file is gone (0), the persistent PC's is there (1)"
booted u2 0
grep -a -q "this PC (MAC $U) is new: registering it" "$(qemu_log u2)" || fail "u2: no 'registering' line on the console"
ctl client list | grep -q "PC00[0-9] *$U *demo" || fail "u2: not registered with image demo: $(ctl client list)"
ctl events "$U" | grep -q "autoadd: registered as PC00" || fail "u2: no autoadd event"
ok "unknown PC, autoadd on: registered ($(ctl client list | grep "$U" | awk '{print $1}')), an event, and it booted"

echo "6 PCs through iPXE in $((SECONDS - t0)) s"
assert_daemon_alive
stop_daemon
ok "done"
