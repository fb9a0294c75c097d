#!/bin/bash
# test-nbd-signals — SIGHUP re-reads the config tree (a live change is
# applied and logged; an invalid value is refused and the running settings
# stay); SIGTERM while a client is in the middle of a transfer: the daemon
# exits 0 within the bounded time, the client sees the server go away
# instead of hanging, and nothing it received was wrong; a restart on the
# same config tree serves again.
. "$(dirname "$0")/lib/common.sh"
need nbdinfo nbdsh
need_python_module nbd
need_bootlink

mkimage "$T/img" 32M
ctl image add img "$T/img"
start_daemon log/level=info limits/shutdown_timeout_s=5

# --- SIGHUP -------------------------------------------------------------------
# log_mark: remember where the log ends; logged PATTERN: a line after the
# mark matches PATTERN.
log_mark() { mark=$(wc -l <"$T/daemon.log"); }
logged() { tail -n +$((mark + 1)) "$T/daemon.log" | grep -E -- "$1" >/dev/null; }

log_mark
conf_set log/level debug
kill -HUP "$DAEMON_PID"
wait_for 10 logged 'SIGHUP' || fail "no log line about SIGHUP within 10 s"
wait_for 10 logged 'log/level.*info.*debug' || fail "no log line saying log/level changed info -> debug within 10 s"
log_mark
timeout 30 nbdinfo --size "$(nbd_uri img)" >/dev/null
wait_for 10 logged ' debug: ' || fail "log/level is debug but a client connected without a debug line"
ok "SIGHUP: log/level info -> debug applied and logged"

# An invalid value: refused with a message naming it, the running settings stay.
log_mark
conf_set log/level loud
kill -HUP "$DAEMON_PID"
wait_for 10 logged "loud" || fail "no log line refusing log/level = 'loud' within 10 s"
tail -n +$((mark + 1)) "$T/daemon.log"
assert_daemon_alive "after SIGHUP with an invalid log/level"
log_mark
timeout 30 nbdinfo --size "$(nbd_uri img)" >/dev/null
wait_for 10 logged ' debug: ' || fail "the refused value changed the log level"
log_mark
conf_set log/level info
kill -HUP "$DAEMON_PID"
wait_for 10 logged 'log/level.*debug.*info' || fail "log/level debug -> info was not logged"
ok "SIGHUP: invalid value refused, running settings kept, then changed back"

# --- SIGTERM in the middle of a transfer -----------------------------------------
export NBD_HOST NBD_PORT EXPORT=img EXPORT_FILE=$T/img
MODE=stream MARK=$T/stream.up NBDSH_SCRIPT=$TESTS/nbd/client.py spawn timeout 120 "${NBDSH[@]}"
client=$!
wait_for 30 test -e "$T/stream.up" || fail "the streaming client did not complete a first pass"
t0=$EPOCHREALTIME
stop_daemon 15
ok "SIGTERM during a transfer: exit 0 after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
wait_for 20 _all_gone "$client" || fail "the client still hangs 20 s after the daemon exited"
st=0
wait "$client" || st=$?
((st == 0)) || fail "the streaming client exited with status $st (wrong data, or it did not notice the server leave)"
ok "the client saw the server go away; every read it completed was right"

# --- restart on the same tree ------------------------------------------------
start_daemon
timeout 30 nbdcopy "$(nbd_uri img)" "$T/out"
cmp "$T/img" "$T/out" || fail "copy after the restart differs"
ok "restart on the same config tree and database serves again"
stop_daemon
ok "done"
