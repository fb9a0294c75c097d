#!/bin/bash
# test-e2e-ipxe-linux — PCs boot Linux through the whole chain, starting from qemu's iPXE ROM.
#
#   qemu -boot n (iPXE in the e1000 option ROM, TCG) → DHCP + TFTP from qemu's user network:
#   first.ipxe → chain http://10.0.2.2:PORT/boot.ipxe (bootlinkd) → /ipxe?mac=... → that PC's
#   script → kernel + initrd over HTTP from bootlinkd (/boot/demo/vmlinuz, /initrd) → the bootlink
#   initramfs mounts client/<MAC> over NBD from bootlinkd → the demo root prints
#   "BOOTLINK-DEMO: previous boots: N", saves N+1 in /root/boots and powers off.
#
#   round 1: E  ephemeral, offered a menu (demo, other; 2 s timeout): the iPXE menu times out and
#               the default (its linked image) boots: previous boots 0
#            P  persistent, with its own kernel option bootlink.conns=2: previous boots 0
#   round 2 (the same MACs boot again; the script fetch starts a new boot):
#            E  previous boots 0 (its write is gone), P  previous boots 1 (its write survived)
# Each boot is bounded (IPXE_BOOT_S, 120 s); a boot takes 25-40 s on a quiet machine, up to
# 110 s when it is loaded. Unknown PCs and clients/autoadd: test-e2e-ipxe-autoadd.sh.
# Skips (77) when qemu or its iPXE ROM cannot run, or no Debian kernel can be fetched.
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
. "$TESTS/lib/ipxe-linux.sh"
need_bootlink
ipxe_linux_setup
cp "$T/root.img" "$T/other.img"
E=52:54:00:e3:00:01 # ephemeral, with a menu
P=52:54:00:e3:00:02 # persistent
ctl image add other "$T/other.img" >/dev/null
ctl client add "$E" --image demo >/dev/null
ctl client set "$E" --menu demo,other --menu-timeout 2 >/dev/null
ctl client add "$P" --image demo --mode persistent >/dev/null
ctl client set "$P" --cmdline "bootlink.conns=2" >/dev/null
start_daemon overlay/dirs=overlays runtime/interval_ms=200 cache/size_mb=64
ipxe_tftp

t0=$SECONDS
ipxe_pxe e1 "$E"
ipxe_pxe p1 "$P"
ipxe_booted e1 0
ipxe_booted p1 0
grep -q "http: boot script for $E (PC001): a menu of 2 images" "$T/daemon.log" || fail "e1: no menu was served"
grep -q "http: boot script for $E (PC001): linux, image demo" "$T/daemon.log" || fail "e1: the menu's default (demo) was not fetched"
grep -q "http: image demo: initrd sent" "$T/daemon.log" || fail "no initrd sent over HTTP"
grep -a -q "bootlink: /dev/nbd0: .*, 2 connection(s)" "$(qemu_log p1)" || fail "p1: its own option bootlink.conns=2 did not reach the initramfs"
ok "first boots through iPXE: the menu timed out to the default; kernel + initrd over HTTP, NBD root (P with its own 2 connections); both saved a file"

ipxe_pxe e2 "$E"
ipxe_pxe p2 "$P"
ipxe_booted e2 0
ipxe_booted p2 1
ok "second boots: the ephemeral PC's file is gone (0), the persistent PC's is there (1)"
echo "4 boots through iPXE in $((SECONDS - t0)) s"
assert_daemon_alive
stop_daemon
ok "done"
