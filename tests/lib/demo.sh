#!/bin/bash
# demo.sh — `make demo`: bootlinkd serves a demo disk to a demo PC (qemu) that boots from it.
#
# make has built bootlinkd and bootlinkctl and installed the Debian packages (tests/lib/deps.sh).
# This script, with everything under ./demo (ignored by git):
#   1. fetches a Debian kernel (downloaded once into ~/.cache/bootlink, not installed), builds the
#      bootlink initramfs (initramfs/build.sh) and a tiny ext4 root image (initramfs/demo-root.sh);
#   2. writes a config tree demo/conf (NBD on 127.0.0.1:10809, or a free port if that is taken),
#      adds the image and links the demo PC to it with bootlinkctl;
#   3. starts bootlinkd, boots the PC under qemu through the whole chain, showing its console:
#      the NIC's PXE ROM (iPXE) gets an address and a first script from qemu's DHCP/TFTP (as a
#      site's DHCP server would give it), chains to bootlinkd's /boot.ipxe over HTTP, which
#      chains to the PC's own script (by MAC): kernel + initrd fetched from bootlinkd over HTTP,
#      root filesystem on NBD from bootlinkd; shows the runtime tree while the PC is up, stops
#      it, prints `bootlinkctl status`, stops bootlinkd.
# Ctrl-C stops whatever it started. Run it again: the demo PC is persistent, so it counts its
# boots. `rm -rf demo` starts afresh.
#
# Environment: DEMO_DIR (./demo), DEMO_MAC (52:54:00:de:00:01), DEMO_MODE (persistent |
# ephemeral), DEMO_PORT (NBD, 10809), DEMO_HTTP_PORT (10880), BUILD (build).
set -euo pipefail
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
unset JOURNAL_STREAM

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$SRCDIR"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$SRCDIR/$BUILD
DEMO=${DEMO_DIR:-$SRCDIR/demo}
[[ $DEMO == /* ]] || DEMO=$SRCDIR/$DEMO
MAC=${DEMO_MAC:-52:54:00:de:00:01}
MODE=${DEMO_MODE:-persistent}
PORT=${DEMO_PORT:-10809}
HTTP_FIXED=${DEMO_HTTP_PORT:-10880}
CONF=$DEMO/conf
RUN=$DEMO/run
DAEMON_PID=""

step() { printf '\n==> %s\n' "$*"; }
die() {
	echo "demo: $*" >&2
	exit 1
}
ctl() { "$BUILD/bootlinkctl" -c "$CONF" "$@"; }

QEMU_DIR=$DEMO
. "$SRCDIR/tests/lib/qemu.sh"

stop_daemon() {
	local i
	[[ -n $DAEMON_PID ]] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		_qemu_alive "$DAEMON_PID" || break
		sleep 0.1
	done
	_qemu_alive "$DAEMON_PID" && kill -KILL "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=""
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	qemu_stop_all
	if [[ -n $DAEMON_PID ]]; then
		echo "demo: stopping bootlinkd (pid $DAEMON_PID)"
		stop_daemon
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT
trap 'exit 143' TERM

for p in bootlinkd bootlinkctl; do
	[[ -x $BUILD/$p ]] || die "$BUILD/$p is not built (run make demo, or make first)"
done
qemu_usable || die "$QEMU_WHY"
[[ $MODE == persistent || $MODE == ephemeral ]] || die "DEMO_MODE=$MODE: persistent or ephemeral"
mkdir -p "$DEMO"

# --- 1. kernel, initramfs, root image ---------------------------------------------------------
step "kernel, initramfs and demo root image (in $DEMO)"
kernel_fetch || die "$QEMU_WHY"
echo "kernel: Debian $KVER ($VMLINUZ)"
cmp -s "$VMLINUZ" "$DEMO/vmlinuz" 2>/dev/null || cp "$VMLINUZ" "$DEMO/vmlinuz"
initrd=$DEMO/initrd.cpio.gz
stale=0
for f in initramfs/build.sh initramfs/init initramfs/udhcpc.script; do
	[[ $initrd -nt $f ]] || stale=1
done
[[ $(cat "$DEMO/initrd.kver" 2>/dev/null) == "$KVER" ]] || stale=1
if ((stale)); then
	initramfs/build.sh "$initrd" "$KVER"
	echo "$KVER" >"$DEMO/initrd.kver"
else
	echo "initramfs: $initrd (up to date)"
fi
if [[ ! -s $DEMO/root.img ]]; then
	# A new image: whatever the old database and overlays said about the old one goes.
	rm -rf "$DEMO/state" "$DEMO/overlays" "$DEMO/versions"
	initramfs/demo-root.sh "$DEMO/root.img"
else
	echo "root image: $DEMO/root.img (kept; rm -rf demo to start afresh)"
fi

# --- 2. config tree, image, client -------------------------------------------------------------
step "config tree $CONF"
if [[ -s $RUN/pid ]] && _qemu_alive "$(<"$RUN/pid")" && [[ $(cat "/proc/$(<"$RUN/pid")/comm" 2>/dev/null) == bootlinkd ]]; then
	die "a bootlinkd for this demo is already running (pid $(<"$RUN/pid")); stop it first: kill $(<"$RUN/pid")"
fi
mkdir -p "$CONF" "$DEMO/state" "$DEMO/overlays" "$DEMO/versions"
setting() { # KEY VALUE
	mkdir -p "$(dirname "$CONF/$1")"
	printf '%s\n' "$2" >"$CONF/$1"
	printf '  %-26s %s\n' "$1" "$2"
}
# Everything on loopback: the qemu client reaches 127.0.0.1 as 10.0.2.2 (user networking).
# The other listeners (HTTP for iPXE, iSCSI): loopback, any free port.
setting listen/nbd "127.0.0.1:$PORT"
setting listen/http "127.0.0.1:$HTTP_FIXED"
for key in $(grep -oE '"listen/[a-z0-9_]+"' common/conf.c | tr -d '"' | sort -u); do
	[[ $key == listen/nbd || $key == listen/http ]] || setting "$key" 127.0.0.1:0
done
setting paths/db "$DEMO/state/bootlink.db"
setting paths/run "$RUN"
setting paths/versions "$DEMO/versions"
setting overlay/dirs "$DEMO/overlays"
# bootlinkd wants overlays (the PCs' writes) on a disk apart from the images' disk, so that
# heavy writing cannot starve image reads or fill the image's disk; it refuses by default.
# Here the demo image and its one small overlay share this machine's disk: allow it.
setting overlay/allow_image_disk 1
# The default floor (1G free) keeps overlays off nearly full disks; the demo writes a few KiB.
setting overlay/min_free 100M
setting cache/size_mb 64
setting workers 2
setting runtime/interval_ms 200

ctl_json() { ctl --json "$@" 2>/dev/null || true; }
img_path=$(ctl_json image list | python3 -c '
import json, sys
try: doc = json.load(sys.stdin)
except Exception: sys.exit(0)
for i in doc.get("images", []):
    if i["name"] == "demo": print(i["path"])')
if [[ -n $img_path && $img_path != "$DEMO/root.img" ]]; then
	ctl image rm demo --force
	img_path=""
fi
[[ -n $img_path ]] || ctl image add demo "$DEMO/root.img" --description "bootlink demo root (busybox, counts its boots)"
read -r cl_image cl_mode < <(ctl_json client list | python3 -c '
import json, sys
try: doc = json.load(sys.stdin)
except Exception: doc = {}
for c in doc.get("clients", []):
    if c["mac"] == sys.argv[1]: print(c["image"] or "-", c["mode"]); break
else: print("none none")' "$MAC")
if [[ $cl_image == none ]]; then
	ctl client add "$MAC" --image demo --name demo-pc --mode "$MODE"
else
	[[ $cl_image == demo ]] || ctl client link "$MAC" demo
	[[ $cl_mode == "$MODE" ]] || ctl client set "$MAC" --mode "$MODE"
fi
# The demo image boots Linux: iPXE fetches its kernel and initrd from bootlinkd over HTTP.
ctl image set demo --boot linux --kernel "$DEMO/vmlinuz" --initrd "$initrd" \
	--cmdline "console=ttyS0 quiet panic=-1 no_timer_check bootlink.onfail=poweroff bootlink.failwait=3 bootlink.demo.hold=60"
ctl client list

# --- 3. bootlinkd ---------------------------------------------------------------------------
step "bootlinkd"
start_daemon() {
	local i
	rm -f "$RUN/ready" "$RUN/listen/nbd"
	echo "--- $(date '+%F %T') demo.sh" >>"$DEMO/bootlinkd.log"
	"$BUILD/bootlinkd" -c "$CONF" >>"$DEMO/bootlinkd.log" 2>&1 &
	DAEMON_PID=$!
	for ((i = 0; i < 100; i++)); do
		[[ -s $RUN/ready && -s $RUN/listen/nbd ]] && return 0
		_qemu_alive "$DAEMON_PID" || break
		sleep 0.1
	done
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=""
	return 1
}
if ! start_daemon; then
	if grep -qE "listen/(nbd|http).*in use" "$DEMO/bootlinkd.log"; then
		echo "port $PORT or $HTTP_FIXED is taken on 127.0.0.1; using free ones"
		setting listen/nbd 127.0.0.1:0
		setting listen/http 127.0.0.1:0
		start_daemon || true
	fi
	if [[ -z $DAEMON_PID ]]; then
		tail -n 15 "$DEMO/bootlinkd.log" >&2
		die "bootlinkd did not start (log: $DEMO/bootlinkd.log)"
	fi
fi
NBD_ADDR=$(<"$RUN/listen/nbd")
NBD_PORT=${NBD_ADDR##*:}
echo "bootlinkd pid $DAEMON_PID, NBD on $NBD_ADDR, log $DEMO/bootlinkd.log"
echo "exports: $(timeout 10 nbdinfo --list --json "nbd://$NBD_ADDR" 2>/dev/null |
	python3 -c 'import json, sys; print(", ".join(e["export-name"] for e in json.load(sys.stdin)["exports"]))' 2>/dev/null || echo "?")"

# --- 4. the PC boots --------------------------------------------------------------------------
HTTP_ADDR=$(<"$RUN/listen/http")
HTTP_PORT=${HTTP_ADDR##*:}
# What a site's TFTP server hands iPXE: a first script that chains to bootlinkd (see
# ipxe-scripts/README.md and bootlinkctl pxe-config for a real network).
mkdir -p "$DEMO/tftp"
printf '#!ipxe\nchain http://10.0.2.2:%s/boot.ipxe || echo DEMO: CHAIN-FAILED\n' "$HTTP_PORT" >"$DEMO/tftp/first.ipxe"
# SeaBIOS copies the option ROM's screen (iPXE) to the serial console when fw_cfg
# etc/sercon-port names the port (0x3f8, little-endian); qemu sets it only with -nographic.
printf '\xf8\x03' >"$DEMO/sercon"
QARGS=(-boot n -fw_cfg "name=etc/sercon-port,file=$DEMO/sercon"
	-nic "user,model=e1000,mac=$MAC,tftp=$DEMO/tftp,bootfile=first.ipxe")
step "demo PC $MAC boots from its network card (qemu, TCG: PXE -> iPXE -> HTTP -> kernel + NBD root, 30-90 s); its console:"
QEMU_LIVE=1 QEMU_LIVE_PREFIX="  | "
rc=0
QEMU_KEEP=1 qemu_boot client 240 'BOOTLINK-DEMO: up; powering off' \
	'bootlink: boot failed|Kernel panic|BOOTLINK-DEMO: FAILED|DEMO: CHAIN-FAILED|No bootable device|cannot boot yet' -- \
	"${QARGS[@]}" || rc=$?
QEMU_LIVE=0
case $rc in
0) echo "demo: the PC booted from bootlinkd in ${QEMU_SECS}s" ;;
1) die "the boot failed: $QEMU_MATCH (console: $(qemu_log client), daemon log: $DEMO/bootlinkd.log)" ;;
2) die "no result on the console within 240 s (console: $(qemu_log client))" ;;
*) die "qemu stopped before the PC booted (console: $(qemu_log client))" ;;
esac

# --- 5. what the server saw -----------------------------------------------------------------------
sleep 0.5 # one more refresh of the runtime tree (runtime/interval_ms = 200)
step "runtime tree ($RUN) while the PC is up"
show() { # DIR: "  DIR/  key=value key=value ..."
	local f out=""
	for f in "$1"/*; do [[ -f $f ]] && out+=" ${f##*/}=$(<"$f")"; done
	echo "  ${1#"$RUN"/}/ $out"
}
[[ -d $RUN/clients/$MAC ]] && show "$RUN/clients/$MAC"
for d in "$RUN"/connections/*; do
	[[ $(cat "$d/export" 2>/dev/null) == "client/$MAC" ]] && show "$d"
done
[[ -d $RUN/images/demo ]] && show "$RUN/images/demo"
qemu_stop client
echo "(the PC is stopped)"

step "bootlinkctl status"
ctl status
step "stopping bootlinkd"
stop_daemon
echo "stopped"

boots=$(grep -a -o 'previous boots: [0-9]*' "$(qemu_log client)" | grep -o '[0-9]*$' || echo 0)
B=${BUILD#"$SRCDIR"/}
D=${DEMO#"$SRCDIR"/}
cat <<EOF

==> next steps
  * run make demo again: the demo PC is $MODE, so it will report $([[ $MODE == persistent ]] && echo "previous boots: $((boots + 1))" || echo "previous boots: 0 again").
    DEMO_MODE=ephemeral make demo   the same PC, ephemeral: its writes are gone at each boot
  * by hand, the same setup:
      $B/bootlinkd -c $D/conf &
      $B/bootlinkctl -c $D/conf status
      qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -boot n \\
          -nic user,model=e1000,mac=$MAC,tftp=$D/tftp,bootfile=first.ipxe     (quit qemu: Ctrl-A then X)
      (the PC's script: curl http://\$(cat $D/run/listen/http)/ipxe?mac=$MAC)
  * the initramfs for your own images: initramfs/README.md; what this demo does: docs/demo.md
  * start afresh: rm -rf $D
EOF
