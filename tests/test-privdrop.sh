#!/bin/bash
# test-privdrop — bootlinkd started as root drops to daemon/user after binding.
#
# Needs root (skips otherwise). The test user is `nobody` (every Debian
# system has it; no user is created). With daemon/user=nobody: the log says
# "running as user nobody", every uid/gid of the process is nobody's, no
# capability is left (CapEff/CapPrm 0), the runtime tree is still written,
# clients are served (an image read by nbdcopy, a persistent client's write
# + flush whose overlay files belong to nobody). A user that does not exist:
# a log line saying so, bootlinkd runs on as root. A place the user cannot
# write (the test directory closed to others): start-up fails with one line
# naming it and the chown to run.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy python3
need_python_module nbd
need_bootlink
[[ $(id -u) == 0 ]] || skip "needs root to start bootlinkd as root"
id nobody >/dev/null 2>&1 || skip "no user nobody"
NOBODY_UID=$(id -u nobody)

chmod 0755 "$T"
C=52:54:00:0f:00:01
mkimage "$T/img" 4M
chmod 0644 "$T/img"
ctl image add img "$T/img" >/dev/null
ctl client add "$C" --image img --mode persistent >/dev/null
start_daemon overlay/dirs=overlays daemon/user=nobody runtime/interval_ms=100
grep -q "running as user nobody (uid $NOBODY_UID" "$T/daemon.log" || fail "no 'running as user nobody' line"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$DAEMON_PID/status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$DAEMON_PID/status")
caps=$(awk '/^Cap(Eff|Prm):/ {print $2}' "/proc/$DAEMON_PID/status" | sort -u)
[[ $uids == "$NOBODY_UID $NOBODY_UID $NOBODY_UID $NOBODY_UID" ]] || fail "uids: $uids"
[[ $gids == "$(id -g nobody) $(id -g nobody) $(id -g nobody) $(id -g nobody)" ]] || fail "gids: $gids"
[[ $caps == 0000000000000000 ]] || fail "capabilities left: $caps"
ok "bootlinkd pid $DAEMON_PID runs as nobody: uids $uids, gids $gids, no capabilities"

timeout 60 nbdcopy "$(nbd_uri img)" "$T/copy"
cmp "$T/copy" "$T/img" || fail "the image read as nobody differs"
timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri "$C")" w:0:65536:3 flush r:0:65536:3 >/dev/null ||
	fail "a persistent client's write + flush failed after the drop"
owner=$(stat -c %U "$T/conf/overlays/${C//:/}.data")
[[ $owner == nobody ]] || fail "overlay file owned by $owner"
wait_for 5 test -s "$RUN/clients/$C/writes" || fail "the runtime tree is not written after the drop"
stop_daemon
ok "served after the drop: image read, persistent write + flush (overlay owned by nobody), runtime tree updated"

conf_set daemon/user no-such-user-bl
start_daemon
grep -q "daemon/user no-such-user-bl: no such user, so bootlinkd keeps running as root; create it with: adduser" "$T/daemon.log" ||
	fail "no line about the missing user"
[[ $(awk '/^Uid:/ {print $2}' "/proc/$DAEMON_PID/status") == 0 ]] || fail "not root with a missing user"
stop_daemon
ok "a user that does not exist: one log line, runs as root"

conf_set daemon/user nobody
chmod 0700 "$T"
st=0
timeout 20 "$BUILD/bootlinkd" -c "$T/conf" >"$T/fail.log" 2>&1 || st=$?
chmod 0755 "$T"
((st == 1)) || fail "bootlinkd exited $st with a runtime tree nobody cannot write (expected 1)"
grep -qE "daemon/user nobody cannot write the runtime tree \(paths/run\) $T/conf/run \(Permission denied\): give it to the user with: chown -R nobody: " "$T/fail.log" ||
	fail "no clear line: $(cat "$T/fail.log")"
ok "unwritable state: start-up fails with: $(grep -o 'daemon/user nobody cannot write.*' "$T/fail.log" | head -1)"
