#!/bin/bash
# test-bench-iscsi-smoke — the iSCSI benchmark harness (bench/iscsi.sh --smoke)
# runs end to end: it starts bootlinkd and tgtd on one small image, gets
# iscsi-perf figures from both, runs two iscsi-test-cu suites on both, stops
# both and writes its report. Figures are never judged (benchmarks are not
# pass/fail); that the harness works, and that bootlinkd survives it, is.
. "$(dirname "$0")/lib/common.sh"
need iscsi-perf iscsi-test-cu iscsi-readcapacity16
need_bootlink
command -v tgtd >/dev/null && command -v tgtadm >/dev/null ||
	skip "tgtd is not installed (Debian package tgt, which make deps installs): the harness's peer"

out=$T/iscsi.md
st=0
BENCH_WORK=$T/work ISCSI_IMAGE_MB=64 ISCSI_OUT=$out timeout 240 "$SRCDIR/bench/iscsi.sh" --smoke >"$T/stdout" 2>"$T/stderr" || st=$?
cat "$T/stderr"
((st == 0)) || fail "bench/iscsi.sh --smoke exited with status $st"
[[ -s $out ]] || fail "no report at $out"
ok "harness ran, report written"

# Both targets produced a figure in both rows, and the ratio column is filled.
for row in "4 KiB random read, QD 32" "1 MiB sequential read, QD 8"; do
	line=$(grep -m 1 -F "| $row " "$out") || fail "no '$row' row in the report"
	awk -F'|' '{ for (i = 4; i <= 6; i++) if ($i !~ /[0-9]/) exit 1 }' <<<"$line" ||
		fail "row '$row' lacks a figure: $line"
done
ok "iscsi-perf figures for bootlinkd and tgtd, with ratios"

# The suite ran on both; bootlinkd neither crashed nor hung in it.
bl=$(grep -m 1 -E '^\| bootlinkd +\| [0-9]+ ' "$out") || fail "no iscsi-test-cu line for bootlinkd"
grep -qE '^\| tgtd +\| [0-9]+ ' "$out" || fail "no iscsi-test-cu line for tgtd"
awk -F'|' '{ gsub(/ /, "", $3); gsub(/ /, "", $7); exit !($3 > 0 && $7 == 0) }' <<<"$bl" ||
	fail "bootlinkd's iscsi-test-cu line: $bl"
ok "iscsi-test-cu counts for both targets: $(tr -s ' ' <<<"$bl")"

# Nothing left running: no tgtd or bootlinkd of this run's scratch directory.
! pgrep -f -- "$T/work" >/dev/null || fail "processes of the run are still alive: $(pgrep -af -- "$T/work")"
ok "done"
