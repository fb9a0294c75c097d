#!/bin/bash
# test-e2e-ipxe-autoadd — an unknown PC booting through qemu's iPXE ROM (see
# test-e2e-ipxe-linux.sh for the chain):
#   1. clients/autoadd = 0: the screen "This PC (MAC ...) is not linked to an image. Link it with:
#      bootlinkctl client add MAC --image NAME" arrives on the serial console (then it retries)
#   2. clients/autoadd = 1 (live), clients/default_image = demo: the PC's console says it is being
#      registered; it is in the database (PC001, image demo, an autoadd event) and boots Linux
#      from its own NBD disk: "BOOTLINK-DEMO: previous boots: 0"
# Each boot is bounded (IPXE_BOOT_S, 120 s). Skips (77) like test-e2e-ipxe-linux.sh.
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
. "$TESTS/lib/ipxe-linux.sh"
need_bootlink
ipxe_linux_setup
U=52:54:00:e3:00:99
start_daemon overlay/dirs=overlays runtime/interval_ms=200 cache/size_mb=64
ipxe_tftp

t0=$SECONDS
ipxe_pxe u1 "$U"
# The screen is complete once its last line (the retry) is there.
ipxe_screen u1 "Retrying in [0-9]+ seconds"
[[ $(ipxe_console_text u1) == *"This PC (MAC $U) is not linked to an image. Link it with: bootlinkctl client add $U --image NAME"* ]] ||
	fail "u1: the screen does not say how to link the PC: $(ipxe_console_text u1)"
ok "unknown PC, autoadd off: the screen saying how to link it arrives on the serial console"

conf_set clients/default_image demo
conf_set clients/autoadd 1
wait_for 10 grep -q "config: clients/autoadd changed: 0 -> 1" "$T/daemon.log" || fail "clients/autoadd is not live"
ipxe_pxe u2 "$U"
ipxe_booted u2 0
[[ $(ipxe_console_text u2) == *"this PC (MAC $U) is new: registering it"* ]] || fail "u2: no 'registering' line on the console"
ctl client list | grep -q "PC001 *$U *demo" || fail "u2: not registered as PC001 with image demo: $(ctl client list)"
ctl events "$U" | grep -q "autoadd: registered as PC001, image demo" || fail "u2: no autoadd event: $(ctl events "$U")"
grep -q "autoadd: new PC $U registered as PC001, image demo" "$T/daemon.log" || fail "u2: no log line"
ok "unknown PC, autoadd on: registered as PC001 with image demo, an event and a log line, and it booted"
echo "2 PCs through iPXE in $((SECONDS - t0)) s"
assert_daemon_alive
stop_daemon
ok "done"
