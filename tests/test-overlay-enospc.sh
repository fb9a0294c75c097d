#!/bin/bash
# test-overlay-enospc — a full overlay disk. Two overlay directories, each
# a tmpfs: "small" (8 MiB) and "big" (2 GiB, empty, so it costs nothing).
# The daemon first runs with overlay/dirs=small: persistent clients P and P2
# get their overlays there. Restarted with overlay/dirs="small big", P and
# P2 keep theirs on small, and new overlays (ephemeral Q, later R) go to big,
# the directory with the most free space (runtime tree: overlay_dir). P2
# writes 256 KiB without a flush. P writes until small is full: the write
# fails with ENOSPC (NBD error), everything P wrote before reads back, a
# flush still succeeds, the log names the client and the file, and
# run/clients/<mac>/enospc counts it. P2's first flush, now that small is
# full, still succeeds. Meanwhile Q writes past its RAM tier into its file
# and reads back, the image export reads as the image, and R connects and
# works. After another restart P and P2 find everything they flushed.
. "$(dirname "$0")/lib/common.sh"
need mount umount
need_python_module nbd
need_bootlink
((EUID == 0)) || skip "mounting a tmpfs needs root"

P=52:54:00:0d:00:01 # persistent, on small
Q=52:54:00:0d:00:02 # ephemeral, on big
R=52:54:00:0d:00:03 # ephemeral, connects after small is full
P2=52:54:00:0d:00:04 # persistent, on small, first flush after small is full
mkdir -p "$T/conf/small" "$T/conf/big"
mount -t tmpfs -o size=8m,mode=0700 tmpfs "$T/conf/small" 2>"$T/mount.err" ||
	skip "cannot mount a tmpfs here: $(head -c 200 "$T/mount.err")"
# Unmount before common.sh's _cleanup removes $T (lazy: the daemon may still
# hold files there until _cleanup stops it), then hand it the exit status.
_unmount() {
	local rc=$?
	set +e # the status below must not end the trap before _cleanup
	trap - ERR
	umount -l "$T/conf/small" "$T/conf/big" 2>/dev/null
	return "$rc"
}
trap '_unmount; _cleanup' EXIT
mount -t tmpfs -o size=2g,mode=0700 tmpfs "$T/conf/big" 2>"$T/mount.err" ||
	skip "cannot mount a second tmpfs here: $(head -c 200 "$T/mount.err")"

SIZE=$((32 << 20))
mkimage "$T/img" "$SIZE"
ctl image add base "$T/img"
ctl client add "$P" --image base --mode persistent
ctl client add "$Q" --image base
ctl client add "$R" --image base
ctl client add "$P2" --image base --mode persistent
conf=(overlay/ram_mb=1 overlay/boot_gap_s=3600 runtime/interval_ms=100)
start_daemon overlay/dirs=small "${conf[@]}"

NBDTOOL=(timeout 120 python3 "$TESTS/overlay/nbdtool.py")
nt() { "${NBDTOOL[@]}" "$@"; }
rt() { cat "$RUN/clients/$1/$2" 2>/dev/null || true; }
rt_is() { [[ $(rt "$1" "$2") == "$3" ]]; }
rt_ge() { local v; v=$(rt "$1" "$2") && [[ -n $v ]] && ((v >= $3)); }

