#!/bin/bash
# test-admin-errors — the errors a new administrator meets first, each one
# line that says what to do.
#
#   image file moved        bootlinkd (at its next start): "image 'NAME': cannot open
#                           PATH: ... (moved? run: bootlinkctl image repair NAME)", a
#                           client's refusal is logged with it; status warns with the repair command
#   overlay disk missing    overlay/dirs names a directory whose parent is gone (an
#                           unmounted disk): "... is missing, and so is PARENT: is its
#                           disk mounted? ..." and nothing is created in its place
#   port in use             another program listens on listen/nbd's port: start-up
#                           fails with "the port is in use ... ss -ltnp ... listen/nbd"
#   database locked         a sqlite3 shell holds a write transaction: bootlinkctl waits
#                           5 s and says who may hold it and to try again
#   value out of range      workers = 999: bootlinkd and bootlinkctl name the file, the
#                           value, the range, and "fix that file, or remove it"
. "$(dirname "$0")/lib/common.sh"
need nbdinfo python3
need_bootlink

# daemon_fails: run bootlinkd in the foreground; it must exit 1 within 20 s.
daemon_fails() {
	local st=0
	rm -f "$RUN/ready"
	timeout 20 "$BUILD/bootlinkd" -c "$T/conf" >"$T/fail.log" 2>&1 || st=$?
	((st == 1)) || fail "bootlinkd exited $st (expected 1): $(tail -3 "$T/fail.log")"
}
# one_line PATTERN FILE: FILE has a line matching PATTERN (printed).
one_line() {
	grep -qE "$1" "$2" || fail "no line matching '$1' in: $(cat "$2")"
	echo "  $(grep -E "$1" "$2" | head -1 | sed 's/^[0-9:.]* bootlinkd //')"
}

mkimage "$T/img" 1M
ctl image add win "$T/img" >/dev/null
ctl client add 52:54:00:10:00:01 --image win >/dev/null

# ---- image file moved
mv "$T/img" "$T/img.moved"
start_daemon
one_line "image 'win': cannot open $T/img: No such file or directory \(moved\? run: bootlinkctl image repair win\)" "$T/daemon.log"
out=$(timeout 10 nbdinfo "$(nbd_uri win)" 2>&1) && fail "nbdinfo opened a moved image"
grep -q "export 'win' is not available: image 'win': cannot open .*bootlinkctl image repair win" "$T/daemon.log" ||
	fail "the refusal of the NBD client is not logged with the reason"
ctl status | grep -q "image 'win': its file $T/img is missing: 1 client cannot boot; find it with: bootlinkctl image repair" ||
	fail "status does not warn: $(ctl status)"
stop_daemon
mv "$T/img.moved" "$T/img"
ok "image file moved: the log (at start and per refused client) and status say: bootlinkctl image repair win"

# ---- overlay disk missing at start
start_daemon overlay/dirs="$T/disk2/overlays"
one_line "overlay directory $T/disk2/overlays is missing, and so is $T/disk2: is its disk mounted\? mount it" "$T/daemon.log"
[[ ! -e $T/disk2 ]] || fail "bootlinkd created $T/disk2 in place of the missing disk"
stop_daemon
rm "$T/conf/overlay/dirs"
ok "overlay disk missing: one line, nothing created in its place"

# ---- port in use
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(60)' "$T/port" &
holder=$!
_PIDS+=("$holder")
wait_for 10 test -s "$T/port" || fail "no port holder"
port=$(<"$T/port")
conf_set listen/nbd "127.0.0.1:$port"
daemon_fails
one_line "cannot listen on 127.0.0.1:$port \(listen/nbd\): the port is in use by another program \(or another bootlinkd; see: ss -ltnp 'sport = $port'\): stop it, or set another address in listen/nbd" "$T/fail.log"
kill "$holder"
conf_set listen/nbd 127.0.0.1:0
ok "port in use: start-up fails with one line naming the port, how to find the program, listen/nbd"

# ---- database locked
python3 -c '
import sqlite3, sys, time, os
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE"); c.execute("INSERT INTO events (time, kind, text) VALUES (0, ?, ?)", ("test", "lock"))
open(sys.argv[2], "w").close(); time.sleep(30)' "$T/conf/db/bootlink.db" "$T/locked" &
locker=$!
_PIDS+=("$locker")
wait_for 10 test -e "$T/locked" || fail "no lock holder"
st=0
t0=${EPOCHREALTIME/./}
ctl client add 52:54:00:10:00:02 --image win >"$T/out" 2>&1 || st=$?
t1=${EPOCHREALTIME/./}
kill "$locker"
((st == 1)) || fail "client add under a lock exited $st"
[[ $(wc -l <"$T/out") == 1 ]] || fail "more than one line: $(cat "$T/out")"
grep -q "the database is locked by another process (waited 5 s): another bootlinkctl (a commit, a restore) or a sqlite3 shell holds it; try again when it is done" "$T/out" ||
	fail "locked: $(cat "$T/out")"
echo "  $(cat "$T/out")"
ok "database locked: one line after $(((t1 - t0) / 1000)) ms"

# ---- config value out of range
conf_set workers 999
daemon_fails
one_line "workers: '999' is not valid: expected an integer 0..256 \(0 = one per core\); fix that file, or remove it to use the default" "$T/fail.log"
st=0
ctl image list >"$T/out" 2>&1 || st=$?
((st == 1)) && grep -q "workers: '999' is not valid: expected an integer 0..256 (0 = one per core); fix that file, or remove it" "$T/out" ||
	fail "bootlinkctl with workers=999: $st $(cat "$T/out")"
rm "$T/conf/workers"
ok "value out of range: bootlinkd and bootlinkctl name the file, the value, the range, and what to do"
