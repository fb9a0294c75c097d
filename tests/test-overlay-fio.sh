#!/bin/bash
# test-overlay-fio — fio's nbd engine (libnbd) writing and verifying through
# a client's overlay, for an ephemeral client (4 MiB RAM tier, then its
# file) and a persistent one:
#   1. random 4 KiB writes, iodepth 32, two jobs (two connections of the
#      same client at once) on the first 32 MiB, crc32c verify;
#   2. random reads and writes of odd sizes (512 B .. 64 KiB, 512-byte
#      aligned: partial 4 KiB blocks merged with the image), iodepth 16, on
#      the next 24 MiB, crc32c verify;
#   3. the data of run 1 verified again later (--verify_only) on new
#      connections: the ephemeral client within its boot gap; the persistent
#      one after run 1 ended with a flush (--end_fsync) and the daemon was
#      killed with SIGKILL and restarted; as a control, the same check fails
#      on the ephemeral client after the restart.
# The last 8 MiB are never written and must still read as the image.
. "$(dirname "$0")/lib/common.sh"
need fio cmp
need_python_module nbd
need_bootlink
fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"

E=52:54:00:0e:00:01
P=52:54:00:0e:00:02
SIZE=$((64 << 20))
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img"
ctl client add "$E" --image base
ctl client add "$P" --image base --mode persistent
conf=(overlay/dirs=overlays overlay/ram_mb=4 overlay/boot_gap_s=3600 runtime/interval_ms=100)
start_daemon "${conf[@]}"

# fio_run NAME URI ARGS...: run fio, show its output, fail unless it
# verified without an error.
fio_run() {
	local name=$1 uri=$2 st=0
	shift 2
	# In $T: fio leaves its verify state files (*-verify.state) in its working directory.
	(cd "$T" && timeout 120 fio --name="$name" --ioengine=nbd --uri="$uri" --verify_fatal=1 --group_reporting \
		"$@") >"$T/fio-$name.log" 2>&1 || st=$?
	grep -E 'err=|verify|bad magic|IOPS' "$T/fio-$name.log" | head -20
	((st == 0)) || { cat "$T/fio-$name.log"; fail "fio $name exited with status $st"; }
	! grep -qiE 'verify failed|bad magic|bad header|crc32c: verify' "$T/fio-$name.log" ||
		fail "fio $name reported verify errors"
	grep -qE 'err= *0' "$T/fio-$name.log" || fail "fio $name did not report err=0"
	! grep -qE 'err= *[1-9]' "$T/fio-$name.log" || fail "fio $name reported an error"
}
# Run 1's job, for writing and for --verify_only later.
job1=(--rw=randwrite --bs=4k --iodepth=32 --numjobs=2 --size=16M --offset_increment=16M
	--verify=crc32c --verify_interval=4k --randrepeat=1)
job2=(--rw=randrw --bsrange=512-64k --blockalign=512 --iodepth=16 --offset=32M --size=24M
	--verify=crc32c --randrepeat=1)

for mac in "$E" "$P"; do
	uri=$(nbd_uri "client/$mac")
	extra=()
	[[ $mac == "$P" ]] && extra=(--end_fsync=1)
	fio_run "randwrite-$mac" "$uri" "${job1[@]}" "${extra[@]}"
	ok "client $mac: 2 jobs x iodepth 32 random 4 KiB writes verified"
	fio_run "randrw-$mac" "$uri" "${job2[@]}" "${extra[@]}"
	ok "client $mac: random read/write 512 B..64 KiB verified"
done

# The ephemeral client, later, within its boot gap: run 1's data is there.
fio_run verify-"$E" "$(nbd_uri "$E")" "${job1[@]}" --verify_only
ok "client $E: run 1's data verified again on new connections within the boot gap"
timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri "$E")" rf:$((56 << 20)):$((8 << 20)):"$T/img" ||
	fail "client $E: the never-written last 8 MiB do not read as the image"

# The persistent client after SIGKILL and a restart.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
start_daemon "${conf[@]}"
fio_run verify-"$P" "$(nbd_uri "$P")" "${job1[@]}" --verify_only
ok "client $P: run 1's data verified after its flush, kill -9 and a restart"

# The check is real: the ephemeral client's writes went with the restart,
# and --verify_only must say so.
if (cd "$T" && timeout 120 fio --name=negative --ioengine=nbd --uri="$(nbd_uri "$E")" --verify_fatal=1 "${job1[@]}" \
	--verify_only) >"$T/fio-negative.log" 2>&1; then
	cat "$T/fio-negative.log"
	fail "fio --verify_only passed on a client whose writes are gone"
fi
grep -qiE 'verify failed|bad magic|bad header|verify: bad' "$T/fio-negative.log" ||
	{ cat "$T/fio-negative.log"; fail "fio failed on the fresh ephemeral disk, but not with a verify error"; }
ok "control: --verify_only fails on the ephemeral client after the restart (its writes are gone)"

# Never written: the last 8 MiB read as the image on both clients.
timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri "$P")" rf:$((56 << 20)):$((8 << 20)):"$T/img" ||
	fail "client $P: the never-written last 8 MiB do not read as the image"
ok "the never-written last 8 MiB read as the image on both clients"

assert_daemon_alive
stop_daemon
ok "done"
