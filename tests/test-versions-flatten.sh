#!/bin/bash
# test-versions-flatten — `image flatten` as a background job.
#
#   1. A maintenance client's commit makes version 2 (a delta). `image
#      flatten base` returns at once with job 1 running (slowed down with
#      the test hook BOOTLINK_TEST_JOB_KBPS so it runs for seconds):
#      `bootlinkctl jobs` shows its progress moving, a second flatten of the
#      image is refused naming the job, and clients keep reading the right
#      bytes meanwhile. When the job is done, version 3 (flattened) is
#      current, its file is the expected bytes, the export and an ephemeral
#      client's next boot read the same sha256, and `jobs` shows it done
#      with done_bytes = total_bytes.
#   2. Another commit (version 4), another slowed flatten, kill -9 of the
#      job's process while its partial file is being written: the next
#      `bootlinkctl jobs` reports the job failed ("interrupted"), the
#      partial file is gone, version 4 is still current and served (same
#      sha256), and an `image flatten --wait` afterwards makes version 5
#      with the same bytes. The event log has the start, the interruption
#      and the flatten.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy sha256sum cmp python3
need_python_module nbd
need_bootlink

M=52:54:00:0f:00:01 # maintenance
E=52:54:00:0f:00:02 # ephemeral
SIZE=$(to_bytes 24M+1000)
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img" >/dev/null
ctl client add "$M" --image base --mode maintenance >/dev/null
ctl client add "$E" --image base >/dev/null
start_daemon overlay/dirs=overlays paths/versions=vstore overlay/boot_gap_s=0 runtime/interval_ms=100

