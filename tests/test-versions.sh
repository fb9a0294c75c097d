#!/bin/bash
# test-versions — image versions end to end with real NBD clients.
#
# A sparse image of known content (random 4 KiB blocks, holes, a partial last
# block). A maintenance client writes known bytes at several offsets (partial
# blocks, across a block boundary, the last bytes of the disk) and zeroes a
# data block, flushes, disconnects. `image commit` is refused while it is
# connected and while a persistent client has a live overlay on the image
# (unless --force); then the image export shows exactly the writes (compared
# with an expected file the test builds with dd), an ephemeral client's next
# boot sees them, `image versions --json` lists 2 versions with 2 current.
# A second commit makes a chain of 2 deltas (and the max_chain hint);
# rollback to 1 gives the original file back, rollback to 3 the second
# commit; `image flatten` writes a .raw equal to the expected bytes (holes
# kept sparse), and serving it gives the same disk.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy cmp python3
need_python_module nbd
need_bootlink

M=52:54:00:0b:00:01 # maintenance
E=52:54:00:0b:00:02 # ephemeral
P=52:54:00:0b:00:03 # persistent
SIZE=$(to_bytes 8M+1000)
mkimage_sparse "$T/img" "$SIZE"
cp --sparse=always "$T/img" "$T/v1"
ctl image add base "$T/img" >/dev/null
ctl client add "$M" --image base --mode maintenance >/dev/null
ctl client add "$E" --image base >/dev/null
ctl client add "$P" --image base --mode persistent >/dev/null
start_daemon overlay/dirs=overlays paths/versions=vstore overlay/boot_gap_s=0 runtime/interval_ms=100

# nbdio.py URI STEP...: one connection; STEPS: w:OFF:FILE (write FILE's bytes
# at OFF), z:OFF:LEN (write zeroes), flush, hold:FILE (create FILE, wait until
# it is removed).
cat >"$T/nbdio.py" <<'EOF'
import os, sys, time
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for step in sys.argv[2:]:
    f = step.split(":", 2)
    if f[0] == "w":
        with open(f[2], "rb") as fh:
            h.pwrite(fh.read(), int(f[1]))
    elif f[0] == "z":
        h.zero(int(f[2]), int(f[1]))
    elif f[0] == "flush":
        h.flush()
    elif f[0] == "hold":
        open(f[1], "w").close()
        deadline = time.monotonic() + 120
        while os.path.exists(f[1]) and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        sys.exit(f"nbdio: unknown step {step}")
h.shutdown()
EOF
nbdio() { timeout 60 python3 "$T/nbdio.py" "$@"; }

