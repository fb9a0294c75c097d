#!/bin/bash
# build.sh OUT.cpio.gz [KVER] — the standalone bootlink initramfs: a Linux client's root on NBD.
#
# Contents: busybox (static, every applet), Debian's nbd-client with the shared libraries ldd
# names, the kernel modules for NBD, ext4, overlayfs and the NICs (with their dependencies,
# resolved by `modprobe --show-depends` against the kernel's own modules.dep), and /init from
# this directory (the boot script; see README.md for its kernel command line).
#
# KVER is a Debian kernel version (6.1.0-56-amd64); by default the one Debian's
# linux-image-amd64 currently depends on. The kernel package is downloaded (not installed) and
# cached by fetch-kernel.sh; boot the matching vmlinuz with this initramfs, e.g.
#   qemu-system-x86_64 -kernel "$(initramfs/fetch-kernel.sh)"/boot/vmlinuz-KVER -initrd OUT ...
#
# Environment:
#   BOOTLINK_MODULES  extra modules (names as modprobe knows them), e.g. "igb r8169 ixgbe"
#   BOOTLINK_CACHE    the download cache (default ${XDG_CACHE_HOME:-~/.cache}/bootlink)
#   BUSYBOX           a static busybox (default /bin/busybox from busybox-static)
#   NBD_CLIENT        nbd-client (default /usr/sbin/nbd-client from Debian's nbd-client)
#
# Needs: busybox-static, nbd-client, cpio, kmod, gzip (Debian packages). Runs as any user that
# can read those files; the archive's files are owned by root whoever builds it.
set -euo pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
	echo "build.sh: $*" >&2
	exit 1
}

(($# >= 1 && $# <= 2)) || {
	sed -n '2,3p' "$0" >&2
	echo "usage: $0 OUT.cpio.gz [KVER]" >&2
	exit 2
}
OUT=$1
BUSYBOX=${BUSYBOX:-/bin/busybox}
NBD_CLIENT=${NBD_CLIENT:-/usr/sbin/nbd-client}

for t in cpio gzip modprobe ldd; do
	command -v "$t" >/dev/null 2>&1 || die "$t is not installed (apt-get install cpio gzip kmod libc-bin)"
done
[[ -x $BUSYBOX ]] || die "$BUSYBOX is missing (apt-get install busybox-static)"
# A dynamically linked busybox would need its libraries too: insist on the static one.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
	die "$BUSYBOX is dynamically linked; install busybox-static (or point BUSYBOX at a static busybox)"
fi
[[ -x $NBD_CLIENT ]] || die "$NBD_CLIENT is missing (apt-get install nbd-client)"

kernel=$("$HERE/fetch-kernel.sh" ${2:+"$2"}) || die "no kernel to take modules from (see the line above)"
{
	read -r KROOT
	read -r KVER
} <<<"$kernel"
[[ -f $KROOT/lib/modules/$KVER/modules.dep ]] || die "$KROOT/lib/modules/$KVER has no modules.dep"

stage=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,newroot,etc/bootlink,lib/modules/"$KVER"}

# --- busybox and its applets -------------------------------------------------------------
cp "$BUSYBOX" "$stage/bin/busybox"
for a in $("$BUSYBOX" --list); do
	[[ $a == busybox ]] || ln -s busybox "$stage/bin/$a"
done

# --- nbd-client and its libraries ----------------------------------------------------------
cp "$NBD_CLIENT" "$stage/sbin/nbd-client"
for lib in $(ldd "$NBD_CLIENT" | grep -o '/[^ ]*'); do
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done

# --- kernel modules, in load order -----------------------------------------------------------
# Needed: nbd, ext4 (and what it pulls in: jbd2, mbcache, crc16, crc32c), overlay (for
# bootlink.ramoverlay=1), the NICs of qemu (virtio, e1000, e1000e) and of common PCs.
# A module the kernel has built in is skipped; a NIC module this kernel lacks is a warning.
required=(nbd ext4)
optional=(overlay virtio_pci virtio_net e1000 e1000e igb r8169 tg3 bnx2)
read -ra extra <<<"${BOOTLINK_MODULES:-}"
optional+=("${extra[@]}")
declare -A seen=()
: >"$stage/etc/bootlink/modules"
add_module() { # NAME: append NAME and its dependencies to the load list
	local out line path base opts
	out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$1" 2>&1) || return 1
	while read -r line; do
		[[ $line == insmod\ * ]] || continue
		path=$(awk '{print $2}' <<<"$line")
		base=$(basename "$path")
		case $base in
		*.ko.xz) base=${base%.xz} ;;
		*.ko.zst) base=${base%.zst} ;;
		*.ko.gz) base=${base%.gz} ;;
		esac
		[[ -z ${seen[$base]:-} ]] || continue
		seen[$base]=1
		case $path in
		*.xz) xz -dc "$path" >"$stage/lib/modules/$KVER/$base" ;;
		*.zst) zstd -qdc "$path" >"$stage/lib/modules/$KVER/$base" ;;
		*.gz) gzip -dc "$path" >"$stage/lib/modules/$KVER/$base" ;;
		*) cp "$path" "$stage/lib/modules/$KVER/$base" ;;
		esac
		# Our own options, never this machine's /etc/modprobe.d.
		opts=""
		[[ $base == nbd.ko ]] && opts="max_part=15"
		echo "$base${opts:+ $opts}" >>"$stage/etc/bootlink/modules"
	done <<<"$out"
}
for m in "${required[@]}"; do
	add_module "$m" || die "kernel $KVER has no module $m: $(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1 | tail -n 1)"
done
for m in "${optional[@]}"; do
	add_module "$m" || echo "build.sh: warning: kernel $KVER has no module $m; skipped" >&2
done

# --- the boot script and its helpers -------------------------------------------------------
install -m 0755 "$HERE/init" "$stage/init"
install -m 0755 "$HERE/udhcpc.script" "$stage/etc/bootlink/udhcpc.script"
{
	echo "KVER=$KVER"
	echo "BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "NBD_CLIENT_VERSION=$(dpkg-query -W -f='${Version}' nbd-client 2>/dev/null || echo unknown)"
} >"$stage/etc/bootlink/build-info"

# --- the archive ---------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
tmp_out=$(mktemp "$(dirname "$OUT")/.initramfs.XXXXXX")
(cd "$stage" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$tmp_out"
chmod 0644 "$tmp_out"
mv "$tmp_out" "$OUT"
nmods=$(wc -l <"$stage/etc/bootlink/modules")
echo "build.sh: $OUT: $(($(stat -c %s "$OUT") / 1024)) KiB, kernel $KVER, $nmods modules; boot it with $KROOT/boot/vmlinuz-$KVER" >&2
