#!/bin/bash
# test-faults — disk faults injected by bootlinkd-faults (debug/faults, see
# daemon/faults.h) reach the right client as the right error, are logged once
# naming it, and leave every other client reading correct data:
#   image read EIO (image "bad", its 2nd MiB): NBD EIO to the clients of
#     "bad" (client export and image export), SCSI MEDIUM ERROR / UNRECOVERED
#     READ ERROR (03/11 00) over iSCSI; the rest of "bad" reads right; after
#     the rule is removed the same range reads right (the cache kept nothing);
#   overlay write ENOSPC (one NBD client, one iSCSI client): NBD ENOSPC, SCSI
#     DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (07/27 07);
#   overlay write EIO (one NBD client): NBD EIO; overlay flush EIO (another): the
#     FLUSH fails with EIO;
#   short reads and writes (image "good" and client B's overlay file): every
#     byte still right;
#   slow disk (image "slow", 3 s per read, one worker): a read of "slow" is
#     answered 3 s late while another client's 32 disk reads are served
#     meanwhile (the worker is not blocked).
. "$(dirname "$0")/lib/common.sh"
need python3
need_python_module nbd
need_bootlink
DAEMON_BIN=bootlinkd-faults
[[ -x $BUILD/$DAEMON_BIN ]] || skip "$BUILD/$DAEMON_BIN is not built (run make)"

TOOL=$TESTS/overlay/nbdtool.py
MB=1048576
mkimage "$T/good" 8M
mkimage "$T/bad" 8M
mkimage "$T/slow" 8M
mkimage "$T/fast" 8M
ctl image add good "$T/good"
ctl image add bad "$T/bad"
ctl image add slow "$T/slow"
ctl image add fast "$T/fast"
A=52:54:00:fa:00:01 # bad, NBD: image read EIO
B=52:54:00:fa:00:02 # good, NBD: short overlay reads/writes, must see nothing else
C=52:54:00:fa:00:03 # good, NBD: overlay write ENOSPC
D=52:54:00:fa:00:04 # good, NBD: overlay write EIO
E=52:54:00:fa:00:05 # good, iSCSI: overlay write ENOSPC
F=52:54:00:fa:00:06 # bad, iSCSI: image read EIO
G=52:54:00:fa:00:07 # good, NBD: overlay flush EIO
for m in $A $B $C $D $E $F $G; do
	img=good
	[[ $m == "$A" || $m == "$F" ]] && img=bad
	ctl client add "$m" --image $img --mode persistent
done
start_daemon workers=1 overlay/dirs=overlays iscsi/nop_interval_s=0 runtime/interval_ms=100 cache/size_mb=64
uri() { nbd_uri "client/$1"; }
tool() { timeout 60 python3 "$TOOL" "$@"; }

# Every client boots (its overlay is made) before any fault: an overlay
# write EIO marks the directory failed for new overlays.
for m in $A $B $D $G; do
	tool "$(uri $m)" "rf:0:65536:$T/$([[ $m == "$A" ]] && echo bad || echo good)"
done
tool "$(uri $C)" "w:0:65536:3" "flush"
export ISCSI_HOST ISCSI_PORT
iscsi_py() { timeout 120 python3 - "$TESTS/iscsi" "$@"; }
iscsi_py "$E" "$F" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import os, rawiscsi as ri
for mac in sys.argv[2:]:
    c = ri.Conn(os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"])
    c.login(target="iqn.2026-11.org.bootlink:client." + mac.replace(":", ""))
    st, _, _ = c.scsi(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0]), edtl=4096, read=True)
    assert st == 0, f"{mac}: first read status {st}"
    c.logout()
PY
ok "seven clients booted without faults"

RULES="image-read eio image=bad off=$MB-$((2 * MB)); image-read short image=good;"
RULES+=" image-read delay image=slow ms=3000;"
RULES+=" overlay-write enospc client=$C; overlay-write eio client=$D; overlay-write enospc client=$E;"
RULES+=" overlay-read short client=$B; overlay-write short client=$B; overlay-flush eio client=$G"
conf_set debug/faults "$RULES"
wait_for 10 grep -q "fault injection: rule 9:" "$T/daemon.log" || fail "the fault rules were not loaded"
ok "rules loaded live"

