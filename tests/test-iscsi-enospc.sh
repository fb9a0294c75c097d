#!/bin/bash
# test-iscsi-enospc — a client's overlay disk fills up under iSCSI writes.
# The overlay directory is an 8 MiB tmpfs and the RAM tier 1 MiB, so a
# 32 MiB client disk cannot take all it is sent: the first write that does
# not fit must fail with CHECK CONDITION, DATA PROTECT / SPACE ALLOCATION
# FAILED WRITE PROTECT (0x07, 0x27/0x07), not a hang or a dropped
# connection; what was written before reads back, SYNCHRONIZE CACHE still
# succeeds, the session goes on, and the daemon keeps serving.
. "$(dirname "$0")/lib/common.sh"
need mount umount python3
need_bootlink
((EUID == 0)) || skip "mounting a tmpfs needs root"

mkdir -p "$T/conf/small"
mount -t tmpfs -o size=8m,mode=0700 tmpfs "$T/conf/small" 2>"$T/mount.err" ||
	skip "cannot mount a tmpfs here: $(head -c 200 "$T/mount.err")"
_unmount() {
	local rc=$?
	set +e
	trap - ERR
	umount -l "$T/conf/small" 2>/dev/null
	return "$rc"
}
trap '_unmount; _cleanup' EXIT

mkimage "$T/img" 32M
ctl image add base "$T/img"
ctl client add 52:54:00:0e:00:01 --image base --mode persistent
start_daemon overlay/dirs=small overlay/ram_mb=1 iscsi/nop_interval_s=0
export ISCSI_HOST ISCSI_PORT
TARGET=iqn.2026-11.org.bootlink:client.5254000e0001 timeout 300 python3 - "$TESTS/iscsi" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import rawiscsi as ri
c = ri.Conn(os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"])
c.login(target=os.environ["TARGET"])
chunk = 1 << 20
written = []
for i in range(32):
    data = os.urandom(chunk)
    lba = i * chunk // 512
    st, r2ts = c.write(bytes([0x2a, 0]) + lba.to_bytes(4, "big") + b"\0" + (chunk // 512).to_bytes(2, "big") + b"\0", data)
    if st != 0:
        break
    written.append((lba, data))
else:
    raise AssertionError("32 MiB fitted in an 8 MiB overlay directory")
print(f"write {i} failed with status {st} after {len(written)} MiB", flush=True)
assert st == 2, f"status {st}, expected CHECK CONDITION"
# the SCSI Response carried the sense: 2-byte length, then fixed-format sense
p = c.last_rsp
sense = p.data[2:]
assert sense[2] & 0x0f == 0x07 and (sense[12], sense[13]) == (0x27, 0x07), f"sense {sense.hex()}"
assert written, "not even one MiB fitted"
for lba, data in written:
    st, back, _ = c.scsi(bytes([0x28, 0]) + lba.to_bytes(4, "big") + b"\0" + (chunk // 512).to_bytes(2, "big") + b"\0",
                         edtl=chunk, read=True)
    assert st == 0 and back == data, f"MiB at LBA {lba} does not read back"
st, _, _ = c.scsi(bytes([0x35]) + b"\0" * 9)
assert st == 0, "SYNCHRONIZE CACHE after ENOSPC"
assert c.ping()
PY
assert_daemon_alive "after ENOSPC"
grep -q "5254000e0001\|52:54:00:0e:00:01" "$T/daemon.log" || fail "the log does not name the client"
ok "a full overlay disk: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT, earlier data intact, flush and session fine"
stop_daemon
ok "done"