nt() { timeout 120 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
mkexpect() { timeout 60 python3 "$TESTS/overlay/mkexpect.py" "$@"; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
rt_is() { [[ $(rt "$1" "$2") == "$3" ]]; }
rt() { cat "$RUN/clients/$1/$2" 2>/dev/null || true; }
disk_sum() {
	rm -f "$T/disk"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/disk" && sha256sum <"$T/disk" | cut -d' ' -f1
}
loads() { grep -c "loaded from the database" "$T/daemon.log" || true; }
loads_above() { (($(loads) > $1)); }
sum_is() { [[ $(disk_sum "$1") == "$2" ]]; }
# job ID EXPR: EXPR (python, j = the job) over `bootlinkctl --json jobs`.
job() { ctl --json jobs | json "[$2 for j in d['jobs'] if j['id'] == $1][0]"; }
job_is() { [[ $(job "$1" "j['state']") == "$2" ]]; }
midway() { [[ $(job "$1" "j['state'] == 'running' and 0 < j['done_bytes'] < j['total_bytes']") == True ]]; }
# commit_set EDIT...: the maintenance client writes (nbdtool steps), then a commit.
commit_set() {
	nt "$(nbd_uri "$M")" "$@" flush || fail "$M: writes failed"
	wait_for 5 rt_is "$M" connections 0 || fail "$M still connected"
	local n
	n=$(loads)
	ctl image commit base >/dev/null
	wait_for 10 loads_above "$n" || fail "the daemon did not reload the database after the commit"
}
# 24 MiB at 2 MiB/s: 12 s of flatten.
slow=(env BOOTLINK_TEST_JOB_KBPS=2048)

# ---- 1. a background flatten completes; clients read the same bytes
W2=(w:0:5000:1 w:$((3 << 20)):70000:1 w:-1000:1000:1 w:$((20 << 20)):$((1 << 20)):1)
commit_set "${W2[@]}"
want2=$(mkexpect "$T/img" "$T/v2" "${W2[@]}")
wait_for 10 sum_is base "$want2" || fail "version 2 is not served"
"${slow[@]}" "$BUILD/bootlinkctl" -c "$T/conf" --json image flatten base >"$T/f1.json"
[[ $(json 'd["result"], d["job"]["id"], d["job"]["state"], d["job"]["version"]' <"$T/f1.json") == "started 1 running 3" ]] ||
	fail "flatten did not start a background job: $(cat "$T/f1.json")"
pid=$(json 'd["job"]["pid"]' <"$T/f1.json")
raw=$(json 'd["job"]["path"]' <"$T/f1.json")
_PIDS+=("$pid") # killed at exit if the test fails while it runs
job_is 1 running || fail "job 1 is not running right after the command returned: $(ctl jobs)"
ok "image flatten returned at once: job 1 (pid $pid) running, writing $(basename "$raw")"
wait_for 20 midway 1 || fail "job 1 never showed progress between 0 and its total: $(ctl jobs)"
ctl jobs | grep -Eq "^ *1 +flatten +base +running +[0-9.]+ [KM]iB of 24 MiB \([0-9]+%\)" || fail "jobs: $(ctl jobs)"
if ctl image flatten base >"$T/out" 2>&1; then fail "a second flatten started while job 1 runs"; fi
grep -q "already running as job 1" "$T/out" || fail "second flatten: $(cat "$T/out")"
[[ $(disk_sum "$E") == "$want2" ]] || fail "$E does not read version 2 while the flatten runs"
job_is 1 running || fail "job 1 ended before the checks made while it runs (make it slower)"
ok "while job 1 runs: progress in jobs, a second flatten refused, $E reads version 2"
wait_for 60 job_is 1 done || fail "job 1 did not finish: $(ctl jobs)"
[[ $(job 1 "(j['done_bytes'] == j['total_bytes'] == $SIZE, j['error'] == '')") == "(True, True)" ]] ||
	fail "job 1 done: $(ctl --json jobs)"
ctl --json image versions base >"$T/versions.json"
[[ $(json 'd["current"], d["versions"][2]["kind"], d["chain"]["deltas"]' <"$T/versions.json") == "3 flattened []" ]] ||
	fail "versions after job 1: $(cat "$T/versions.json")"
cmp "$raw" "$T/v2" || fail "the flattened file is not version 2's bytes"
[[ ! -e $raw.tmp ]] || fail "$raw.tmp left behind"
wait_for 10 sum_is base "$want2" || fail "the export after the flatten"
[[ $(disk_sum "$E") == "$want2" ]] || fail "$E's next boot after the flatten reads other bytes"
ok "job 1 done: version 3 flattened and current, same sha256 for the export and $E"

# ---- 2. kill -9 of a flatten mid-way
W4=(w:100:200:2 w:$((10 << 20)):$((2 << 20)):2)
commit_set "${W4[@]}"
want4=$(mkexpect "$T/v2" "$T/v4" "${W4[@]}")
wait_for 10 sum_is base "$want4" || fail "version 4 is not served"
"${slow[@]}" "$BUILD/bootlinkctl" -c "$T/conf" --json image flatten base >"$T/f2.json"
[[ $(json 'd["result"], d["job"]["id"], d["job"]["version"]' <"$T/f2.json") == "started 2 5" ]] ||
	fail "second flatten: $(cat "$T/f2.json")"
pid=$(json 'd["job"]["pid"]' <"$T/f2.json")
raw=$(json 'd["job"]["path"]' <"$T/f2.json")
_PIDS+=("$pid")
wait_for 20 midway 2 || fail "job 2 never got mid-way: $(ctl jobs)"
[[ -e $raw.tmp ]] || fail "job 2 is not writing $raw.tmp"
kill -9 "$pid"
wait_for 10 job_is 2 failed || fail "job 2 not reported failed after kill -9: $(ctl --json jobs)"
[[ $(job 2 "'interrupted' in j['error']") == True ]] || fail "job 2's error: $(job 2 "j['error']")"
[[ ! -e $raw.tmp && ! -e $raw ]] || fail "job 2's files were not removed: $(ls -l "$raw"* 2>&1)"
ctl --json image versions base >"$T/versions.json"
[[ $(json 'd["current"], len(d["versions"])' <"$T/versions.json") == "4 4" ]] ||
	fail "versions after the killed flatten: $(cat "$T/versions.json")"
[[ $(disk_sum base) == "$want4" && $(disk_sum "$E") == "$want4" ]] || fail "version 4 is not served after the killed flatten"
ok "kill -9 of job 2 mid-way: reported failed (interrupted), partial file removed, version 4 still served"

ctl --json image flatten base --wait >"$T/f3.json"
[[ $(json 'd["result"], d["job"]["id"], d["job"]["state"], d["version"]["number"]' <"$T/f3.json") == "flattened 3 done 5" ]] ||
	fail "flatten --wait: $(cat "$T/f3.json")"
cmp "$(json 'd["version"]["path"]' <"$T/f3.json")" "$T/v4" || fail "version 5 is not version 4's bytes"
wait_for 10 sum_is base "$want4" || fail "the export after flatten --wait"
ok "flatten --wait afterwards: version 5 (job 3), version 4's bytes"

ctl --json events | json '"\n".join(e["text"] for e in d["events"])' >"$T/events"
for w in "image flatten base: job 1 started" "image flatten base: version 2 (1 delta) -> version 3" \
	"image flatten base: job 2 interrupted" "image flatten base: version 4 (1 delta) -> version 5"; do
	grep -qF "$w" "$T/events" || fail "no event '$w': $(cat "$T/events")"
done
assert_daemon_alive
stop_daemon
ok "done"
