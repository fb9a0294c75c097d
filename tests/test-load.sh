#!/bin/bash
# test-load — many connections at once, with bounded memory:
#  1. LOAD_NBD (500) NBD connections and LOAD_ISCSI (500) iSCSI sessions are
#     opened (each negotiates and reads once, checked) and held idle; the
#     daemon's RSS over its baseline divided by the connections is the cost of
#     an idle connection (printed, and must stay under 64 KiB);
#  2. limits/max_connections lowered live to what is open + 5: of 20 more
#     connections at least 15 are closed at once, with one log line (rate-limited);
#  3. with those still held, a storm of LOAD_STORM (500) NBD clients connect in
#     the same second, each negotiating and reading once: all served, none failed;
#  4. everything closes: the held connections still answered a read each, the
#     runtime tree shows no connection, and RSS comes back to within
#     max(8 MiB, a quarter of the peak's growth) of the baseline.
# Figures go to the log and docs/hardening.md. `LOAD_NBD=5000 ...` for bigger runs.
. "$(dirname "$0")/lib/common.sh"
need python3
need_bootlink

N_NBD=${LOAD_NBD:-500}
N_ISCSI=${LOAD_ISCSI:-500}
N_STORM=${LOAD_STORM:-500}
N=$((N_NBD + N_ISCSI))
want_fds=$((N + N_STORM + 512))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= want_fds)) || skip "need $want_fds open files, the hard limit is $(ulimit -Hn)"

LOAD=$TESTS/load/loadclient.py
# The runtime tree on tmpfs, as /run is on the appliance: a thousand
# connections' entries on this (shared, busy) disk take the main thread many
# seconds to write.
if SHM=$(mktemp -d /dev/shm/bootlink-load.XXXXXX 2>/dev/null); then
	mkdir -p "$T/conf"
	ln -s "$SHM" "$T/conf/run"
	trap 'rm -rf "$SHM"; _cleanup' EXIT
fi
mkimage "$T/img" 1M
ctl image add img "$T/img"
start_daemon workers=2 limits/max_connections=$((N + N_STORM + 100)) iscsi/nop_interval_s=0 \
	limits/handshake_timeout_s=120
export NBD_HOST NBD_PORT ISCSI_HOST ISCSI_PORT IMAGE=$T/img EXPORT=img TARGET=iqn.2026-11.org.bootlink:image.img

rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$DAEMON_PID/status"; }
conns() { cat "$RUN/totals/connections" 2>/dev/null || echo -1; }
conns_are() { [[ $(conns) == "$1" ]]; }
kib() { echo "$(($1 / 1024)) KiB"; }

# Warm up (first export open, cache block, thread arenas), then the baseline.
timeout 60 python3 "$LOAD" storm 32 >/dev/null
timeout 60 python3 "$LOAD" hold 8 8 "$T/warm" "$T/no-such-file" >/dev/null
wait_for 20 conns_are 0 || fail "connections left after the warm-up: $(conns)"
base=$(rss)

# ---- 1. hold N idle connections
touch "$T/release"
timeout 300 python3 "$LOAD" hold "$N_NBD" "$N_ISCSI" "$T/ready" "$T/release" >"$T/hold.out" 2>&1 &
hold_pid=$!
_PIDS+=($hold_pid)
wait_for 240 test -s "$T/ready" || fail "the $N connections were not all open within 240 s: $(tail -3 "$T/hold.out")"
read -r _ _ open_s <"$T/ready"
wait_for 20 conns_are "$N" || fail "runtime tree shows $(conns) connections, expected $N"
held=$(rss)
per=$(((held - base) / N))
echo "held $N idle connections ($N_NBD NBD + $N_ISCSI iSCSI, opened in $open_s s): RSS $(kib "$base") -> $(kib "$held"), $per bytes per idle connection"
((per < 65536)) || fail "an idle connection costs $per bytes of RSS"
assert_daemon_alive
ok "$N connections held, $per bytes of daemon RSS each"

# ---- 2. limits/max_connections, live
before=$(grep -c "connection refused: limits/max_connections" "$T/daemon.log" || true)
conf_set limits/max_connections $((N + 5))
wait_for 10 grep -q "limits/max_connections changed" "$T/daemon.log" || fail "limits/max_connections not applied"
timeout 120 python3 "$LOAD" refused 20 >"$T/refused.out"
refused=$(awk '{print $2}' "$T/refused.out")
((refused >= 15)) || fail "only $refused of 20 connections over limits/max_connections were refused"
after=$(grep -c "connection refused: limits/max_connections" "$T/daemon.log" || true)
((after - before >= 1 && after - before <= 5)) ||
	fail "refusals logged $((after - before)) times for $refused refusals, expected a few (rate-limited)"
conf_set limits/max_connections $((N + N_STORM + 100))
wait_for 10 eval '[[ $(grep -c "limits/max_connections changed" "$T/daemon.log") == 2 ]]' ||
	fail "limits/max_connections not raised again"
wait_for 20 conns_are "$N" || fail "runtime tree shows $(conns) connections after the refusals, expected $N"
ok "over limits/max_connections: $refused of 20 refused, $((after - before)) log line(s)"

# ---- 3. a connection storm on top
timeout 180 python3 "$LOAD" storm "$N_STORM" | tee "$T/storm.out"
peak=$(rss)
ok "storm of $N_STORM served with $N connections held"

# ---- 4. everything closes; memory comes back
rm "$T/release"
wait "$hold_pid" || fail "the held connections were not all usable at the end: $(tail -3 "$T/hold.out")"
cat "$T/hold.out"
wait_for 30 conns_are 0 || fail "runtime tree shows $(conns) connections after all closed"
wait_for 10 eval '(( $(rss) - base <= (8 << 20) || $(rss) - base <= (peak - base) / 4 ))' || true
end=$(rss)
echo "after close: RSS $(kib "$end") (baseline $(kib "$base"), peak $(kib "$peak"))"
((end - base <= (8 << 20) || end - base <= (peak - base) / 4)) ||
	fail "RSS did not come back: baseline $(kib "$base"), peak $(kib "$peak"), now $(kib "$end")"
assert_daemon_alive
ok "all closed, RSS back near its baseline"
stop_daemon
