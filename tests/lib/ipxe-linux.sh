# shellcheck shell=bash
# ipxe-linux.sh — PCs that boot Linux from bootlinkd through qemu's iPXE ROM, for the e2e tests
# (test-e2e-ipxe-*.sh). Source after common.sh and qemu.sh; call ipxe_linux_setup before
# start_daemon and ipxe_tftp after it.
#
#   ipxe_linux_setup          skip (77) unless qemu, its e1000 iPXE ROM, a Debian kernel and the
#                             initramfs tools are there; make the demo root ($T/root.img) and add
#                             image "demo" that boots Linux (kernel + bootlink initramfs over HTTP)
#   ipxe_tftp                 the TFTP dir ($T/tftp) with first.ipxe, which chains to bootlinkd's
#                             /boot.ipxe at 10.0.2.2:$HTTP_PORT (as a site's TFTP server would)
#   ipxe_pxe NAME MAC         start a PC booting from its NIC (-boot n); console: qemu_log NAME
#   ipxe_booted NAME WANT     NAME reached the demo root within IPXE_BOOT_S (120) seconds through
#                             iPXE and reported WANT previous boots (else fail, with its console)
#   ipxe_screen NAME REGEX    REGEX appears on NAME's console within IPXE_BOOT_S (then it is stopped)
#   ipxe_console_text NAME    NAME's console as one line (timestamps gone, lines joined by spaces):
#                             iPXE screens are wrapped to 80 columns

IPXE_BOOT_S=${IPXE_BOOT_S:-120}
IPXE_OK_RE='BOOTLINK-DEMO: (saved boot counter|FAILED)'
IPXE_BAD_RE='bootlink: boot failed|Kernel panic|BOOTLINK-DEMO: FAILED|E2E: CHAIN-FAILED|could not be loaded|No bootable device'

ipxe_linux_setup() {
	need mke2fs cpio gzip modprobe busybox nbd-client
	qemu_usable || skip "$QEMU_WHY"
	[[ -e /usr/lib/ipxe/qemu/efi-e1000.rom || -e /usr/share/qemu/efi-e1000.rom ]] ||
		skip "no iPXE ROM for qemu's e1000 (Debian package ipxe-qemu)"
	kernel_fetch || skip "$QEMU_WHY"
	initramfs_cached || fail "initramfs/build.sh failed"
	"$SRCDIR/initramfs/demo-root.sh" "$T/root.img" 2>/dev/null
	ctl image add demo "$T/root.img" --description "bootlink demo root" >/dev/null
	# no_timer_check: under TCG on a loaded machine the kernel's IO-APIC timer check can fail
	# ("IO-APIC + timer doesn't work!") and panic.
	ctl image set demo --kernel "$VMLINUZ" --initrd "$INITRD" \
		--cmdline "console=ttyS0 quiet panic=-1 no_timer_check bootlink.onfail=poweroff bootlink.failwait=0" >/dev/null
}

ipxe_tftp() {
	mkdir -p "$T/tftp"
	printf '#!ipxe\necho E2E: first script from TFTP\nchain http://10.0.2.2:%s/boot.ipxe || echo E2E: CHAIN-FAILED\n' \
		"$HTTP_PORT" >"$T/tftp/first.ipxe"
	# SeaBIOS copies the option ROM's text output (iPXE's screens) to the serial console when
	# fw_cfg etc/sercon-port names the port; qemu sets it only with -nographic. 0x3f8, LE.
	printf '\xf8\x03' >"$T/sercon"
}

ipxe_pxe() {
	qemu_start "$1" -boot n -fw_cfg "name=etc/sercon-port,file=$T/sercon" \
		-nic "user,model=e1000,mac=$2,tftp=$T/tftp,bootfile=first.ipxe"
}

ipxe_console_text() {
	sed 's/^ *[0-9.]* //' "$(qemu_log "$1")" | tr '\n' ' ' | tr -s ' '
}

ipxe_booted() {
	local name=$1 want=$2 rc=0 log got
	log=$(qemu_log "$name")
	qemu_watch "$name" "$IPXE_BOOT_S" "$IPXE_OK_RE" "$IPXE_BAD_RE|this PC cannot boot yet" || rc=$?
	if ((rc != 0)) || [[ $QEMU_MATCH != *"saved boot counter"* ]]; then
		echo "--- console of $name ($log)" >&2
		tail -n 30 "$log" >&2
		case $rc in
		2) fail "$name: no result on the console within $IPXE_BOOT_S s" ;;
		3) fail "$name: the guest stopped without a result" ;;
		*) fail "$name: $QEMU_MATCH" ;;
		esac
	fi
	got=$(grep -a -o 'BOOTLINK-DEMO: previous boots: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
	echo "$name: $(grep -a -o 'booted from .*' "$log" | head -n 1); previous boots: ${got:-?}; ${QEMU_SECS}s from power-on"
	[[ $got == "$want" ]] || fail "$name: reported previous boots: ${got:-none}, expected $want"
	grep -a -q 'E2E: first script from TFTP' "$log" || fail "$name: the console does not show the TFTP script (not an iPXE boot?)"
}

ipxe_screen() {
	local rc=0
	qemu_watch "$1" "$IPXE_BOOT_S" "$2" "$IPXE_BAD_RE|BOOTLINK-DEMO" || rc=$?
	((rc == 0)) || {
		tail -n 20 "$(qemu_log "$1")" >&2
		fail "$1: expected '$2' on the console, got: ${QEMU_MATCH:-nothing} (rc $rc)"
	}
	echo "$1: '$QEMU_MATCH' after ${QEMU_SECS}s"
}
