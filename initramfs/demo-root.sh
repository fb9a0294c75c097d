#!/bin/bash
# demo-root.sh OUT.img [SIZE] — a tiny ext4 root filesystem for trying bootlink (make demo, the
# end-to-end test). Built without mounting anything (mke2fs -d), so no root and no loop devices.
#
# Its /sbin/init (busybox sh) mounts /proc and /sys and prints, on the console:
#   BOOTLINK-DEMO: booted from /dev/nbd0 (ext4) on 6.1.0-56-amd64
#   BOOTLINK-DEMO: previous boots: N          (the counter in /root/boots)
#   BOOTLINK-DEMO: saved boot counter N+1, powering off
# then syncs and powers off (poweroff -f). A persistent client keeps /root/boots between
# boots, an ephemeral one starts from the image every time (previous boots: 0).
# Kernel command line: bootlink.demo.hold=SECONDS stays up that long first (the connection
# stays open, so the server's runtime tree shows it); bootlink.demo.shell=1 gives a shell.
# SIZE defaults to 64M.
set -euo pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin

OUT=${1:?usage: demo-root.sh OUT.img [SIZE]}
SIZE=${2:-64M}
BUSYBOX=${BUSYBOX:-/bin/busybox}
[[ -x $BUSYBOX ]] || {
	echo "demo-root.sh: $BUSYBOX is missing (apt-get install busybox-static)" >&2
	exit 1
}
command -v mke2fs >/dev/null || {
	echo "demo-root.sh: mke2fs is missing (apt-get install e2fsprogs)" >&2
	exit 1
}

d=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-demo-root.XXXXXX")
trap 'rm -rf "$d"' EXIT
mkdir -p "$d"/{bin,sbin,dev,proc,sys,run,tmp,etc,root}
chmod 1777 "$d/tmp"
chmod 0700 "$d/root"
cp "$BUSYBOX" "$d/bin/busybox"
for a in sh ash mount umount cat echo sync poweroff reboot uname awk grep sed date sleep ls \
	mkdir rm cp mv df free dmesg ip hostname head tail wc tr cut vi less ps kill setsid cttyhack; do
	ln -s busybox "$d/bin/$a"
done
echo bootlink-demo >"$d/etc/hostname"
echo "root:x:0:0:root:/root:/bin/sh" >"$d/etc/passwd"
echo "root:x:0:" >"$d/etc/group"
echo "bootlink demo root filesystem, built $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$d/etc/bootlink-demo"

cat >"$d/sbin/init" <<'EOF'
#!/bin/sh
# bootlink demo: say where we booted from, count boots in /root/boots, power off.
export PATH=/bin:/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
hostname bootlink-demo
root=$(awk '$2 == "/" { d = $1 " (" $3 ")" } END { print d }' /proc/mounts)
echo "BOOTLINK-DEMO: booted from $root on $(uname -r)"
n=$(cat /root/boots 2>/dev/null)
case $n in '' | *[!0-9]*) n=0 ;; esac
echo "BOOTLINK-DEMO: previous boots: $n"
if echo $((n + 1)) >/root/boots && sync; then
	echo "BOOTLINK-DEMO: saved boot counter $((n + 1)), powering off"
else
	echo "BOOTLINK-DEMO: FAILED to save the boot counter"
fi
# bootlink.demo.hold=SECONDS: stay up (connected) that long before powering off, so the
# server's runtime tree can be looked at while the client is up (make demo, the e2e test).
hold=$(sed -n 's/.*bootlink\.demo\.hold=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$hold" ]; then
	echo "BOOTLINK-DEMO: up; powering off in $hold s"
	sleep "$hold"
fi
if grep -q 'bootlink.demo.shell=1' /proc/cmdline; then
	echo "BOOTLINK-DEMO: bootlink.demo.shell=1: a shell; 'exit' powers off"
	setsid cttyhack sh
fi
poweroff -f
EOF
chmod 0755 "$d/sbin/init"

rm -f "$OUT"
truncate -s "$SIZE" "$OUT"
mkdir -p "$(dirname "$OUT")"
mke2fs -q -F -t ext4 -L bootlink-demo -E root_owner=0:0 -d "$d" "$OUT" "$SIZE"
echo "demo-root.sh: $OUT: ext4 $SIZE with busybox and the demo /sbin/init" >&2
