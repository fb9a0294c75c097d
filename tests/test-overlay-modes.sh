#!/bin/bash
# test-overlay-modes — when a client's writes live and when they go.
#
# Ephemeral: with overlay/boot_gap_s=0 every reconnect (after the client's
# last connection has closed) is a new boot: the writes are gone and the disk
# reads as the image again; with a large gap they survive reconnects (also
# for 12 clients reconnecting as fast as they can for 6 s), and connections
# open at the same time share them; the gap is live.
# Writes fill the RAM tier (overlay/ram_mb) and go on in an unnamed file.
# Persistent: write + flush, SIGTERM, restart: the disk (sha256 over the
# whole disk through nbdcopy) is the image plus the writes, from
# <overlay dir>/<mac without colons>.data/.map/.info; the same after write +
# flush, after a write flushed by another connection of the client, and
# after writes with FUA, each followed by kill -9 and a restart.
# Writes without a flush before kill -9: nothing is asserted but that the
# daemon restarts and serves the disk. A mode change persistent → ephemeral
# (bootlinkctl client set) applies at the next boot: connections of the
# current boot keep sharing the persistent disk, the next boot is ephemeral.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy sha256sum
need_python_module nbd
need_bootlink

E=52:54:00:0b:00:01 # ephemeral
P=52:54:00:0b:00:02 # persistent
SIZE=$(to_bytes 6M+2500)
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img"
ctl client add "$E" --image base
ctl client add "$P" --image base --mode persistent
churn=()
for i in $(seq 1 12); do
	churn+=("52:54:00:0b:01:$(printf %02x "$i")")
	ctl client add "${churn[-1]}" --image base >/dev/null
done
conf=(overlay/dirs=overlays overlay/boot_gap_s=0 overlay/ram_mb=1 runtime/interval_ms=100)
start_daemon "${conf[@]}"

# NBDTOOL: a plain command line, so spawn's $! is timeout itself (killed at exit).
NBDTOOL=(timeout 120 python3 "$TESTS/overlay/nbdtool.py")
nt() { "${NBDTOOL[@]}" "$@"; }
mkexpect() { timeout 60 python3 "$TESTS/overlay/mkexpect.py" "$@"; }
rt() { cat "$RUN/clients/$1/$2" 2>/dev/null || true; }
rt_is() { [[ $(rt "$1" "$2") == "$3" ]]; }
# tree_fresh: wait until the runtime tree holds a snapshot taken after this
# call. Each refresh writes cache/ before clients/, always in a new file, so
# once cache/capacity_bytes is newer than a marker a refresh began after it;
# after two such rounds the earlier refresh has written all its files.
# disk_sum MAC: sha256 of the client's whole disk, read with nbdcopy.
disk_sum() {
	rm -f "$T/disk"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/disk" || fail "nbdcopy of client $1 failed"
	sha256sum <"$T/disk" | cut -d' ' -f1
}
# closed MAC: the daemon has seen every connection of MAC close (in a
# snapshot of the runtime tree taken after the call).
_closed() { tree_fresh && rt_is "$1" connections 0; }
closed() { wait_for 10 _closed "$1" || fail "client $1: runtime tree still shows $(rt "$1" connections) connections"; }
# gap N: set overlay/boot_gap_s live and wait until the daemon has applied it.
gap() {
	local n
	n=$(grep -c 'overlay/boot_gap_s changed' "$T/daemon.log" || true)
	conf_set overlay/boot_gap_s "$1"
	applied() { (($(grep -c 'overlay/boot_gap_s changed' "$T/daemon.log" || true) > n)); }
	wait_for 10 applied || fail "the daemon did not log the change of overlay/boot_gap_s to $1"
}
img_sum=$(sha256sum <"$T/img" | cut -d' ' -f1)

# Writes used below: aligned, unaligned, across blocks, 2 MiB (past the
# 1 MiB RAM tier), the partial last block.
W1=(w:0:4096:1 w:10000:5000:1 w:65535:2:1 w:$((1 << 20)):$((2 << 20)):1 w:-2500:2500:1)
R1=("${W1[@]/#w:/r:}")

