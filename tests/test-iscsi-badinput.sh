#!/bin/bash
# test-iscsi-badinput — hostile iSCSI clients (tests/iscsi/badinput.py: raw
# sockets sending malformed BHSs, over-long data segments, login text
# without its NUL, bad versions and names, CmdSNs outside the window,
# Data-Out for unknown tasks or at wrong offsets, unknown opcodes, SNACK,
# duplicate task tags, bad header and data digests, a Login in full feature
# phase, stalls and resets). Each case checks the answer RFC 7143 asks for
# (Reject with the right reason, a login status, silence, or a dropped
# connection); after each one the daemon must still run and iscsi-ls must
# still list the targets.
. "$(dirname "$0")/lib/common.sh"
need iscsi-ls python3
need_bootlink

mkimage "$T/img" 4M
ctl image add img "$T/img"
ctl client add 52:54:00:aa:bb:02 --image img
start_daemon limits/handshake_timeout_s=2 iscsi/nop_interval_s=0
[[ -n ${ISCSI_ADDR:-} ]] || fail "no iSCSI listener (listen/iscsi)"
export ISCSI_HOST ISCSI_PORT LOGIN_TIMEOUT=2 TARGET=iqn.2026-11.org.bootlink:client.525400aabb02

still_serving() {
	assert_daemon_alive "after $1"
	local out
	out=$(timeout 20 iscsi-ls "iscsi://$ISCSI_ADDR" 2>&1) || fail "iscsi-ls failed after $1: $out"
	grep -qF "$TARGET" <<<"$out" || fail "iscsi-ls does not list $TARGET after $1: $out"
}

cases=(garbage-bhs login-no-nul login-dsl-too-long login-bad-version login-unknown-target
	login-no-initiator-name login-no-target-name login-bad-tsih login-duplicate-key login-unknown-keys
	login-continuation login-stall pdu-during-login dsl-beyond-max cmdsn-outside-window
	data-out-unknown-task data-out-bad-offset unknown-opcode snack duplicate-itt immediate-data-without-w
	header-digest data-digest discovery-scsi text-continuation login-in-ffp logout-with-task-waiting
	abort-waiting-task reset)
for c in "${cases[@]}"; do
	echo "--- $c"
	timeout 60 python3 "$TESTS/iscsi/badinput.py" "$c" || fail "case $c"
	still_serving "$c"
done
ok "all ${#cases[@]} hostile cases answered as RFC 7143 says; daemon alive, iscsi-ls works"

grep -q "login refused (status 0x0200)" "$T/daemon.log" || fail "the daemon log does not name refused logins"
stop_daemon
ok "done"
