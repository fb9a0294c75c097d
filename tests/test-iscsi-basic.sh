#!/bin/bash
# test-iscsi-basic — real initiators (libiscsi's tools, qemu's iSCSI driver)
# against the iSCSI target:
#   - iscsi-ls lists one target per client and per image, at the portal
#     the initiator connected to, with the right sizes;
#   - iscsi-inq shows the standard INQUIRY data and the identifiers (unit
#     serial, NAA, SCSI name strings); iscsi-readcapacity16 the size;
#   - data read through iSCSI equals the image (images, a client's disk,
#     an image whose size is not a multiple of 4 KiB, with a header digest);
#   - a client's disk takes writes (its overlay) and reads them back while
#     the image file stays as it was; an image target refuses writes;
#   - SendTargets of one IQN, unknown targets refused at login.
. "$(dirname "$0")/lib/common.sh"
need iscsi-ls iscsi-inq iscsi-readcapacity16 qemu-img python3
need_bootlink

PREFIX=iqn.2026-11.org.bootlink
mkimage "$T/one.img" 8M
mkimage "$T/odd.img" 5M+1536
mkimage "$T/mixed.img" 1M
ctl image add one "$T/one.img"
ctl image add odd "$T/odd.img"
ctl image add Mixed.Case "$T/mixed.img"
ctl client add 52:54:00:aa:bb:01 --image one
start_daemon iscsi/nop_interval_s=0
[[ -n ${ISCSI_ADDR:-} ]] || fail "no iSCSI listener (listen/iscsi)"
CLIENT=$PREFIX:client.525400aabb01
url() { echo "iscsi://$ISCSI_ADDR/$1/0"; }

# qemu's iscsi:// driver comes with qemu-block-extra; without it qemu-img
# cannot copy and the data checks below are skipped with a reason.
if ! timeout 20 qemu-img info "$(url "$PREFIX:image.one")" >"$T/qinfo" 2>&1; then
	grep -qiE "unknown protocol|not supported|driver" "$T/qinfo" && skip "qemu-img has no iscsi driver (install qemu-block-extra)"
	cat "$T/qinfo"
	fail "qemu-img info over iSCSI failed"
fi

# --- discovery ------------------------------------------------------------
out=$(timeout 20 iscsi-ls -s "iscsi://$ISCSI_ADDR")
echo "$out"
for t in "$CLIENT" "$PREFIX:image.one" "$PREFIX:image.odd"; do
	grep -qF "Target:$t Portal:$ISCSI_ADDR,1" <<<"$out" || fail "iscsi-ls does not list $t at $ISCSI_ADDR,1"
done
ok "iscsi-ls lists the client and image targets at the portal"

# --- identity and size ----------------------------------------------------
inq=$(timeout 20 iscsi-inq "$(url "$CLIENT")")
grep -q "Vendor:BOOTLINK" <<<"$inq" && grep -q "Product:VIRTUAL DISK" <<<"$inq" &&
	grep -q "Peripheral Device Type:DIRECT_ACCESS" <<<"$inq" || fail "standard INQUIRY: $inq"
serial=$(timeout 20 iscsi-inq -e 1 -c 128 "$(url "$CLIENT")" | sed -n 's/^Unit Serial Number:\[\(.*\)\]$/\1/p')
[[ $serial =~ ^[0-9a-f]{16}$ ]] || fail "unit serial number '$serial'"
serial2=$(timeout 20 iscsi-inq -e 1 -c 128 "$(url "$PREFIX:image.one")" | sed -n 's/^Unit Serial Number:\[\(.*\)\]$/\1/p')
[[ $serial2 != "$serial" ]] || fail "the client and the image share the serial $serial"
devid=$(timeout 20 iscsi-inq -e 1 -c 131 "$(url "$CLIENT")")
grep -q "Designator:\[$CLIENT\]" <<<"$devid" && grep -q "Designator:\[$CLIENT,t,0x0001\]" <<<"$devid" &&
	grep -q "Designator Type:(3) NAA" <<<"$devid" || fail "device identification VPD: $devid"
