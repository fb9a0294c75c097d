#!/bin/bash
# test-tcp-congestion — net/tcp_congestion: the connections bootlinkd accepts
# use the congestion control it names (ss shows it on an open NBD
# connection), not the system's; a name the kernel does not offer gives one
# clear log line, and connections keep the system's default.
. "$(dirname "$0")/lib/common.sh"
need_python_module nbd
need_bootlink
need ss

sys=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null) || skip "cannot read net.ipv4.tcp_congestion_control"
other=""
for cc in $(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null); do
	[[ $cc != "$sys" ]] && other=$cc && break
done
[[ -n $other ]] || skip "the kernel offers only one congestion control ($sys): nothing to switch to"

mkimage "$T/img" $((1 << 20))
ctl image add base "$T/img"

# cc_of_open_connection: the congestion control ss reports for the one
# established connection to the daemon's NBD port, held open by nbdtool.
cc_of_open_connection() {
	rm -f "$T/hold"
	timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri base)" hold:"$T/hold" &
	local pid=$!
	wait_for 10 test -e "$T/hold" || fail "the holding client did not connect"
	local info
	info=$(ss -tinH state established "( sport = :$NBD_PORT )")
	rm -f "$T/hold"
	wait "$pid" || fail "the holding client failed"
	[[ -n $info ]] || fail "ss shows no connection on port $NBD_PORT"
	grep -oE "\b(reno|cubic|bbr|bbr2|dctcp|vegas|westwood|htcp|bic|illinois|yeah|lp|hybla|highspeed|scalable|veno|nv|cdg)\b" <<<"$info" | head -n 1
}

start_daemon net/tcp_congestion="$other"
got=$(cc_of_open_connection)
[[ $got == "$other" ]] || fail "net/tcp_congestion=$other: the connection uses '$got' (system default: $sys)"
ok "net/tcp_congestion=$other: an accepted NBD connection uses $other (the system's default is $sys)"
stop_daemon

start_daemon net/tcp_congestion=nosuch
said() { grep -q "net/tcp_congestion: 'nosuch' cannot be used" "$T/daemon.log"; }
wait_for 5 said || fail "no log line for an unknown congestion control: $(tail -n 5 "$T/daemon.log")"
[[ $(grep -c "net/tcp_congestion: 'nosuch'" "$T/daemon.log") == 1 ]] || fail "the unknown name was logged more than once"
grep "net/tcp_congestion: 'nosuch'" "$T/daemon.log" | grep -q "this kernel offers: " ||
	fail "the log line does not list what the kernel offers"
got=$(cc_of_open_connection)
[[ $got == "$sys" ]] || fail "with an unknown name the connection uses '$got', not the system's $sys"
ok "net/tcp_congestion=nosuch: one log line naming it and the choices; connections use $sys"
assert_daemon_alive
stop_daemon