# --- ephemeral, boot_gap_s=0 ------------------------------------------------
nt "$(nbd_uri "$E")" "${W1[@]}" "${R1[@]}" flush || fail "ephemeral client: write/read back failed"
closed "$E"
boots=$(rt "$E" boots)
nt "$(nbd_uri "$E")" rf:0:"$SIZE":"$T/img" || fail "ephemeral, boot_gap_s=0: the writes survived a reconnect"
closed "$E"
rt_is "$E" boots $((boots + 1)) || fail "runtime tree: boots is $(rt "$E" boots), expected $((boots + 1))"
[[ $(disk_sum "$E") == "$img_sum" ]] || fail "ephemeral, boot_gap_s=0: disk differs from the image after reconnects"
ok "ephemeral, boot_gap_s=0: a reconnect is a new boot; the disk reads as the image again"

# --- ephemeral, large gap ------------------------------------------------------
closed "$E"
gap 3600
nt "$(nbd_uri "client/$E")" "${W1[@]}" || fail "ephemeral client: write failed"
closed "$E"
boots=$(rt "$E" boots)
# W1 covers 518 blocks of 4 KiB (35 of 64 KiB); overlay/ram_mb=1 holds 256
# (16) of them, the rest went to an unnamed file (nothing named after the
# client in the directory).
nb=$(ov_blocks "$SIZE" 0:4096 10000:5000 65535:2 $((1 << 20)):$((2 << 20)) -2500:2500)
ram=$(rt "$E" overlay_ram_bytes) file=$(rt "$E" overlay_file_bytes)
[[ $ram == $((1 << 20)) && $((ram + file)) == $((nb * OVBLK)) ]] ||
	fail "ephemeral client after $nb blocks of $OVBLK bytes of writes with overlay/ram_mb=1: overlay_ram_bytes=$ram overlay_file_bytes=$file, expected 1048576 and $((nb * OVBLK - (1 << 20)))"
