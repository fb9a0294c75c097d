#!/bin/bash
# test-nbd-badinput — hostile clients (tests/nbd/badinput.py: raw TCP
# sockets sending garbage, absurd lengths, bad magic, out-of-range and
# unknown requests, requests after NBD_CMD_DISC, stalls, resets). After each
# case the daemon must still run and a normal client (nbdinfo) must still
# work. Also: an invalid config value makes bootlinkd exit 1 with a message
# naming the file, the value and what is allowed.
. "$(dirname "$0")/lib/common.sh"
need nbdinfo python3
need_bootlink

# --- invalid configuration --------------------------------------------------
bad=$T/badconf
mkdir -p "$bad/listen" "$bad/paths"
printf 'abc\n' >"$bad/workers"
printf '127.0.0.1:0\n' >"$bad/listen/nbd"
printf 'bootlink.db\n' >"$bad/paths/db"
printf 'run\n' >"$bad/paths/run"
st=0
timeout 10 "$BUILD/bootlinkd" -c "$bad" >"$T/bad.out" 2>"$T/bad.err" || st=$?
cat "$T/bad.err"
((st == 1)) || fail "bootlinkd with workers = 'abc' exited with status $st, expected 1"
line=$(grep -F "$bad/workers" "$T/bad.err" | grep -F "abc" || true)
[[ ${line,,} =~ integer|number|[0-9]+\ *(\.\.|-|to)\ *[0-9]+ ]] ||
	fail "bootlinkd's error does not name the file ($bad/workers), the value ('abc') and what is allowed"
[[ ! -e $bad/run/ready ]] || fail "bootlinkd with a bad config wrote $bad/run/ready"
ok "workers = abc: exit 1, message names file, value and range"

# --- hostile clients ----------------------------------------------------------
mkimage "$T/img" 4M+123
ctl image add img "$T/img"
start_daemon limits/handshake_timeout_s=2

export NBD_HOST NBD_PORT EXPORT=img EXPORT_FILE=$T/img HANDSHAKE_TIMEOUT=2

still_serving() {
	assert_daemon_alive "after $1"
	local size
	size=$(timeout 20 nbdinfo --size "$(nbd_uri img)") || fail "nbdinfo cannot open the export after $1"
	[[ $size == "$(stat -c %s "$T/img")" ]] || fail "nbdinfo: size $size after $1"
}

cases=(garbage-flags garbage-early option-4g option-too-long too-many-options unknown-options
	unknown-export handshake-stall bad-reads bad-reads-structured unknown-command read-only
	pipelined after-disc bad-magic client-reset)
for c in "${cases[@]}"; do
	echo "--- $c"
	timeout 60 python3 "$TESTS/nbd/badinput.py" "$c" || fail "case $c"
	still_serving "$c"
done
ok "all ${#cases[@]} hostile cases: daemon alive, nbdinfo works"

stop_daemon
ok "done"
