#!/bin/bash
# test-iscsi-cu — libiscsi's conformance suite (iscsi-test-cu) against the
# iSCSI target.
#
# Every suite of the ALL family runs in its own iscsi-test-cu process with
# -d (destructive tests allowed) against a client's target, whose disk is
# its writable overlay: a hang is caught per suite (timeout), a crash shows
# as a missing run summary, and each suite starts from a fresh session
# (in one long process, state a test leaves behind in libiscsi changes the
# CDBs later tests send). The test fails if any test not listed in ALLOWED
# fails, if a suite crashes or hangs, or if the daemon dies.
#
# The persistent reservation suites (Prin*, Prout*) and Reserve6 must run
# without a "not implemented" skip.
#
# A second pass runs the write suites against an image target (read-only):
# there every write must fail with DATA PROTECT / WRITE PROTECTED.
. "$(dirname "$0")/lib/common.sh"
need iscsi-test-cu
need_bootlink

# Tests allowed to fail, each with the reason.
declare -A ALLOWED=(
	[GetLBAStatus.UnmapSingle]="expects the first LBA status descriptor at the next physical block for an LBA inside a mapped one; SBC-3 starts it at the requested LBA, which is what we return"
	[iSCSIdatasn.iSCSIDataSnInvalid]="a DataSN error drops the connection (ErrorRecoveryLevel 0); libiscsi's reconnect forgets the test's ImmediateData=No, so a later case sends its data as immediate data, with no Data-Out to corrupt, and the write succeeds"
	[iSCSITMF.LUNResetSimpleAsync]="asserts a flag set by the reset's callback right after queueing the reset, before it can have been sent (libiscsi 1.19); passes or fails by timing, the reset itself completes"
)

mkimage "$T/img" 64M
ctl image add img "$T/img"
ctl client add 52:54:00:aa:bb:03 --image img
start_daemon
[[ -n ${ISCSI_ADDR:-} ]] || fail "no iSCSI listener (listen/iscsi)"
CLIENT_URL=iscsi://$ISCSI_ADDR/iqn.2026-11.org.bootlink:client.525400aabb03/0
IMAGE_URL=iscsi://$ISCSI_ADDR/iqn.2026-11.org.bootlink:image.img/0

mapfile -t suites < <(iscsi-test-cu --list | grep -E '^ALL\.[^.]+$')
((${#suites[@]} > 40)) || fail "iscsi-test-cu --list shows only ${#suites[@]} suites"

total=0 passed=0 failed=0 allowed_failed=0 allowed_passed=()
for s in "${suites[@]}"; do
	log=$T/${s#ALL.}.log
	st=0
	timeout 120 iscsi-test-cu -d -n -t "$s" "$CLIENT_URL" >"$log" 2>&1 || st=$?
	((st != 124)) || fail "suite $s hung (no result within 120 s); log: $(tail -5 "$log")"
	sum=$(grep -A3 "Run Summary" "$log" | awk '$1 == "tests" { print $2, $3, $4, $5 }')
	[[ -n $sum ]] || { tail -20 "$log"; fail "suite $s crashed (exit $st, no run summary)"; }
	read -r t r p f <<<"$sum"
	total=$((total + r))
	passed=$((passed + p))
	mapfile -t bad < <(sed -n 's/^Suite \(.*\), Test \(.*\) had failures:.*/\1.\2/p' "$log")
	((${#bad[@]} == f)) || { cat "$log"; fail "suite $s: $f failures but ${#bad[@]} named"; }
	for b in "${bad[@]}"; do
		if [[ -n ${ALLOWED[$b]:-} ]]; then
			echo "allowed failure: $b — ${ALLOWED[$b]}"
			allowed_failed=$((allowed_failed + 1))
		else
			grep -B2 -A12 "Test $b" "$log" | head -40 || true
			grep -A12 "Test ${b#*.} had failures" "$log" | head -20
			failed=$((failed + 1))
			echo "FAILED: $b"
		fi
	done
	assert_daemon_alive "after suite $s"
	printf '%-36s %3d tests, %3d passed, %d failed\n' "$s" "$r" "$p" "$f"
done
for a in "${!ALLOWED[@]}"; do
	grep -q "Test ${a#*.} had failures" "$T/${a%%.*}.log" 2>/dev/null || allowed_passed+=("$a")
done
((${#allowed_passed[@]} == 0)) || echo "note: allowed to fail but passed: ${allowed_passed[*]}"
# Persistent reservations and RESERVE(6) are implemented: their suites must run, not skip.
for s in PrinReadKeys PrinServiceactionRange PrinReportCapabilities ProutRegister ProutReserve ProutClear ProutPreempt; do
	[[ -f $T/$s.log ]] || fail "suite ALL.$s did not run"
	! grep -q "not implemented" "$T/$s.log" || fail "suite ALL.$s skipped tests: $(grep -m 1 'not implemented' "$T/$s.log")"
done
# (Reserve6 reports its skips only in verbose mode; this line comes after them.)
grep -q "RESERVE6 from the second initiator should work now" "$T/Reserve6.log" || fail "suite ALL.Reserve6 skipped its tests"
echo "iscsi-test-cu: $total tests run, $passed passed, $allowed_failed allowed failures, $failed unexpected failures"
((total >= 200)) || fail "only $total tests ran"
((failed == 0)) || fail "$failed tests failed that are not in the allowed list"
ok "iscsi-test-cu: $total tests, no unexpected failure"

# --- read-only target -------------------------------------------------------
for s in ALL.Write10 ALL.WriteVerify16 ALL.ReadOnly; do
	log=$T/ro-${s#ALL.}.log
	timeout 120 iscsi-test-cu -d -n -t "$s" "$IMAGE_URL" >"$log" 2>&1 || true
	grep -q "Run Summary" "$log" || fail "suite $s on the image target crashed"
done
grep -q "DATA PROTECTION(0x07) / ASCQ WRITE_PROTECTED(0x2700)" "$T/ro-Write10.log" ||
	fail "writes to an image target did not fail with DATA PROTECT / WRITE PROTECTED"
! grep -h "successful but should have failed" "$T/ro-Write10.log" "$T/ro-WriteVerify16.log" ||
	fail "a write to an image target succeeded"
grep -A3 "Run Summary" "$T/ro-ReadOnly.log" | awk '$1 == "tests" && $5 != 0 { exit 1 }' || fail "suite ReadOnly failed on the image target"
ok "image target: writes fail with DATA PROTECT / WRITE PROTECTED, ReadOnly suite passes"

stop_daemon
ok "done"