ok "INQUIRY: vendor, product, serial $serial, NAA and SCSI name designators"

size_of() {
	timeout 20 iscsi-readcapacity16 "$(url "$1")" | sed -n 's/^Total size:\([0-9]*\)$/\1/p'
}
[[ $(size_of "$CLIENT") == $((8 << 20)) ]] || fail "client size $(size_of "$CLIENT")"
[[ $(size_of "$PREFIX:image.odd") == $(((5 << 20) + 1536)) ]] || fail "odd image size $(size_of "$PREFIX:image.odd")"
ok "READ CAPACITY(16): sizes match the images"

# --- data -----------------------------------------------------------------
copy_cmp() { # TARGET FILE [IMAGE-OPTS]
	rm -f "$T/out.raw"
	if [[ -n ${3:-} ]]; then
		timeout 60 qemu-img convert -O raw --image-opts "driver=iscsi,transport=tcp,portal=$ISCSI_ADDR,target=$1,lun=0,$3" "$T/out.raw"
	else
		timeout 60 qemu-img convert -O raw "$(url "$1")" "$T/out.raw"
	fi
	cmp "$T/out.raw" "$2" || fail "data read from $1 differs from $2"
}
copy_cmp "$PREFIX:image.one" "$T/one.img"
copy_cmp "$PREFIX:image.odd" "$T/odd.img"
copy_cmp "$CLIENT" "$T/one.img"
copy_cmp "$PREFIX:image.one" "$T/one.img" header-digest=crc32c
grep -q "HeaderDigest=CRC32C" "$T/daemon.log" || fail "no session ran with HeaderDigest=CRC32C"
ok "reads through iSCSI equal the images (also with a CRC32C header digest)"

# --- writes ---------------------------------------------------------------
mkimage "$T/new.raw" 8M
cp "$T/one.img" "$T/one.orig"
timeout 60 qemu-img convert -n -O raw "$T/new.raw" "$(url "$CLIENT")"
copy_cmp "$CLIENT" "$T/new.raw"
cmp "$T/one.img" "$T/one.orig" || fail "a client's writes changed the image file"
ok "a client's disk takes writes and reads them back; the image file is untouched"

if timeout 60 qemu-img convert -n -O raw "$T/new.raw" "$(url "$PREFIX:image.one")" 2>"$T/ro.err"; then
	fail "writing to a read-only image target succeeded"
fi
cat "$T/ro.err"
copy_cmp "$PREFIX:image.one" "$T/one.img"
ok "an image target refuses writes"

# --- names ----------------------------------------------------------------
MIXED=$T/mixed.img TARGET=$CLIENT ISCSI_HOST=$ISCSI_HOST ISCSI_PORT=$ISCSI_PORT python3 - "$TESTS/iscsi" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import rawiscsi as ri
h, p, t = os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"], os.environ["TARGET"]
c = ri.Conn(h, p)
c.login(discovery=True)
got = c.send_targets(t)
assert got == [("TargetName", t), ("TargetAddress", f"{h}:{p},1")], got
assert c.send_targets("iqn.2026-11.org.bootlink:image.none") == []
c = ri.Conn(h, p)
r = c.login_pdu(0, 1, True, ri.text([("InitiatorName", "iqn.x:y"), ("TargetName", t.upper())]))
assert r.login_status == 0, "IQNs are compared case-insensitively"
c = ri.Conn(h, p)
c.login(target="iqn.2026-11.org.bootlink:image.mixed.case")
st, data, _ = c.scsi(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), edtl=512, read=True)
assert st == 0 and data == open(os.environ["MIXED"], "rb").read(512), "image Mixed.Case by its lower-case IQN"
PY
ok "SendTargets=IQN answers that target only; IQNs match case-insensitively (also image names)"
if timeout 20 iscsi-inq "$(url "$PREFIX:client.525400aabbff")" >/dev/null 2>&1; then
	fail "login to an unknown client target succeeded"
fi
ok "unknown target refused"

stop_daemon
ok "done"
