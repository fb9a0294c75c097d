#!/bin/bash
# test-bench-smoke — the benchmark harness runs end to end in seconds (never its figures).
#
# bench/run.sh in quick mode against bootlinkd and nbdkit (1 s per row, one run), with the
# boot-storm smoke (4 clients) and bench/limits.sh (iperf3, O_DIRECT, cold reads, a short
# callgrind count, RSS per idle connection); the report must hold a figure for bootlinkd in
# every row, a ratio to nbdkit, the storm section and the machine-limits section with an
# instruction count. Then BENCH_TCP_CC with a congestion control other than the system's:
# the report says it ran under it in a namespace, and the host's settings are untouched.
# Timings decide nothing here: make bench is where they are read.
. "$(dirname "$0")/lib/common.sh"
need_bootlink
need fio nbdkit iperf3 valgrind python3
fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"

out=$T/quick.md
BENCH_QUICK=1 BENCH_ISCSI=0 BENCH_SECONDS=1 BENCH_IMAGE_MB=64 BENCH_SERVERS="bootlinkd nbdkit" BENCH_OUT="$out" \
	LIMITS_CG_IOS=2000 LIMITS_IDLE=32 STORM_CLIENTS=2 STORM_MB=4 STORM_IMAGE_MB=64 \
	timeout 280 "$SRCDIR/bench/run.sh" >"$T/bench.out" 2>"$T/bench.err" ||
	{ tail -n 30 "$T/bench.err"; fail "bench/run.sh exited with status $?"; }
[[ -s $out ]] || fail "no report at $out"
for row in "1 MiB seq read, QD 8, 1 job" "4 KiB random read, QD 32, 1 job" "4 KiB random read, QD 32, 2 jobs"; do
	line=$(grep -F "| $row " "$out" | head -n 1)
	[[ -n $line ]] || fail "the report has no row '$row'"
	[[ $line =~ \|\ +[0-9][0-9\ .]*\ +\| ]] || fail "row '$row' has no figure: $line"
	[[ $line == *"× vs nbdkit"* ]] || fail "row '$row' has no ratio to nbdkit: $line"
done
ok "every row has a bootlinkd figure and a ratio to nbdkit"
grep -q "^## The client's CPU" "$out" || fail "no table of fio's own CPU"
line=$(grep -F "| 4 KiB random read, QD 32, 1 job " "$out" | tail -n 1)
[[ $line =~ \|\ +[0-9]+\.[0-9]+ ]] || fail "the client-CPU table has no figure for the 1-job row: $line"
ok "the client's CPU is reported per row"
grep -q '^## Boot storm' "$out" || fail "no boot-storm section"
ok "boot-storm section present"
grep -q '^## Machine limits' "$out" || fail "no machine-limits section"
line=$(grep -F '| user-space instructions per 4 KiB read' "$out")
if [[ $SANITIZE == 1 ]]; then
	# valgrind cannot run an AddressSanitizer build: the row must say so.
	[[ $line == *"AddressSanitizer build"* ]] || fail "ASan build: the instruction row does not say why it is n/a: $line"
	instr="none (an ASan build: valgrind cannot run it, and the report says so)"
else
	[[ $line =~ \|\ ([0-9]+)\ \| ]] || fail "no instruction count: $line"
	instr=${BASH_REMATCH[1]}
fi
grep -F 'vs one TCP stream over loopback' "$out" | grep -qE '\| [0-9]+ %' || fail "no TCP ratio"
grep -F 'cold 1 MiB sequential reads' "$out" | grep -qE '\| [0-9]+ %' || fail "no cold-read ratio"
ok "machine limits: TCP and cold-read ratios; instructions per cached 4 KiB read: $instr"

# BENCH_TCP_CC: the whole bench in a namespace of its own with another
# congestion control; the host's lists are left as they were.
sys=$(sysctl -n net.ipv4.tcp_congestion_control)
allowed=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
other=""
for cc in $(cat /proc/sys/net/ipv4/tcp_available_congestion_control); do
	[[ $cc != "$sys" ]] && other=$cc && break
done
if [[ -z $other ]]; then
	echo "note: BENCH_TCP_CC not tried: the kernel offers only $sys"
else
	out2=$T/cc.md
	BENCH_TCP_CC=$other BENCH_QUICK=1 BENCH_ISCSI=0 BENCH_STORM=0 BENCH_LIMITS=0 BENCH_SECONDS=1 \
		BENCH_IMAGE_MB=64 BENCH_SERVERS=bootlinkd BENCH_OUT="$out2" \
		timeout 120 "$SRCDIR/bench/run.sh" >"$T/cc.out" 2>"$T/cc.err" ||
		{ tail -n 20 "$T/cc.err"; fail "BENCH_TCP_CC=$other: bench/run.sh exited with status $?"; }
	grep -F -- "- TCP over loopback: congestion control $other," "$out2" | grep -q "network namespace" ||
		fail "BENCH_TCP_CC=$other: the report does not say so: $(grep -F 'TCP over' "$out2")"
	grep -F "| 4 KiB random read, QD 32, 1 job " "$out2" | head -n 1 | grep -qE '\| +[0-9][0-9 .]* +\|' ||
		fail "BENCH_TCP_CC=$other: no bootlinkd figure"
	[[ $(sysctl -n net.ipv4.tcp_congestion_control) == "$sys" ]] || fail "the host's congestion control changed"
	[[ $(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control) == "$allowed" ]] ||
		fail "the host's allowed list changed: $(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control), was $allowed"
	! ip netns list | grep -q bootlink-bench || fail "a bootlink-bench network namespace was left behind"
	ok "BENCH_TCP_CC=$other: figures under $other, said in the report; the host's settings untouched, no namespace left"
fi
