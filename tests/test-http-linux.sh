#!/bin/bash
# test-http-linux.sh — Linux images, boot menus and autoadd on the HTTP endpoint, with curl and
# libnbd as the clients:
#   - a Linux image's script: kernel + initrd URLs under /boot/<image>/, bootlink.nbd= pointing at
#     the PC's own disk, the image's then the client's kernel options, a failure branch naming the
#     image; sanboot images keep their sanboot script
#   - /boot/<image>/vmlinuz|initrd: GET byte for byte (a 5 MiB + 1 byte file, many chunks, and
#     8 downloads at once), HEAD with Content-Length and no body, 404 for an image without boot
#     files, an unknown image, a path-like name, another file name; a file deleted after the
#     database was read: 404 and a log line naming the image and the file
#   - a missing kernel: the PC's script is an error screen naming the image and the file (retrying)
#   - menus: several images offered -> an iPXE menu (default first, timeout); image=NAME boots that
#     image and the PC's NBD disk (client/MAC) is over it (its size); an image not offered: an
#     error screen; image= with metacharacters: 400
#   - clients/autoadd: 0 -> the "not linked" screen; 1 (live) -> a "registering" script, then the
#     PC is in the database as PC00N with clients/default_image, with an event, and its next fetch
#     boots it
source "$(dirname "$0")/lib/common.sh"
need curl python3 nbdinfo cmp
need_bootlink

mkimage "$T/img" 1M
mkimage "$T/img2" 2M
mkimage "$T/vmlinuz" 5M+1
mkimage "$T/initrd" 300K
ctl image add lin "$T/img" --description 'Linux $(x) ${y} & z' >/dev/null
ctl image add win "$T/img2" --description "Windows 10" >/dev/null
ctl image set lin --kernel "$T/vmlinuz" --initrd "$T/initrd" --cmdline "console=ttyS0 quiet" >/dev/null
M1=52:54:00:bb:00:01
M2=52:54:00:bb:00:02
ctl client add $M1 --image lin --name LAB1 >/dev/null
ctl client set $M1 --cmdline "bootlink.conns=2" >/dev/null
ctl client add $M2 --image win --name LAB2 >/dev/null
M5=52:54:00:bb:00:05
mkimage "$T/gone.img" 1M
ctl image add gone "$T/gone.img" >/dev/null
rm "$T/gone.img"
ctl client add $M5 --image gone --name GONE >/dev/null
start_daemon runtime/interval_ms=100
U="http://$HTTP_ADDR"
H="127.0.0.1:$HTTP_PORT"
# echo_text SCRIPT: the text of its echo lines joined (screens are wrapped to fit 80 columns).
echo_text() { sed -n 's/^echo *//p' <<<"$1" | tr '\n' ' ' | tr -s ' '; }
# fetch_text MAC: the echo text of the PC's script.
fetch_text() { echo_text "$(timeout 10 curl -s "$U/ipxe?mac=$1")"; }

s=$(timeout 10 curl -sf "$U/ipxe?mac=52-54-00-bb-00-01")
grep -qx "kernel http://$H/boot/lin/vmlinuz bootlink.nbd=127.0.0.1:$NBD_PORT/client/$M1 console=ttyS0 quiet bootlink.conns=2 || goto failed" <<<"$s" ||
	fail "no kernel line with the NBD root and both command lines: $s"
grep -qx "initrd http://$H/boot/lin/initrd || goto failed" <<<"$s" && grep -qx "boot || goto failed" <<<"$s" ||
	fail "no initrd/boot lines: $s"
grep -q "bootlink: image lin: its kernel or initrd could not be loaded" <<<"$(echo_text "$s")" && grep -q '^chain --replace' <<<"$s" ||
	fail "no failure branch naming the image: $s"
! grep -q sanboot <<<"$s" || fail "a Linux image's script has sanboot: $s"
s=$(timeout 10 curl -sf "$U/ipxe?mac=52-54-00-bb-00-02")
grep -q "^sanboot --drive 0x80 iscsi:" <<<"$s" || fail "a sanboot image's script has no sanboot: $s"
ok "Linux image: kernel + initrd over HTTP, root on the PC's NBD disk, image then client options; sanboot image unchanged"

