#!/bin/bash
# test-fuzz-smoke.sh — a short libFuzzer run of every harness in Kbuild's
# fuzz-y (make fuzz runs them longer): each is built with clang
# (fuzzer + ASan + UBSan) and run FUZZ_SMOKE_SECONDS (default 5) over its
# corpus in a scratch copy. Fails on any crash, leak or sanitizer report.
source "$(dirname "$0")/lib/common.sh"
need clang
secs=${FUZZ_SMOKE_SECONDS:-5}
names=$(make -s -C "$SRCDIR" --no-print-directory -f - print-fuzz <<'MK'
include Kbuild
print-fuzz:
	@echo $(fuzz-y)
	@$(foreach n,$(fuzz-y),echo "$(n)-src $($(n)-src)";)
MK
)
list=$(head -1 <<<"$names")
[[ -n $list ]] || fail "Kbuild lists no fuzz harnesses"
for n in $list; do
	src=$(grep "^$n-src " <<<"$names" | cut -d' ' -f2-)
	(cd "$SRCDIR" && timeout 120 clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Idaemon -D_GNU_SOURCE \
		$src -o "$T/$n") 2>"$T/$n.build" || {
		grep -q "fuzzer" "$T/$n.build" && skip "clang here has no libFuzzer runtime ($(head -1 "$T/$n.build"))"
		fail "$n does not build: $(head -3 "$T/$n.build")"
	}
	mkdir -p "$T/corpus-$n"
	[[ -d $SRCDIR/tests/fuzz/corpus/$n ]] && cp -r "$SRCDIR/tests/fuzz/corpus/$n/." "$T/corpus-$n/"
	timeout $((secs + 60)) "$T/$n" -max_total_time="$secs" -print_final_stats=1 "$T/corpus-$n" >"$T/$n.log" 2>&1 ||
		fail "$n found a crash: $(grep -m3 -E 'ERROR|runtime error|Assertion' "$T/$n.log")"
	runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$T/$n.log" | grep -oE '[0-9]+$')
	ok "$n: ${runs:-?} executions in ${secs} s, 0 crashes"
done