# --- image read EIO ----------------------------------------------------------
steps=()
for i in $(seq 0 19); do steps+=("er:$((MB + i * 4096 * 3)):4096:EIO"); done
tool "$(uri $A)" "${steps[@]}" "rf:0:$MB:$T/bad" "rf:$((2 * MB)):$((6 * MB)):$T/bad"
tool "$(nbd_uri bad)" "er:$((MB + 65536)):65536:EIO" "rf:$((3 * MB)):$MB:$T/bad"
ok "NBD: 20 reads of bad's 2nd MiB fail with EIO, the rest of bad reads right (client and image export)"
iscsi_py "$F" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import os, rawiscsi as ri
c = ri.Conn(os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"])
c.login(target="iqn.2026-11.org.bootlink:client." + sys.argv[2].replace(":", ""))
st, _, p = c.scsi(bytes([0x28, 0, 0, 0, 0x08, 0, 0, 0, 16, 0]), edtl=8192, read=True)  # LBA 2048 = 1 MiB
assert st == 2, f"status {st}, expected CHECK CONDITION"
sense = p.data[2:]
assert sense[2] & 0x0f == 0x03 and (sense[12], sense[13]) == (0x11, 0x00), f"sense {sense.hex()}, expected 03/11 00"
st, data, _ = c.scsi(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 16, 0]), edtl=8192, read=True)
assert st == 0 and len(data) == 8192, "LBA 0 after the error"
assert c.ping(), "session after MEDIUM ERROR"
print("iSCSI: MEDIUM ERROR / UNRECOVERED READ ERROR, session goes on")
PY

# --- overlay write ENOSPC / EIO, short transfers -----------------------------
tool "$(uri $C)" "ew:$MB:65536:ENOSPC" "ew:$((2 * MB)):4096:ENOSPC" \
	"ew:$((3 * MB)):65536:ENOSPC" "r:0:65536:3" "rf:$MB:65536:$T/good" "flush"