timeout 30 curl -sf -o "$T/got" "$U/boot/lin/vmlinuz" && cmp "$T/vmlinuz" "$T/got" || fail "the kernel differs"
timeout 30 curl -sf -o "$T/got" "$U/boot/lin/initrd" && cmp "$T/initrd" "$T/got" || fail "the initrd differs"
hd=$(timeout 10 curl -sfI "$U/boot/lin/vmlinuz" | tr -d '\r')
grep -qix "content-length: $(stat -c %s "$T/vmlinuz")" <<<"$hd" || fail "HEAD: no Content-Length: $hd"
n=$(timeout 10 curl -s -X HEAD -o - "$U/boot/lin/vmlinuz" --max-time 5 2>/dev/null | wc -c || true)
[[ $n == 0 ]] || fail "HEAD sent a body ($n bytes)"
pids=()
for i in 1 2 3 4 5 6 7 8; do
	timeout 60 curl -sf -o "$T/par$i" "$U/boot/lin/vmlinuz" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel download failed"; done
for i in 1 2 3 4 5 6 7 8; do cmp -s "$T/vmlinuz" "$T/par$i" || fail "parallel download $i differs"; done
ok "boot files: GET byte for byte (5 MiB + 1, 8 at once), HEAD with Content-Length and no body"

code() { timeout 10 curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ $(code "$U/boot/win/vmlinuz") == 404 ]] || fail "a sanboot image's kernel is not 404"
[[ $(code "$U/boot/nope/vmlinuz") == 404 ]] || fail "an unknown image is not 404"
[[ $(code "$U/boot/lin/passwd") == 404 ]] || fail "another file name is not 404"
[[ $(code "$U/boot/..%2f..%2fetc/vmlinuz") == 404 ]] || fail "a path-like image name is not 404"
[[ $(code "$U/boot/lin/vmlinuz/x") == 404 ]] || fail "a longer path is not 404"
[[ $(code "$U/ipxe?mac=$M1&image=a%24%7Bb%7D") == 400 ]] || fail "image= with metacharacters is not 400"
mv "$T/initrd" "$T/initrd.away"
[[ $(code "$U/boot/lin/initrd") == 404 ]] || fail "a deleted initrd is not 404"
wait_for 5 grep -q "image lin: its initrd $T/initrd cannot be opened" "$T/daemon.log" || fail "no log line for the deleted initrd"
mv "$T/initrd.away" "$T/initrd"
ok "boot files: 404 for sanboot images, unknown images, other names, path-like names; a deleted file: 404 and a log line"

# A missing kernel: the database is reread (an edit), the script is an error screen.
mv "$T/vmlinuz" "$T/vmlinuz.away"
ctl client set $M1 --cmdline "" >/dev/null
is_missing() { [[ $(fetch_text $M1) == *"its kernel $T/vmlinuz cannot be read"* ]]; }
wait_for 10 is_missing ||
	fail "a missing kernel: no screen naming it: $(curl -s "$U/ipxe?mac=$M1")"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M1")
grep -q "image lin: its kernel" <<<"$(echo_text "$s")" && grep -q '^sleep 10' <<<"$s" && grep -q '^chain --replace' <<<"$s" &&
	! grep -q '^kernel' <<<"$s" || fail "a missing kernel: not an error screen that retries: $s"
grep -q "image lin: its kernel $T/vmlinuz cannot be read" "$T/daemon.log" || fail "no log line for the missing kernel"
mv "$T/vmlinuz.away" "$T/vmlinuz"
ctl client set $M1 --cmdline "bootlink.conns=2" >/dev/null
wait_for 10 sh -c "curl -s '$U/ipxe?mac=$M1' | grep -q '^kernel '" || fail "the kernel is back but the script is not"
ok "a missing kernel: an error screen naming the image and file that retries, a log line; back once the file is"

# An image whose file is gone (before the daemon started): the screen names the image (and
# retries), the log says why.
gone_screen() { [[ $(fetch_text $M5) == *"image ?gone?: cannot open $T/gone.img: No such file"* ]]; }
wait_for 10 gone_screen || fail "an image without its file: no screen naming it: $(fetch_text $M5)"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M5")
grep -q '^sleep 10' <<<"$s" && grep -q '^chain --replace' <<<"$s" && ! grep -q '^kernel\|^sanboot' <<<"$s" ||
	fail "an image without its file: not an error screen that retries: $s"
