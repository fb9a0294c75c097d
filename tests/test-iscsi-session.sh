#!/bin/bash
# test-iscsi-session — full feature phase at the byte level (tests/iscsi/session.py):
#   - iPXE's login and I/O byte for byte (no key answered Reject, status in
#     the last Data-In, 512-byte Data-Outs answering one R2T);
#   - the data path at small MaxRecvDataSegmentLength/MaxBurstLength with
#     several R2Ts outstanding, immediate and unsolicited data, with and
#     without CRC32C digests; every Data-In checked (DataSN, offsets, F at
#     burst ends, status in the last one); InitialR2T=Yes/ImmediateData=No
#     as iPXE negotiates;
#   - NOP-In keepalive: pings of idle sessions, answered pings keep them,
#     unanswered ones end them; iPXE (which cannot answer) is not pinged;
#   - task management responses, logout responses;
#   - iscsi/target_address: normal logins redirected (0x0101), SendTargets
#     announces it, a login arriving at that address is not redirected;
#   - the runtime tree shows iSCSI connections; SIGTERM with a session open
#     closes it and exits 0.
. "$(dirname "$0")/lib/common.sh"
need python3
need_bootlink

mkimage "$T/img" 16M
ctl image add img "$T/img"
ctl client add 52:54:00:aa:bb:05 --image img
export TARGET=iqn.2026-11.org.bootlink:client.525400aabb05 NOP_INTERVAL=1 NOP_TIMEOUT=2 IMAGE=$T/img
start_daemon iscsi/nop_interval_s=$NOP_INTERVAL iscsi/nop_timeout_s=$NOP_TIMEOUT
export ISCSI_HOST ISCSI_PORT
run_case() {
	echo "--- $1"
	timeout 60 python3 "$TESTS/iscsi/session.py" "$1" || fail "case $1"
	assert_daemon_alive "after $1"
}
for c in ipxe data-path initial-r2t nop-ping no-ping-for-ipxe tmf logout; do
	run_case "$c"
done
grep -q "no answer to a NOP-In ping" "$T/daemon.log" || fail "the closed idle session is not logged"
ok "data path, keepalive, task management and logout"

# --- runtime tree and shutdown with a session open --------------------------
python3 "$TESTS/iscsi/session.py" hold >"$T/hold.out" 2>&1 &
HOLD=$!
wait_for 10 grep -q ready "$T/hold.out" || fail "hold: $(cat "$T/hold.out")"
seen() { grep -lx iscsi "$RUN"/connections/*/protocol 2>/dev/null | head -1 | grep -q .; }
wait_for 5 seen || fail "no iSCSI connection in $RUN/connections"
d=$(dirname "$(grep -lx iscsi "$RUN"/connections/*/protocol | head -1)")
[[ $(<"$d/export") == client/52:54:00:aa:bb:05 ]] || fail "runtime tree export: $(<"$d/export")"
ok "runtime tree: protocol iscsi, export client/52:54:00:aa:bb:05"
stop_daemon
wait_for 5 grep -q closed "$T/hold.out" || fail "the session was not closed at shutdown"
wait "$HOLD" || fail "hold: $(cat "$T/hold.out")"
ok "SIGTERM with a session open: the session is closed, the daemon exits 0"

# --- redirection --------------------------------------------------------------
export REDIRECT=127.0.0.2:3260
start_daemon iscsi/target_address=$REDIRECT
export ISCSI_HOST ISCSI_PORT
run_case redirect
ok "iscsi/target_address: logins redirected with 0x0101, SendTargets announces it"
here=$ISCSI_ADDR
stop_daemon
start_daemon listen/iscsi=$here iscsi/target_address=$here
export ISCSI_HOST ISCSI_PORT
run_case no-redirect-loop
ok "a login arriving at iscsi/target_address is served"
stop_daemon
ok "done"
