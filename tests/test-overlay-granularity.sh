#!/bin/bash
# test-overlay-granularity — overlay/block_kb: the overlay granularity.
#
#   1. A persistent overlay made at 4 KiB (the default) keeps 4 KiB after
#      overlay/block_kb changes to 64 and the daemon restarts: its .info says
#      block=4096, the runtime tree and `overlay list` say 4096, every byte
#      written before reads back (whole disk compared with the expected file)
#      and new partial writes merge at 4 KiB; a client whose persistent
#      overlay is new gets 64 KiB (block=65536), and keeps it after a
#      restart with the setting back at 4.
#   2. Image versions over deltas of different granularities: a maintenance
#      client commits a delta at 64 KiB, then one at 4 KiB over it; the image
#      export reads the expected bytes, `image versions --json` gives each
#      delta's block_size, and `image flatten` writes exactly those bytes.
# The overlay tests themselves run again at 64 KiB in test-overlay-block64-*.
unset OVERLAY_BLOCK_KB # parts 1 and 2 start at the default, 4 KiB
. "$(dirname "$0")/lib/common.sh"
need nbdcopy sha256sum cmp
need_python_module nbd
need_bootlink

P=52:54:00:0d:00:01 # persistent, made at 4 KiB
Q=52:54:00:0d:00:02 # persistent, made at 64 KiB
M=52:54:00:0d:00:03 # maintenance
SIZE=$(to_bytes 8M+1000)
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img" >/dev/null
ctl client add "$P" --image base --mode persistent >/dev/null
ctl client add "$Q" --image base --mode persistent >/dev/null
ctl client add "$M" --image base --mode maintenance >/dev/null
conf=(overlay/dirs=overlays paths/versions=vstore overlay/boot_gap_s=0 runtime/interval_ms=100)