grep -q "image 'gone'" "$T/daemon.log" || fail "no log line for the image without its file"
echo "screen: $(fetch_text $M5 | grep -o "client GONE.*repair gone)")"
ok "an image whose file is gone: an error screen naming it that retries, and a log line"

# Menus.
ctl client set $M1 --menu win,lin --menu-timeout 7 >/dev/null
wait_for 10 sh -c "curl -s '$U/ipxe?mac=$M1' | grep -q '^menu '" || fail "no menu after client set --menu"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M1")
grep -qx "item lin lin - Linux ?(x) ??y? ? z (default)" <<<"$s" || fail "menu: the default item (escaped description): $s"
grep -qx "item win win - Windows 10" <<<"$s" || fail "menu: the other item: $s"
grep -qx "choose --timeout 7000 --default lin blimage || goto cancel" <<<"$s" || fail "menu: choose line: $s"
grep -q '&image=${blimage} || goto failed' <<<"$s" || fail "menu: the choice does not come back as image=: $s"
! grep -q '\$(x)' <<<"$s" || fail "menu: a description was not escaped: $s"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M1&image=win")
grep -q "^sanboot --drive 0x80 iscsi:" <<<"$s" && grep -q "boots image win" <<<"$s" || fail "image=win: no sanboot of win: $s"
sz=$(timeout 10 nbdinfo --size "$(nbd_uri "client/$M1")")
[[ $sz == $((2 * 1024 * 1024)) ]] || fail "after choosing win the PC's disk has size $sz, not win's"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M1&image=lin")
grep -q "^kernel http://$H/boot/lin/vmlinuz" <<<"$s" || fail "image=lin: no kernel line: $s"
sz=$(timeout 10 nbdinfo --size "$(nbd_uri "client/$M1")")
[[ $sz == $((1024 * 1024)) ]] || fail "after choosing lin again the PC's disk has size $sz"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M2&image=lin")
grep -q "Image lin is not offered to this PC (LAB2, MAC $M2)" <<<"$(echo_text "$s")" && grep -q '^chain --replace' <<<"$s" &&
	! grep -q '^kernel\|^sanboot' <<<"$s" || fail "an image not offered: no error screen: $s"
ok "menus: items (escaped), default, timeout; the choice boots that image and the PC's disk follows it; others refused"

# clients/autoadd.
M3=52:54:00:bb:00:03
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M3")
grep -q "This PC (MAC $M3) is not linked to an image" <<<"$(echo_text "$s")" || fail "autoadd 0: no 'not linked' screen: $s"
conf_set clients/default_image lin
conf_set clients/autoadd 1
wait_for 10 grep -q "config: clients/autoadd changed: 0 -> 1" "$T/daemon.log" || fail "clients/autoadd is not live"
s=$(timeout 10 curl -sf "$U/ipxe?mac=$M3")
grep -q "this PC (MAC $M3) is new: registering it" <<<"$s" && grep -q '^chain --replace' <<<"$s" ||
	fail "autoadd 1: no registering script: $s"
wait_for 10 sh -c "$BUILD/bootlinkctl -c $T/conf client list | grep -q '$M3'" || fail "autoadd: the PC was not registered"
line=$(ctl client list | grep "$M3")
[[ $line == *PC001*lin* ]] || fail "autoadd: registered as '$line', expected PC001 with image lin"
ctl events "$M3" | grep -q "autoadd: registered as PC001, image lin" || fail "autoadd: no event: $(ctl events "$M3")"
wait_for 10 sh -c "curl -s '$U/ipxe?mac=$M3' | grep -q '^kernel .*client/$M3'" || fail "autoadd: the new PC does not boot"
M4=52:54:00:bb:00:04
timeout 10 curl -sf "$U/ipxe?mac=$M4" >/dev/null
wait_for 10 sh -c "$BUILD/bootlinkctl -c $T/conf client list | grep -q 'PC002 .*$M4'" || fail "autoadd: the second PC is not PC002"
ok "autoadd: off -> the screen; on (live) -> registered as PC001, PC002 with the default image, an event, and it boots"

assert_daemon_alive
stop_daemon
ok "done"
