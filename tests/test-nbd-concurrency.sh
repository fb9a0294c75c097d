#!/bin/bash
# test-nbd-concurrency — 64 real clients at once (48 nbdcopy, each with its
# own connections, and 16 nbdinfo --map), every copy byte-identical; clients
# killed (SIGKILL) with 64 reads of 1 MiB in flight while another client
# keeps reading and verifying on its connection; afterwards the daemon has
# no connections left in its runtime tree and still serves.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy nbdinfo nbdsh cmp
need_python_module nbd
need_bootlink

mkimage "$T/img" 4M+512
ctl image add img "$T/img"
start_daemon runtime/interval_ms=200
URI=$(nbd_uri img)

# --- 64 clients at once ---------------------------------------------------------
pids=()
for i in $(seq 1 48); do
	spawn timeout 120 nbdcopy "$URI" "$T/copy$i"
	pids+=($!)
done
for i in $(seq 1 16); do
	spawn timeout 120 nbdinfo --map "$URI" --json
	pids+=($!)
done >/dev/null
nfail=0
for p in "${pids[@]}"; do
	wait "$p" || nfail=$((nfail + 1))
done
((nfail == 0)) || fail "$nfail of 64 concurrent clients failed"
for i in $(seq 1 48); do
	cmp "$T/img" "$T/copy$i" || fail "concurrent copy $i differs"
	rm -f "$T/copy$i"
done
ok "64 concurrent clients: all succeeded, 48 copies byte-identical"

# --- clients killed with requests in flight, while another one reads ----------
export NBD_HOST NBD_PORT EXPORT=img EXPORT_FILE=$T/img STOP=$T/stop
MODE=steady MARK=$T/steady.up NBDSH_SCRIPT=$TESTS/nbd/client.py spawn timeout 200 "${NBDSH[@]}"
steady=$!
wait_for 20 test -e "$T/steady.up" || fail "the steady client did not connect"
for round in 1 2 3 4 5 6 7 8; do
	rm -f "$T/inflight.up"
	MODE=inflight MARK=$T/inflight.up NBDSH_SCRIPT=$TESTS/nbd/client.py spawn "${NBDSH[@]}"
	victim=$!
	wait_for 20 test -e "$T/inflight.up" || fail "round $round: the in-flight client did not get its requests out"
	kill -KILL "$victim"
	wait "$victim" 2>/dev/null || true
	assert_daemon_alive "after killing a client with 64 reads in flight (round $round)"
done
touch "$T/stop"
wait "$steady" || fail "the steady client saw an error while other clients were killed"
ok "8 clients killed with 64 x 1 MiB reads in flight; another client kept reading correctly"

# Nothing left behind: the runtime tree shows no connections.
no_conns() {
	[[ -d $RUN/connections ]] && [[ -z $(ls -A "$RUN/connections") ]]
}
wait_for 15 no_conns || fail "connections still listed 15 s after every client left: $(ls "$RUN/connections" 2>&1 | head)"
ok "runtime tree: no connections left"

timeout 60 nbdcopy "$URI" "$T/after"
cmp "$T/img" "$T/after" || fail "copy after the abandoned clients differs"
ok "still serving correct data"

stop_daemon
ok "done"