ok "NBD: client C's writes fail with ENOSPC after the rule, what it wrote before reads back, flush works"
tool "$(uri $D)" "ew:$MB:65536:EIO" "ew:$((2 * MB)):65536:EIO" "rf:$MB:65536:$T/good"
ok "NBD: client D's writes fail with EIO"
tool "$(uri $G)" "w:$MB:65536:4" "ef:EIO" "r:$MB:65536:4"
grep -q "client $G: overlay flush failed on .*Input/output error" "$T/daemon.log" || fail "client G's flush EIO not logged"
ok "NBD: client G's flush fails with EIO (its write still reads back)"
iscsi_py "$E" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import os, rawiscsi as ri
c = ri.Conn(os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"])
c.login(target="iqn.2026-11.org.bootlink:client." + sys.argv[2].replace(":", ""))
st, _ = c.write(bytes([0x2a, 0, 0, 0, 0x10, 0, 0, 0, 128, 0]), os.urandom(65536))
assert st == 2, f"write status {st}, expected CHECK CONDITION"
sense = c.last_rsp.data[2:]
assert sense[2] & 0x0f == 0x07 and (sense[12], sense[13]) == (0x27, 0x07), f"sense {sense.hex()}, expected 07/27 07"
assert c.ping(), "session after ENOSPC"
print("iSCSI: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT")
PY
steps=()
for i in 0 1 2 3; do steps+=("w:$((i * MB)):$((256 * 1024)):$((20 + i))"); done
tool "$(uri $B)" "${steps[@]}" "flush" "r:0:$((256 * 1024)):20" "r:$((3 * MB)):$((256 * 1024)):23" \
	"rf:$((5 * MB)):$((3 * MB)):$T/good"
tool "$(nbd_uri good)" "rf:0:$((8 * MB)):$T/good"
ok "client B (short overlay reads and writes) and the image export of good (short image reads) read every byte right"

# --- slow disk ---------------------------------------------------------------
SLOW=$(nbd_uri slow) FAST=$(nbd_uri fast) IMG=$T/slow GOOD=$T/fast timeout 60 python3 - <<'PY'
import os, time, nbd
slow, fast = nbd.NBD(), nbd.NBD()
slow.connect_uri(os.environ["SLOW"])
fast.connect_uri(os.environ["FAST"])
buf = nbd.Buffer(65536)
t0 = time.monotonic()
cookie = slow.aio_pread(buf, 4 << 20)
good = open(os.environ["GOOD"], "rb").read()
for i in range(32):  # 64 KiB blocks of "fast" never read before: disk reads
    off = i * 65536
    assert fast.pread(4096, off) == good[off:off + 4096], "fast client's data"
t_fast = time.monotonic() - t0
slow.poll(0)
assert not slow.aio_command_completed(cookie), f"the slow read was answered within {t_fast:.2f} s"
while not slow.aio_command_completed(cookie):
    slow.poll(-1)
t_slow = time.monotonic() - t0
want = open(os.environ["IMG"], "rb").read()[4 << 20:(4 << 20) + 65536]
assert buf.to_bytearray() == want, "slow read's data"
assert t_slow >= 2.9, f"slow read answered after {t_slow:.2f} s, expected >= 3"
print(f"slow read answered after {t_slow:.2f} s; 32 reads of another client took {t_fast:.2f} s meanwhile (one worker)")
PY

# --- logs: once per client, naming it; nobody else named ---------------------
n=$(grep -c "export=client/$A: request type 0 .* failed: Input/output error" "$T/daemon.log" || true)
((n == 1)) || fail "client A's failed reads logged $n times, expected once (rate-limited)"
n=$(grep -c "image 'bad' version 1: read of .* failed: Input/output error" "$T/daemon.log" || true)
# 22 failed reads over three clients, one line per 10 s (a second one if the
# machine is slow enough for the test to take longer).
((n >= 1 && n <= 2)) || fail "image bad's 22 read errors logged $n times, expected once (rate-limited)"
n=$(grep -c "client $C: overlay write failed on .*No space left" "$T/daemon.log" || true)
((n == 1)) || fail "client C's ENOSPC logged $n times, expected once"
grep -q "client $D: overlay write failed on .*Input/output error" "$T/daemon.log" || fail "client D's EIO not logged"
grep -q "client $E: overlay write failed on .*No space left" "$T/daemon.log" || fail "client E's ENOSPC not logged"
grep -q "target=client/$F: READ(10) failed: sense key 0x3 asc 0x1100" "$T/daemon.log" ||
	fail "client F's MEDIUM ERROR not logged"
if grep -E "fail|error" "$T/daemon.log" | grep -v "overlay directory .* has failed" | grep -qi "${B}\|client/$B\|${B//:/}"; then
	fail "client B appears in an error line: $(grep -E "fail|error" "$T/daemon.log" | grep -i "$B" | head -1)"
fi
ok "each failure logged once naming its client; client B in no error line"

# --- rules removed: bad's 2nd MiB reads right (the cache kept no failure) -----
rm "$T/conf/debug/faults"
wait_for 10 grep -q "fault injection: no rules" "$T/daemon.log" || fail "the rules were not removed"
tool "$(uri $A)" "rf:0:$((8 * MB)):$T/bad"
tool "$(uri $C)" "w:$MB:65536:5" "flush" "r:$MB:65536:5"
ok "rules removed: bad's 2nd MiB reads right, client C writes again"
stop_daemon
for r in "image-read short image=good" "overlay-read short client=$B" "overlay-write short client=$B"; do
	grep -qE "fault injection: rule '$r' hit [1-9][0-9]* times" "$T/daemon.log" || fail "rule '$r' never fired"
done
ok "short-transfer rules fired"
