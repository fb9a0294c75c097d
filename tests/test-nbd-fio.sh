#!/bin/bash
# test-nbd-fio — fio's nbd engine (libnbd) doing random reads with deep
# queues and verification. The export is read-only, so the image file is
# first written by fio's file engine with crc32c verify headers (no
# verification then); then 4 jobs read it back through bootlinkd at random
# offsets and random sizes, iodepth 48, checking every 4 KiB block's header
# (offset) and checksum.
. "$(dirname "$0")/lib/common.sh"
need fio
need_bootlink
fio --enghelp 2>/dev/null | grep -qw nbd || skip "this fio has no nbd engine"

SIZE=128M
common=(--bs=4k --verify=crc32c --verify_interval=4k --size="$SIZE")
# fio saves verify state files (local-*-verify.state) in the current
# directory: keep them in $T, and do not write them at all.
cd "$T"
FIO_NOSTATE=--verify_state_save=0

# 1. The pattern, written locally.
timeout 120 fio --name=pattern --filename="$T/img" --ioengine=psync --rw=write \
	"${common[@]}" --do_verify=0 $FIO_NOSTATE >"$T/fio-write.log" 2>&1 ||
	{ cat "$T/fio-write.log"; fail "fio could not write the pattern"; }
[[ $(stat -c %s "$T/img") == "$(to_bytes $SIZE)" ]] || fail "pattern file has the wrong size"

ctl image add pattern "$T/img"
# Debug level: if a job's connection breaks, the log says which side closed it and why.
start_daemon log/level=debug

# 2. Read and verify through bootlinkd: 4 jobs at once, random offsets,
# random sizes 4k-256k (4 KiB aligned), 48 requests in flight each.
# fio's nbd engine ignores --filename; the URI names the export.
st=0
timeout 240 fio --name=verify --ioengine=nbd --uri="$(nbd_uri pattern)" \
	--rw=randread --bsrange=4k-256k --blockalign=4k --iodepth=48 --numjobs=4 \
	--verify=crc32c --verify_interval=4k --verify_fatal=1 --size="$SIZE" $FIO_NOSTATE \
	--group_reporting >"$T/fio-read.log" 2>&1 || st=$?
cat "$T/fio-read.log"
((st == 0)) || fail "fio verify run exited with status $st"
! grep -qiE 'verify failed|bad magic|bad header' "$T/fio-read.log" || fail "fio reported verify errors"
grep -qE 'err= *0' "$T/fio-read.log" || fail "fio did not report err=0"
ok "fio: 4 jobs x iodepth 48 random reads verified"

# 3. The same over a client's export, sequential, large blocks.
ctl client add 52:54:00:aa:bb:01 --image pattern
wait_for 10 nbd_export_visible client/52:54:00:aa:bb:01 || fail "client export not visible after 10 s"
timeout 120 fio --name=verify --ioengine=nbd --uri="$(nbd_uri client/52:54:00:aa:bb:01)" \
	--rw=read --bs=1m --iodepth=8 --verify=crc32c --verify_interval=4k --verify_fatal=1 \
	--size="$SIZE" $FIO_NOSTATE >"$T/fio-seq.log" 2>&1 || { cat "$T/fio-seq.log"; fail "fio sequential verify over the client export"; }
ok "fio: sequential 1 MiB reads over the client export verified"

# 4. A corrupted copy must fail verification (the check above is real).
cp "$T/img" "$T/bad"
printf 'corrupt!' | dd of="$T/bad" bs=1 seek=$((5 * 1048576 + 100)) conv=notrunc status=none
ctl image add bad "$T/bad"
wait_for 10 nbd_export_visible bad || fail "image 'bad' not visible after 10 s"
if timeout 120 fio --name=verify --ioengine=nbd --uri="$(nbd_uri bad)" --rw=read --bs=64k --iodepth=16 \
	--verify=crc32c --verify_interval=4k --verify_fatal=1 --size="$SIZE" $FIO_NOSTATE >"$T/fio-bad.log" 2>&1; then
	fail "fio verified a corrupted image"
fi
grep -q 'verify failed' "$T/fio-bad.log" || { cat "$T/fio-bad.log"; fail "fio failed on the corrupted image, but not with a verify error"; }
ok "fio detects the corrupted block"

assert_daemon_alive
stop_daemon
ok "done"