# write_set EXPORT EXPECT OFF:LEN...: random bytes at each place (LEN 0 =
# zeroes over one 4 KiB block) through one connection, then flush; the same
# bytes go into the file EXPECT.
nwrite=0
write_set() {
	local export=$1 expect=$2 p off len steps=()
	shift 2
	for p; do
		off=${p%%:*} len=${p#*:}
		nwrite=$((nwrite + 1))
		if ((len == 0)); then
			steps+=("z:$off:4096")
			dd if=/dev/zero of="$expect" bs=4096 count=1 oflag=seek_bytes seek="$off" conv=notrunc status=none
		else
			head -c "$len" /dev/urandom >"$T/w$nwrite"
			steps+=("w:$off:$T/w$nwrite")
			dd if="$T/w$nwrite" of="$expect" oflag=seek_bytes seek="$off" conv=notrunc status=none
		fi
	done
	nbdio "$(nbd_uri "$export")" "${steps[@]}" flush
}

# export_is EXPORT FILE: a fresh connection reads exactly FILE.
export_is() {
	rm -f "$T/got"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/got" 2>/dev/null && cmp -s "$T/got" "$2"
}
conns() { cat "$RUN/clients/$1/connections" 2>/dev/null || echo 0; }
conns_are() { [[ $(conns "$1") == "$2" ]]; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
stem=${M//:/}

# A data block of the sparse image to zero out, and the places to write.
zero_at=$(sed -n 2p "$T/img.data" | cut -d' ' -f1)
set_a=(0:100 5000:3 12287:2 $((1 << 20)):65536 $(((2 << 20) + 17)):10000 $((SIZE - 1000)):1000 "$zero_at:0")
set_b=(50:10 12000:500 $((3 << 20)):4096 $((SIZE - 7)):7 $(((1 << 20) + 4096)):8192)

# ---- the ephemeral client boots on version 1; the persistent client writes
export_is "client/$E" "$T/v1" || fail "ephemeral client does not read the image"
cp --sparse=always "$T/v1" "$T/p1"
write_set "$P" "$T/p1" $((5 << 20)):4096
wait_for 5 conns_are "$P" 0 || fail "persistent client still connected"
ok "version 1 served; persistent client $P has an overlay"

# ---- the maintenance client writes set A
cp --sparse=always "$T/v1" "$T/v2"
write_set "$M" "$T/v2" "${set_a[@]}"
export_is "client/$M" "$T/v2" || fail "maintenance client does not read back its writes"
[[ -f $T/conf/overlays/$stem.data ]] || fail "no overlay files for $M in overlays/"
ok "maintenance client $M wrote ${#set_a[@]} ranges (partial blocks, the last bytes, a zeroed block)"

# ---- commit is refused while the maintenance client is connected
spawn nbdio "$(nbd_uri "$M")" hold:"$T/hold"
holder=$!
wait_for 10 test -e "$T/hold" || fail "holder did not connect"
wait_for 5 conns_are "$M" 1 || fail "runtime tree: $M has $(conns "$M") connections, expected 1"
if ctl image commit base >"$T/out" 2>&1; then
	cat "$T/out"
	fail "commit succeeded while the maintenance client was connected"
fi
grep -q "is connected" "$T/out" || fail "commit refusal does not say the client is connected: $(cat "$T/out")"
rm -f "$T/hold"
wait "$holder" || fail "holder failed"
wait_for 5 conns_are "$M" 0 || fail "maintenance client still connected"
ok "commit refused while $M is connected"

# ---- ... and refused while a persistent client has a live overlay, unless --force
if ctl image commit base >"$T/out" 2>&1; then
	cat "$T/out"
	fail "commit succeeded although persistent client $P would lose its overlay"
fi
grep -q "$P" "$T/out" || fail "commit refusal does not name $P: $(cat "$T/out")"
ctl image versions base >/dev/null
[[ $(ctl --json image versions base | json 'len(d["versions"])') == 1 ]] || fail "a refused commit added a version"
ctl --json image commit base --force --note "first change" >"$T/commit1.json"
[[ $(json 'd["version"]["number"], [c["mac"] for c in d["affected"]]' <"$T/commit1.json") == "2 ['$P']" ]] ||
	fail "commit --force: $(cat "$T/commit1.json")"
ok "commit refused with persistent client $P on the image; --force commits version 2 and names $P"

# ---- the image export, an ephemeral client's next boot, the version list
wait_for 10 export_is base "$T/v2" || fail "image export does not show the committed writes"
export_is "client/$E" "$T/v2" || fail "ephemeral client's next boot does not see version 2"
ctl --json image versions base >"$T/versions.json"
[[ $(json 'len(d["versions"]), d["current"], [v["current"] for v in d["versions"]], d["versions"][1]["kind"]' <"$T/versions.json") == "2 2 [False, True] delta" ]] ||
	fail "image versions: $(cat "$T/versions.json")"
[[ ! -e $T/conf/overlays/$stem.data && ! -e $T/conf/overlays/$stem.map ]] ||
	fail "the committed overlay files of $M were not deleted"
ls "$T/conf/vstore/base-1-v2.data" "$T/conf/vstore/base-1-v2.map" >/dev/null
ok "export and ephemeral client show version 2; versions: 2, current 2; maintenance overlay deleted"

# ---- the maintenance client starts clean on version 2; a second commit
export_is "client/$M" "$T/v2" || fail "maintenance client did not start clean on version 2"
cp --sparse=always "$T/v2" "$T/v3"
write_set "$M" "$T/v3" "${set_b[@]}"
wait_for 5 conns_are "$M" 0 || fail "maintenance client still connected"
conf_set versions/max_chain 1
# $P's overlay belongs to version 1 now: already stale, so no --force needed.
ctl image commit base --note "second change" >"$T/out"
grep -q "hint: .*image flatten base" "$T/out" || fail "no flatten hint past versions/max_chain: $(cat "$T/out")"
wait_for 10 export_is base "$T/v3" || fail "image export does not show the second commit"
ctl --json image versions base >"$T/versions.json"
[[ $(json 'len(d["versions"]), d["current"], d["chain"]["deltas"], "hint" in d' <"$T/versions.json") == "3 3 [2, 3] True" ]] ||
	fail "image versions after the second commit: $(cat "$T/versions.json")"
rm "$T/conf/versions/max_chain"
ok "second commit: version 3 = a chain of 2 deltas; hint to flatten past versions/max_chain"

# ---- rollback
ctl image rollback base 1 >/dev/null
wait_for 10 export_is base "$T/img" || fail "rollback to 1: the export is not the original file"
cmp "$T/img" "$T/v1" || fail "the image file changed"
# Back on version 1, $P's overlay (made on 1) is live again: rolling forward needs --force.
if ctl image rollback base 3 >"$T/out" 2>&1; then fail "rollback to 3 ignored $P's live overlay"; fi
grep -q "$P" "$T/out" || fail "rollback refusal does not name $P: $(cat "$T/out")"
ctl image rollback base 3 --force >/dev/null
wait_for 10 export_is base "$T/v3" || fail "rollback to 3: the export is not version 3"
if ctl image rollback base 9 >"$T/out" 2>&1; then fail "rollback to a missing version succeeded"; fi
grep -q "has no version 9" "$T/out" || fail "rollback to 9: $(cat "$T/out")"
ok "rollback to 1 serves the original file; back to 3 refused for $P's overlay, then forced; version 9 refused"

# ---- flatten
ctl --json image flatten base --wait >"$T/flat.json"
raw=$(json 'd["version"]["path"]' <"$T/flat.json")
[[ $(json 'd["version"]["number"], d["version"]["kind"]' <"$T/flat.json") == "4 flattened" ]] ||
	fail "flatten: $(cat "$T/flat.json")"
cmp "$raw" "$T/v3" || fail "the flattened file differs from the expected bytes"
alloc=$(($(stat -c %b "$raw") * 512))
((alloc < SIZE / 2)) || fail "the flattened file is not sparse: $alloc bytes allocated of $SIZE"
wait_for 10 export_is base "$T/v3" || fail "the export changed after flatten"
# Serve version 4 from scratch (not a reused open image): roll to 1 and back.
ctl image rollback base 1 >/dev/null
wait_for 10 export_is base "$T/img" || fail "rollback to 1 after flatten"
ctl image rollback base 4 --force >/dev/null
wait_for 10 export_is base "$T/v3" || fail "version 4 (flattened) does not serve version 3's bytes"
[[ $(ctl --json image versions base | json 'd["chain"]["deltas"], d["chain"]["base"] == "'"$raw"'"') == "[] True" ]] ||
	fail "version 4's chain is not the flattened file alone"
[[ $(ctl --json image flatten base | json 'd["result"]') == unchanged ]] || fail "flatten of a flat version"
ok "flatten: version 4 = $(basename "$raw"), equal to the expected bytes, $alloc bytes allocated; served unchanged"

# ---- the event log and the daemon
ctl --json events | json '"\n".join(e["text"] for e in d["events"])' >"$T/events"
for w in "image commit base: version 2" "image commit base: version 3" "image rollback base: version 3 -> 1" \
	"image flatten base: version 3"; do
	grep -qF "$w" "$T/events" || fail "no event '$w'"
done
ctl events "$M" | grep -q "overlay committed into image base version 3" || fail "no overlay event for $M"
assert_daemon_alive
stop_daemon
ok "done"