# P and P2 open their overlays on small, the only directory for now; P2
# writes nothing yet, so its map file has never been written.
nt "$(nbd_uri "$P")" w:0:$((1 << 20)):1 flush || fail "client $P: first write + flush failed"
nt "$(nbd_uri "$P2")" rf:0:4096:"$T/img" || fail "client $P2: first read failed" # opened, nothing written
wait_for 5 rt_is "$P" overlay_dir "$T/conf/small" || fail "client $P: overlay_dir is '$(rt "$P" overlay_dir)'"
[[ -f $T/conf/small/${P//:/}.data ]] || fail "no $T/conf/small/${P//:/}.data"
stop_daemon
start_daemon overlay/dirs="small big" "${conf[@]}"
# P2 writes 256 KiB without a flush (its first flush comes when small is full).
nt "$(nbd_uri "$P2")" w:0:262144:4 || fail "client $P2: write failed"
nt "$(nbd_uri "$Q")" w:0:4096:2 || fail "client $Q: first write failed"
wait_for 5 rt_is "$Q" overlay_dir "$T/conf/big" ||
	fail "client $Q: overlay_dir is '$(rt "$Q" overlay_dir)', expected $T/conf/big (the most free space)"
wait_for 5 rt_is "$P2" overlay_dir "$T/conf/small" ||
	fail "client $P2: overlay_dir is '$(rt "$P2" overlay_dir)' after the restart, expected small (where its files are)"
ok "overlay directories: P and P2 keep theirs on small, new overlays go to big (the most free space)"

# Q keeps a connection open and writes while P fills small.
spawn "${NBDTOOL[@]}" "$(nbd_uri "$Q")" hold:"$T/q.hold" \
	w:$((1 << 20)):$((6 << 20)):2 r:0:4096:2 r:$((1 << 20)):$((6 << 20)):2 flush
q=$!
wait_for 20 test -e "$T/q.hold" || fail "client $Q did not connect"

# P writes 1 MiB at a time from 1 MiB on until a write fails.
out=$(nt "$(nbd_uri "$P")" fill:$((1 << 20)):$((24 << 20)):1:$((1 << 20))) || fail "client $P: fill failed to run"
echo "$out"
[[ $out =~ ^fill:\ wrote\ ([0-9]+)\ bytes,\ error\ (.*)$ ]] || fail "unexpected fill output"
wrote=${BASH_REMATCH[1]} err=${BASH_REMATCH[2]}
[[ $err == ENOSPC ]] || fail "client $P: filling an 8 MiB overlay disk ended with error '$err', expected ENOSPC"
((wrote >= (4 << 20) && wrote < (8 << 20))) || fail "client $P: wrote $wrote bytes before ENOSPC; expected 4..8 MiB"
ok "client $P: ENOSPC after $wrote more bytes"

# The daemon counts and logs it, naming the client and the file.
wait_for 5 rt_ge "$P" enospc 1 || fail "runtime tree: clients/$P/enospc is '$(rt "$P" enospc)', expected >= 1"
rt_ge "$P" write_errors 1 || fail "runtime tree: clients/$P/write_errors is '$(rt "$P" write_errors)', expected >= 1"
grep -E "$P.*$T/conf/small/${P//:/}\.data.*(No space left|ENOSPC)" "$T/daemon.log" ||
	fail "the daemon log has no line naming client $P, its file and the full disk"
ok "runtime tree counts enospc=$(rt "$P" enospc); the log names the client and the file"

# P: what it wrote reads back; a flush still works; a new write still fails cleanly.
nt "$(nbd_uri "$P")" r:0:$((1 << 20)):1 r:$((1 << 20)):"$wrote":1 flush ew:$((20 << 20)):$((1 << 20)):ENOSPC \
	rf:$((20 << 20)):$((1 << 20)):"$T/img" || fail "client $P after ENOSPC: reads, flush or the failing write misbehaved"
ok "client $P: data written before ENOSPC reads back; flush succeeds; later writes fail with ENOSPC"
# P2's writes were acknowledged before the disk filled: its first flush must
# still make them durable (the map needs no new space then).
# (Checked to the end either way; a failure here is reported at the end.)
late_failure=""
if nt "$(nbd_uri "$P2")" r:0:262144:4 flush; then
	ok "client $P2: the first flush after the disk filled up succeeds"
else
	late_failure="client $P2: its first flush after the overlay disk filled up failed (map file: $(stat -c '%s bytes, %b blocks' "$T/conf/small/${P2//:/}.map" 2>&1))"
	echo "FAIL: $late_failure" >&2
fi

# Everyone else keeps working.
rm "$T/q.hold"
wait "$q" || fail "client $Q (overlay on big) failed while small was full"
nt "$(nbd_uri base)" rf:0:"$SIZE":"$T/img" || fail "the image export misread while small was full"
nt "$(nbd_uri "$R")" w:0:$((2 << 20)):3 r:0:$((2 << 20)):3 flush || fail "a new client $R failed while small was full"
wait_for 5 rt_is "$R" overlay_dir "$T/conf/big" || fail "client $R: overlay_dir is '$(rt "$R" overlay_dir)', expected big"
if ! rt_is "$Q" enospc 0 || ! rt_is "$R" enospc 0; then
	fail "runtime tree: enospc counted for a client that never hit it"
fi
assert_daemon_alive
ok "other clients keep working: $Q wrote 6 MiB past its RAM tier into big, $R connected and wrote, the image export reads"

# A restart: P's overlay is where its files are, whichever directory now has more space.
stop_daemon
start_daemon overlay/dirs="small big" "${conf[@]}"
if [[ -z $late_failure ]]; then
	nt "$(nbd_uri "$P2")" r:0:262144:4 || fail "client $P2 after a restart: its flushed data is gone"
fi
nt "$(nbd_uri "$P")" r:0:$((1 << 20)):1 r:$((1 << 20)):"$wrote":1 ||
	fail "client $P after a restart: its flushed data is gone (overlay_dir now '$(rt "$P" overlay_dir)'; files: $(cd "$T/conf" && echo small/* big/*))"
wait_for 5 rt_is "$P" overlay_dir "$T/conf/small" || fail "client $P after a restart: overlay_dir is '$(rt "$P" overlay_dir)'"
ok "client $P after a restart: its overlay on small, all data there"

stop_daemon
[[ -z $late_failure ]] || fail "$late_failure"
ok "done"
