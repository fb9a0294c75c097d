#!/bin/bash
# test-nbd-list — NBD_OPT_LIST through a real client (nbdinfo --list): every
# image and every client export is listed with the right size (images
# read-only), including ones added while the daemon runs; MAC aliases open;
# removed ones go away.
. "$(dirname "$0")/lib/common.sh"
need nbdinfo python3
need_bootlink

MAC1=52:54:00:aa:bb:01
MAC2=52:54:00:aa:bb:02
mkimage "$T/alpha.img" 1M
mkimage "$T/beta.img" 1M+1
ctl image add alpha "$T/alpha.img"
ctl client add "$MAC1" --image alpha
start_daemon

# Added while the daemon runs: picked up within about a second.
ctl image add beta "$T/beta.img"
ctl client add "$MAC2" --image beta
wait_for 10 nbd_export_listed beta || fail "image 'beta' added while running is not listed after 10 s"
wait_for 10 nbd_export_listed "client/$MAC2" || fail "client $MAC2 added while running is not listed after 10 s"

timeout 60 nbdinfo --list --json "nbd://$NBD_ADDR" >"$T/list.json"
python3 - "$T/list.json" <<EOF
import json, sys
want = {
    "alpha": 1048576,
    "beta": 1048577,
    "client/$MAC1": 1048576,
    "client/$MAC2": 1048577,
}
exports = json.load(open(sys.argv[1]))["exports"]
got = {e["export-name"]: e.get("export-size") for e in exports}
print("listed:", got)
bad = False
for name, size in want.items():
    if name not in got:
        print(f"FAIL: export {name!r} is not listed"); bad = True
    elif got[name] != size:
        print(f"FAIL: export {name!r} has size {got[name]}, expected {size}"); bad = True
for name in got:
    if name not in want:
        print(f"FAIL: unexpected export {name!r} in the list"); bad = True
# Golden images are never writable; a client export may be (its overlay).
for e in exports:
    if not e["export-name"].startswith("client/") and not e.get("is_read_only", False):
        print(f"FAIL: image export {e['export-name']!r} is not read-only"); bad = True
sys.exit(1 if bad else 0)
EOF
ok "nbdinfo --list shows every image and client export with the right size"

# Every spelling of a client's MAC opens the client's export.
for name in "$MAC1" "client/$MAC1" "client/52-54-00-AA-BB-01" "525400aabb01"; do
	size=$(timeout 30 nbdinfo --size "$(nbd_uri "$name")") || fail "nbdinfo cannot open export '$name'"
	[[ $size == 1048576 ]] || fail "export '$name' has size $size, expected 1048576"
done
ok "MAC aliases open the client's export"

# An unknown export is refused, and the server keeps serving.
if timeout 30 nbdinfo --size "$(nbd_uri nosuch)" >/dev/null 2>"$T/err"; then
	fail "nbdinfo opened the nonexistent export 'nosuch'"
fi
timeout 30 nbdinfo --size "$(nbd_uri alpha)" >/dev/null
ok "unknown export refused"

# Removed while running: gone from the list within about a second.
ctl client rm "$MAC2"
wait_for 10 nbd_export_unlisted "client/$MAC2" || fail "client $MAC2 removed while running is still listed after 10 s"
ok "removed client disappears from the list"

stop_daemon
ok "done"