nt() { timeout 120 python3 "$TESTS/overlay/nbdtool.py" "$@"; }
mkexpect() { timeout 60 python3 "$TESTS/overlay/mkexpect.py" "$@"; }
rt() { cat "$RUN/clients/$1/$2" 2>/dev/null || true; }
rt_is() { [[ $(rt "$1" "$2") == "$3" ]]; }
disk_sum() {
	rm -f "$T/disk"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/disk" && sha256sum <"$T/disk" | cut -d' ' -f1
}
info() { cat "$T/conf/overlays/${1//:/}.info"; }
loads() { grep -c "loaded from the database" "$T/daemon.log" || true; }
loads_above() { (($(loads) > $1)); }
sum_is() { [[ $(disk_sum "$1") == "$2" ]]; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
overlay_block() { ctl --json overlay list | json "[o['block_bytes'] for o in d['overlays'] if o['mac'] == '$1'][0]"; }

# ---- 1. a 4 KiB persistent overlay after the setting changes to 64 KiB
start_daemon "${conf[@]}"
W1=(w:0:100:1 w:5000:3:1 w:12287:2:1 w:65530:20:1 w:$((1 << 20)):65536:1 w:-1000:1000:1)
nt "$(nbd_uri "$P")" "${W1[@]}" flush || fail "$P: writes at 4 KiB failed"
[[ $(info "$P") == *" block=4096" ]] || fail "$P: .info does not record 4 KiB: $(info "$P")"
wait_for 5 rt_is "$P" overlay_block_bytes 4096 || fail "$P: runtime tree block size $(rt "$P" overlay_block_bytes)"
stop_daemon
ok "$P: persistent overlay made at 4 KiB (.info: $(info "$P"))"

start_daemon "${conf[@]}" overlay/block_kb=64
want=$(mkexpect "$T/img" "$T/want" "${W1[@]}")
[[ $(disk_sum "$P") == "$want" ]] || fail "$P: after overlay/block_kb=64 and a restart the disk is not the image + its 4 KiB writes"
[[ $(info "$P") == *" block=4096" ]] || fail "$P: .info changed: $(info "$P")"
wait_for 5 rt_is "$P" overlay_block_bytes 4096 || fail "$P: runtime tree says $(rt "$P" overlay_block_bytes) bytes, not 4096"
[[ $(overlay_block "$P") == 4096 ]] || fail "$P: overlay list says $(overlay_block "$P")"
# New partial writes still merge at 4 KiB: 512 bytes next to earlier writes.
W2=(w:4096:512:2 w:$((70 * 1024 + 7)):512:2 w:$(((2 << 20) + 100)):512:2)
nt "$(nbd_uri "$P")" "${W2[@]}" flush || fail "$P: partial writes failed"
want=$(mkexpect "$T/img" "$T/want" "${W1[@]}" "${W2[@]}")
[[ $(disk_sum "$P") == "$want" ]] || fail "$P: after partial writes the disk is wrong"
# With 4 KiB blocks those writes hold 3 more blocks, not 3 of 64 KiB.
blocks=$(ov_blocks "$SIZE" 0:100 5000:3 12287:2 65530:20 $((1 << 20)):65536 -1000:1000 4096:512 $((70 * 1024 + 7)):512 $(((2 << 20) + 100)):512)
wait_for 5 rt_is "$P" overlay_file_bytes $((blocks * 4096)) ||
	fail "$P: overlay_file_bytes $(rt "$P" overlay_file_bytes), expected $((blocks * 4096)) ($blocks blocks of 4 KiB)"
ok "$P: still 4 KiB after overlay/block_kb=64 + restart: reads right, partial writes merge per 4 KiB ($blocks blocks)"

# A new persistent overlay uses the setting.
nt "$(nbd_uri "$Q")" "${W2[@]}" flush || fail "$Q: writes failed"
[[ $(info "$Q") == *" block=65536" ]] || fail "$Q: .info does not record 64 KiB: $(info "$Q")"
wait_for 5 rt_is "$Q" overlay_block_bytes 65536 || fail "$Q: runtime tree says $(rt "$Q" overlay_block_bytes)"
wait_for 5 rt_is "$Q" overlay_file_bytes $((3 * 65536)) || fail "$Q: overlay_file_bytes $(rt "$Q" overlay_file_bytes), expected 3 blocks of 64 KiB"
stop_daemon
start_daemon "${conf[@]}" overlay/block_kb=4
wantq=$(mkexpect "$T/img" "$T/wantq" "${W2[@]}")
[[ $(disk_sum "$Q") == "$wantq" ]] || fail "$Q: after a restart with overlay/block_kb=4 the disk is wrong"
[[ $(disk_sum "$P") == "$want" ]] || fail "$P: after another restart the disk is wrong"
wait_for 5 rt_is "$Q" overlay_block_bytes 65536 || fail "$Q: granularity changed to $(rt "$Q" overlay_block_bytes)"
ctl overlay list >"$T/list"
grep -q "^PC002 .* 64 KiB" "$T/list" || fail "overlay list does not show $Q's 64 KiB blocks: $(cat "$T/list")"
ok "$Q: a new persistent overlay is 64 KiB and stays 64 KiB with the setting back at 4"

# ---- 2. versions over deltas of 64 KiB and 4 KiB
conf_set overlay/block_kb 64
wait_for 10 grep -q "overlay/block_kb changed: 4 -> 64" "$T/daemon.log" || fail "the daemon did not apply overlay/block_kb=64"
V2=(w:300:5000:3 w:$((3 << 20)):70000:3 w:-30:30:3 z:$((4 << 20)):65536)
nt "$(nbd_uri "$M")" w:300:5000:3 w:$((3 << 20)):70000:3 w:-30:30:3 zero:$((4 << 20)):65536 flush ||
	fail "$M: writes failed"
[[ $(info "$M") == *" block=65536" ]] || fail "$M: .info: $(info "$M")"
wait_for 5 rt_is "$M" connections 0 || fail "$M still connected"
n=$(loads)
ctl --json image commit base --force >"$T/c1.json" || fail "commit 1: $(cat "$T/c1.json")"
[[ $(json 'd["version"]["block_size"]' <"$T/c1.json") == 65536 ]] || fail "commit 1: $(cat "$T/c1.json")"
conf_set overlay/block_kb 4
wait_for 10 grep -q "overlay/block_kb changed: 64 -> 4" "$T/daemon.log" || fail "the daemon did not apply overlay/block_kb=4"
# The commit reset $M's overlay: its next boot starts a new one, once the daemon has seen it.
wait_for 10 loads_above "$n" || fail "the daemon did not reload the database after the commit"
V3=(w:1000:10:4 w:$(((3 << 20) + 4096)):100:4 w:$(((4 << 20) + 8192)):4096:4)
nt "$(nbd_uri "$M")" "${V3[@]}" flush || fail "$M: second writes failed"
[[ $(info "$M") == *" block=4096" ]] || fail "$M: .info after the commit: $(info "$M")"
wait_for 5 rt_is "$M" connections 0 || fail "$M still connected"
ctl --json image commit base >"$T/c2.json" || fail "commit 2: $(cat "$T/c2.json")"
want3=$(mkexpect "$T/img" "$T/v3" "${V2[@]}" "${V3[@]}")
wait_for 10 sum_is base "$want3" || fail "image export after two commits: not the expected bytes"
ctl --json image versions base >"$T/versions.json"
[[ $(json '[v.get("block_size") for v in d["versions"]]' <"$T/versions.json") == "[None, 65536, 4096]" ]] ||
	fail "image versions: $(cat "$T/versions.json")"
ctl --json image flatten base --wait >"$T/flat.json"
raw=$(json 'd["version"]["path"]' <"$T/flat.json")
cmp "$raw" "$T/v3" || fail "the flattened file is not the expected bytes"
wait_for 10 sum_is base "$want3" || fail "image export after flatten"
ok "versions: a 64 KiB delta under a 4 KiB delta read right; flatten writes the same bytes"
assert_daemon_alive
stop_daemon

ok "done"
