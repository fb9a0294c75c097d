# tcp-cc.sh — sourced by bench/run.sh. With BENCH_TCP_CC=NAME the whole bench
# (every server, fio, iperf3, the storm and iSCSI rows) runs again inside a
# network namespace of its own whose default TCP congestion control is NAME,
# so every peer uses it alike; the host's own setting stays as it is.
#
# A namespace may only choose a name in the host's
# net.ipv4.tcp_allowed_congestion_control; when NAME is not there it is added
# for the moment the namespace's default is set, and the list is put back at
# once. Needs root and ip (iproute2).

# bench_tcp_cc_reexec "$@": returns when BENCH_TCP_CC is unset or we already
# run inside its namespace; otherwise runs run.sh there and exits with its status.
bench_tcp_cc_reexec() {
	local cc=${BENCH_TCP_CC:-} avail allowed ns rc
	[[ -z $cc || -n ${BENCH_TCP_CC_NS:-} ]] && return 0
	[[ $cc =~ ^[a-z0-9_]+$ ]] || die "BENCH_TCP_CC='$cc' is not a congestion control name"
	command -v ip >/dev/null || die "BENCH_TCP_CC needs ip (iproute2)"
	avail=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null)
	grep -qw -- "$cc" <<<"$avail" || modprobe "tcp_$cc" 2>/dev/null
	avail=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null)
	grep -qw -- "$cc" <<<"$avail" || die "BENCH_TCP_CC=$cc: this kernel offers: $avail"
	ns=bootlink-bench.$$
	ip netns add "$ns" || die "BENCH_TCP_CC: cannot create a network namespace (root needed)"
	trap 'ip netns del "$ns" 2>/dev/null' EXIT
	ip -n "$ns" link set lo up
	allowed=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
	grep -qw -- "$cc" <<<"$allowed" || sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed $cc"
	ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$cc"
	rc=$?
	sysctl -qw net.ipv4.tcp_allowed_congestion_control="$allowed"
	((rc == 0)) || die "BENCH_TCP_CC: cannot make $cc the default congestion control in $ns"
	say "BENCH_TCP_CC=$cc: the whole bench runs in network namespace $ns"
	BENCH_TCP_CC_NS=$ns ip netns exec "$ns" "$BASH" "$0" "$@"
	exit $?   # the EXIT trap removes the namespace
}