[[ -z $(find "$T/conf/overlays" -name "${E//:/}*" 2>/dev/null) ]] ||
	fail "an ephemeral overlay left named files: $(find "$T/conf/overlays" -name "${E//:/}*")"
ok "ephemeral: RAM tier full at overlay/ram_mb (1 MiB), the rest in an unnamed file ($file bytes)"
for i in 1 2 3; do
	nt "$(nbd_uri "$E")" "${R1[@]}" || fail "ephemeral, boot_gap_s=3600: the writes are gone after reconnect $i"
	closed "$E"
done
mkexpect "$T/img" "$T/want1" "${W1[@]}" >"$T/want1.sum"
[[ $(disk_sum "$E") == "$(<"$T/want1.sum")" ]] || fail "ephemeral, boot_gap_s=3600: disk is not image + writes"
closed "$E"
[[ $(rt "$E" boots) == "$boots" ]] || fail "runtime tree: boots went from $boots to $(rt "$E" boots) within the gap"
# Two connections at once share the disk both ways.
spawn "${NBDTOOL[@]}" "$(nbd_uri "$E")" w:$((5 << 20)):4096:7 hold:"$T/e1.hold" r:$(((5 << 20) + 4096)):4096:8
h1=$!
wait_for 20 test -e "$T/e1.hold" || fail "first connection did not write"
nt "$(nbd_uri "client/$E")" r:$((5 << 20)):4096:7 w:$(((5 << 20) + 4096)):4096:8 ||
	fail "a second connection of the same boot does not see the first one's write"
rm -f "$T/e1.hold"
wait "$h1" || fail "the first connection does not see the second one's write"
closed "$E"
ok "ephemeral, boot_gap_s=3600: writes survive reconnects; concurrent connections share them"
# Many clients reconnecting all the time, each within its gap: none loses
# its writes (nothing may discard an ephemeral overlay inside the gap).
pids=()
for i in "${!churn[@]}"; do
	spawn timeout 60 python3 "$TESTS/overlay/reconnect.py" "$(nbd_uri "${churn[i]}")" 6 $((20 + i))
	pids+=($!)
done
nfail=0
for p in "${pids[@]}"; do wait "$p" || nfail=$((nfail + 1)); done
grep 'ephemeral overlay is discarded' "$T/daemon.log" | grep -F -f <(printf '%s\n' "${churn[@]}") | head -3 || true
((nfail == 0)) || fail "$nfail of ${#churn[@]} ephemeral clients lost their writes while reconnecting within boot_gap_s=3600"
ok "${#churn[@]} clients reconnecting for 6 s within the gap: every reconnect saw its writes"
# Back to 0, live: the next connection is a new boot.
gap 0
nt "$(nbd_uri "$E")" rf:0:"$SIZE":"$T/img" || fail "ephemeral: writes survived after boot_gap_s went back to 0"
closed "$E"
ok "ephemeral: boot_gap_s back to 0 (live): the next connection starts afresh"

# --- persistent: flush, SIGTERM, restart ---------------------------------------
nt "$(nbd_uri "$P")" "${W1[@]}" flush "${R1[@]}" || fail "persistent client: write/flush/read back failed"
closed "$P"
stem=${P//:/}
for ext in data map info; do
	[[ -f $T/conf/overlays/$stem.$ext ]] || fail "persistent overlay file $T/conf/overlays/$stem.$ext is missing"
done
[[ $(rt "$P" overlay_dir) == "$T/conf/overlays" ]] || fail "runtime tree: overlay_dir is '$(rt "$P" overlay_dir)'"
(($(rt "$P" flushes) >= 1)) || fail "runtime tree: flushes is '$(rt "$P" flushes)' after a flush"
stop_daemon
start_daemon "${conf[@]}"
nt "$(nbd_uri "$P")" "${R1[@]}" || fail "persistent: flushed writes are gone after SIGTERM + restart"
[[ $(disk_sum "$P") == "$(<"$T/want1.sum")" ]] || fail "persistent: disk is not image + writes after restart (sha256)"
closed "$P"
[[ $(disk_sum "$E") == "$img_sum" ]] || fail "ephemeral client's disk is not the image after a restart"
ok "persistent: flushed writes survive SIGTERM + restart (sha256 of the whole disk)"

# --- persistent: flush / FUA, kill -9, restart ----------------------------------
kill9_restart() {
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=""
	start_daemon "${conf[@]}"
}
W2=(w:4096:4096:2 w:12345:54321:2 w:$((3 << 20)):$((1 << 20)):2 w:-4000:3000:2)
spawn "${NBDTOOL[@]}" "$(nbd_uri "$P")" "${W2[@]}" flush hold:"$T/p2.hold"
wait_for 30 test -e "$T/p2.hold" || fail "persistent client: write + flush did not complete"
kill9_restart # with the connection still open
rm -f "$T/p2.hold"
nt "$(nbd_uri "$P")" "${W2[@]/#w:/r:}" || fail "persistent: flushed writes are gone after kill -9"
mkexpect "$T/want1" "$T/want2" "${W2[@]}" >"$T/want2.sum"
[[ $(disk_sum "$P") == "$(<"$T/want2.sum")" ]] || fail "persistent: disk is not image + writes after kill -9 (sha256)"
ok "persistent: write + flush, kill -9, restart: the writes are there"

# A flush on one connection covers the writes another connection of the
# same client got replies for (the export advertises CAN_MULTI_CONN).
spawn "${NBDTOOL[@]}" "$(nbd_uri "$P")" w:$((5 << 20)):65536:6 hold:"$T/mc.hold"
wait_for 30 test -e "$T/mc.hold" || fail "persistent client: write on the first connection did not complete"
nt "$(nbd_uri "client/$P")" flush || fail "persistent client: flush on a second connection failed"
kill9_restart
rm -f "$T/mc.hold"
nt "$(nbd_uri "$P")" r:$((5 << 20)):65536:6 ||
	fail "persistent: a write flushed by another connection of the client is gone after kill -9"
mkexpect "$T/want2" "$T/want2b" w:$((5 << 20)):65536:6 >"$T/want2.sum"
mv "$T/want2b" "$T/want2"
ok "persistent: a flush on another connection of the client made the write durable (kill -9, restart)"

W3=(wf:0:4096:3 wf:$(((2 << 20) + 100)):200000:3 wf:-2500:2500:3)
spawn "${NBDTOOL[@]}" "$(nbd_uri "$P")" "${W3[@]}" hold:"$T/p3.hold"
wait_for 30 test -e "$T/p3.hold" || fail "persistent client: FUA writes did not complete"
kill9_restart
rm -f "$T/p3.hold"
W3w=("${W3[@]/#wf:/w:}")
nt "$(nbd_uri "$P")" "${W3w[@]/#w:/r:}" || fail "persistent: FUA writes are gone after kill -9"
mkexpect "$T/want2" "$T/want3" "${W3w[@]}" >"$T/want3.sum"
[[ $(disk_sum "$P") == "$(<"$T/want3.sum")" ]] || fail "persistent: disk is not image + FUA writes after kill -9 (sha256)"
ok "persistent: writes with FUA, kill -9, restart: the writes are there"

# Without a flush: no durability promise; the daemon must restart and serve.
spawn "${NBDTOOL[@]}" "$(nbd_uri "$P")" w:$((4 << 20)):$((1 << 20)):4 hold:"$T/p4.hold"
wait_for 30 test -e "$T/p4.hold" || fail "persistent client: unflushed write did not complete"
kill9_restart
rm -f "$T/p4.hold"
nt "$(nbd_uri "$P")" r:0:4096:3 r:$((5 << 20)):4096:6 rf:$(((5 << 20) + 65536)):4096:"$T/img" || fail "persistent: after an unflushed kill -9, earlier flushed data is wrong"
ok "persistent: unflushed writes + kill -9: the daemon restarts and serves the disk (contents not asserted)"
closed "$P"

# --- persistent -> ephemeral at runtime: applies at the next boot ----------------
gap 3600
nt "$(nbd_uri "$P")" w:0:4096:5 flush || fail "persistent client: write failed"
spawn "${NBDTOOL[@]}" "$(nbd_uri "$P")" r:0:4096:5 hold:"$T/m1.hold" r:8192:4096:6
m1=$!
wait_for 20 test -e "$T/m1.hold" || fail "persistent client: connection did not start"
n=$(grep -c 'loaded from the database' "$T/daemon.log" || true)
ctl client set "$P" --mode ephemeral
reloaded() { (($(grep -c 'loaded from the database' "$T/daemon.log" || true) > n)); }
wait_for 10 reloaded || fail "the daemon did not reload the database after client set"
# Same boot (a connection is open): the new connection shares the persistent disk.
nt "$(nbd_uri "$P")" r:0:4096:5 w:8192:4096:6 ||
	fail "a connection during the same boot does not see the disk of the boot's first connection after a mode change"
rm -f "$T/m1.hold"
wait "$m1" || fail "the open connection does not see a write made by another connection of its boot"
closed "$P"
[[ $(rt "$P" mode) == persistent ]] || fail "runtime tree: mode is '$(rt "$P" mode)' before the next boot"
ok "mode change persistent -> ephemeral: the current boot keeps its disk"
gap 0
nt "$(nbd_uri "$P")" rf:0:"$SIZE":"$T/img" w:0:4096:9 || fail "next boot after persistent -> ephemeral: the disk is not the image"
closed "$P"
rt_is "$P" mode ephemeral || fail "runtime tree: mode is '$(rt "$P" mode)' after the next boot"
nt "$(nbd_uri "$P")" rf:0:"$SIZE":"$T/img" || fail "after persistent -> ephemeral, a reconnect with boot_gap_s=0 kept the writes"
closed "$P"
ok "mode change persistent -> ephemeral: the next boot is ephemeral (reads the image, writes go at the next boot)"

assert_daemon_alive
stop_daemon
ok "done"
