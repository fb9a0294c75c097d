#!/bin/bash
# test-overlay-reset — `overlay reset` and `overlay list` with real NBD clients.
#
# A persistent client writes and flushes; its writes survive a reconnect
# (a new boot, overlay/boot_gap_s=0). Disconnected, `overlay reset MAC`
# deletes its overlay files at once and its next boot reads the original
# image. Connected, the reset keeps the running overlay (the client still
# reads its writes) and applies at the next boot. `overlay list --json`
# shows each client's mode, RAM bytes (an ephemeral client holding writes),
# file bytes and connections from the runtime tree while bootlinkd runs,
# and the files' allocated size when it does not; a reset with the daemon
# stopped deletes the files too.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy cmp python3
need_python_module nbd
need_bootlink

P=52:54:00:0c:00:01 # persistent
E=52:54:00:0c:00:02 # ephemeral
SIZE=$(to_bytes 4M+1000)
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img" >/dev/null
ctl client add "$P" --image base --mode persistent >/dev/null
ctl client add "$E" --image base >/dev/null
start_daemon overlay/dirs=overlays overlay/boot_gap_s=0 overlay/ram_mb=1 runtime/interval_ms=100
stem=${P//:/}
files=("$T/conf/overlays/$stem.data" "$T/conf/overlays/$stem.map")

# nbdio.py URI STEP...: one connection; w:OFF:FILE writes FILE's bytes at
# OFF, flush, hold:FILE creates FILE and waits until it is removed.
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

# write_steps EXPECT OFF:LEN...: random data files for nbdio, also written
# into EXPECT; prints the steps.
nw=0
write_steps() {
	local expect=$1 p off len
	shift
	for p; do
		off=${p%%:*} len=${p#*:} nw=$((nw + 1))
		head -c "$len" /dev/urandom >"$T/w$nw"
		dd if="$T/w$nw" of="$expect" oflag=seek_bytes seek="$off" conv=notrunc status=none
		echo "w:$off:$T/w$nw"
	done
}
export_is() {
	rm -f "$T/got"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/got" 2>/dev/null && cmp -s "$T/got" "$2"
}
conns_are() { [[ $(cat "$RUN/clients/$1/connections" 2>/dev/null || echo 0) == "$2" ]]; }
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
# overlay MAC FIELD...: the client's row of `overlay list --json`.
overlay() {
	local mac=$1
	shift
	ctl --json overlay list | json "*[[o[k] for k in '$*'.split()] for o in d['overlays'] if o['mac'] == '$mac'][0]"
}
overlay_is() { [[ $(overlay "$1" "${@:2:$#-2}") == "${*: -1}" ]]; }

# ---- a persistent client's writes survive a new boot
cp "$T/img" "$T/p1"
mapfile -t steps < <(write_steps "$T/p1" 0:100 5000:3 12287:2 $((1 << 20)):65536 $((SIZE - 1000)):1000)
nbdio "$(nbd_uri "$P")" "${steps[@]}" flush
wait_for 5 conns_are "$P" 0 || fail "$P still connected"
export_is "client/$P" "$T/p1" || fail "persistent writes did not survive a new boot"
ls "${files[@]}" >/dev/null
ok "persistent client $P wrote, flushed, and reads its writes after a new boot"

# ---- overlay list while bootlinkd runs: an ephemeral client holding writes in RAM
mapfile -t steps < <(write_steps "$T/e1" 8192:8192)
spawn nbdio "$(nbd_uri "$E")" "${steps[@]}" flush hold:"$T/hold"
holder=$!
wait_for 10 test -e "$T/hold" || fail "ephemeral client did not connect"
# P wrote 1 + 1 + 2 + 16 + 1 blocks of 4 KiB (the last 1000 bytes are the
# partial last block); E holds 8 KiB (at most one block of a larger granularity).
pblocks=$(ov_blocks "$SIZE" 0:100 5000:3 12287:2 $((1 << 20)):65536 $((SIZE - 1000)):1000)
eram=$(($(ov_blocks "$SIZE" 8192:8192) * OVBLK))
wait_for 5 overlay_is "$E" mode ram_bytes connections source "ephemeral $eram 1 daemon" ||
	fail "overlay list for $E: $(overlay "$E" mode ram_bytes file_bytes connections source)"
wait_for 5 overlay_is "$P" mode file_bytes connections source "persistent $((pblocks * OVBLK)) 0 daemon" ||
	fail "overlay list for $P: $(overlay "$P" mode ram_bytes file_bytes connections source)"
((OVBLK != 4096)) || ctl overlay list | grep -q "^PC002 .* ephemeral .* 8.0 KiB" || fail "human overlay list: $(ctl overlay list)"
rm -f "$T/hold"
wait "$holder" || fail "ephemeral writer failed"
ok "overlay list: $E ephemeral with 8 KiB in RAM and 1 connection, $P persistent with 84 KiB of file blocks"

# ---- reset while disconnected: files deleted now, the next boot reads the image
ctl --json overlay reset "$P" >"$T/reset.json"
[[ $(json 'd["connected"], d["deleted"], d["epoch"]' <"$T/reset.json") == "False True 1" ]] ||
	fail "overlay reset: $(cat "$T/reset.json")"
for f in "${files[@]}"; do [[ ! -e $f ]] || fail "$f is still there after the reset"; done
# bootlinkd re-reads the database within about a second; a boot before that still has the old epoch.
wait_for 10 export_is "client/$P" "$T/img" || fail "after overlay reset, $P does not read the original image"
ok "overlay reset of disconnected $P: files deleted, next boot reads the original image"

# ---- reset while connected: applies at the next boot
cp "$T/img" "$T/p2"
mapfile -t steps < <(write_steps "$T/p2" 4096:4096 $((2 << 20)):10)
spawn nbdio "$(nbd_uri "$P")" "${steps[@]}" flush hold:"$T/hold"
holder=$!
wait_for 10 test -e "$T/hold" || fail "persistent client did not connect"
wait_for 5 conns_are "$P" 1 || fail "runtime tree does not show $P connected"
ctl overlay reset "$P" >"$T/out"
grep -q "is connected" "$T/out" || fail "reset of a connected client: $(cat "$T/out")"
ls "${files[@]}" >/dev/null
export_is "client/$P" "$T/p2" || fail "the running boot of $P lost its overlay at the reset"
rm -f "$T/hold"
wait "$holder" || fail "persistent writer failed"
wait_for 5 conns_are "$P" 0 || fail "$P still connected"
wait_for 10 export_is "client/$P" "$T/img" || fail "after the connected reset, $P's next boot does not read the original image"
ok "overlay reset of connected $P: kept for the running boot, discarded at the next"

# ---- with bootlinkd stopped: list from the files, reset deletes them
cp "$T/img" "$T/p3"
mapfile -t steps < <(write_steps "$T/p3" 0:8192)
nbdio "$(nbd_uri "$P")" "${steps[@]}" flush
wait_for 5 conns_are "$P" 0 || fail "$P still connected"
stop_daemon
[[ $(overlay "$P" mode file_bytes connections source) == "persistent $(($(ov_blocks "$SIZE" 0:8192) * OVBLK)) 0 files" ]] ||
	fail "overlay list without the daemon: $(overlay "$P" mode file_bytes connections source)"
[[ $(ctl --json overlay list | json 'd["daemon_running"]') == False ]] || fail "daemon_running"
ctl overlay reset "$P" | grep -q "deleted its overlay files" || fail "reset with the daemon stopped"
for f in "${files[@]}"; do [[ ! -e $f ]] || fail "$f is still there after the reset"; done
[[ $(overlay "$P" file_bytes source) == "0 none" ]] || fail "overlay list after the reset"
ok "without bootlinkd: overlay list reads the files (8 KiB), reset deletes them"

[[ $(ctl events "$P" | grep -c "overlay reset") == 3 ]] || fail "expected 3 overlay reset events for $P"
ok "done"
