#!/bin/bash
# test-attach-host — bootlink-attach with this machine's own kernel nbd driver (as root): attach
# an image over two connections, read-only; /dev/nbdN reads byte for byte as the image file;
# --status shows it connected with its size; attaching the same device again is "busy"; detach
# leaves it disconnected with size 0, and a second detach says it is not connected. Skipped
# (77, with the reason) where this kernel has no nbd module (then test-e2e-attach, in a guest
# running Debian's kernel, is where the attach path is checked).
. "$(dirname "$0")/lib/common.sh"
need_bootlink
ATTACH=$BUILD/bootlink-attach
[[ -x $ATTACH ]] || skip "$ATTACH is not built (run make)"
((EUID == 0)) || skip "attaching needs root"
if [[ ! -e /sys/module/nbd ]] && ! modprobe -n nbd >/dev/null 2>&1; then
	skip "this kernel ($(uname -r)) has no nbd module: see test-e2e-attach (a guest with Debian's kernel)"
fi
need blockdev cmp

# expect_fail STATUS PATTERN ARGS...: bootlink-attach ARGS exits STATUS and says PATTERN.
expect_fail() {
	local want=$1 pat=$2 rc=0
	shift 2
	OUT=$(timeout 60 "$ATTACH" "$@" 2>&1 >/dev/null) || rc=$?
	((rc == want)) || fail "bootlink-attach $*: exit $rc, expected $want; said: $OUT"
	grep -Eq -- "$pat" <<<"$OUT" || fail "bootlink-attach $*: expected a line matching '$pat', got: $OUT"
}

mkimage "$T/img" 4M
ctl image add img "$T/img" >/dev/null
start_daemon
size=$(stat -c %s "$T/img")
dev=$(timeout 60 "$ATTACH" -s "$NBD_ADDR" --conns 2 img 2>"$T/attach.err") || fail "attach: $(cat "$T/attach.err")"
echo "    $(cat "$T/attach.err")"
[[ $dev =~ ^/dev/nbd[0-9]+$ ]] || fail "attach printed '$dev', expected /dev/nbdN"
detach() { "$ATTACH" --detach "$dev" >/dev/null 2>&1 || true; }
trap 'detach; _cleanup' EXIT
[[ $(blockdev --getro "$dev") == 1 ]] || fail "$dev is not read-only"
cmp "$dev" "$T/img" || fail "$dev differs from the image"
"$ATTACH" --status "$dev" | grep -qx "$dev connected $size" || fail "--status $dev: $("$ATTACH" --status "$dev" 2>&1)"
expect_fail 1 'is busy' -s "$NBD_ADDR" img "$dev"
"$ATTACH" --detach "$dev" 2>&1 | grep -q detached || fail "--detach $dev failed"
[[ $(cat "/sys/block/${dev#/dev/}/size") == 0 ]] || fail "$dev still has a size after detach"
"$ATTACH" --status "$dev" | grep -qx "$dev disconnected" || fail "--status after detach: $("$ATTACH" --status "$dev" 2>&1)"
expect_fail 1 'is not connected' --detach "$dev"
ok "host attach: $dev read-only, reads as the image, busy when attached twice, detached"
stop_daemon
ok "done"
