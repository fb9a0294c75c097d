# shellcheck shell=bash disable=SC2034 # BOOTDISK/BOOTDISK_WHY are for the caller
# bootdisk.sh — a bootable test disk for iSCSI sanboot tests, built from Debian packages without
# loop mounts or root: an MBR disk whose one FAT16 partition holds SYSLINUX, Debian's kernel and a
# tiny "marker" initramfs. Source it after qemu.sh (it needs KROOT/KVER/VMLINUZ from kernel_fetch).
#
#   bootdisk_usable              the tools are installed (else BOOTDISK_WHY says why)
#   iscsistart_fetch             Debian's iscsistart (packages open-iscsi and libopeniscsiusr,
#                                fetched with `apt-get download` into the cache and extracted, never
#                                installed): sets ISCSISTART_ROOT (else BOOTDISK_WHY says why)
#   marker_initrd OUT [handoff]  a busybox initramfs (gzip'd cpio) whose /init prints one line
#                                  BOOTLINK-MARKER: booted kernel=KVER ibft=yes|no initiator=IQN target=IQN os=WHAT
#                                and powers off. The iBFT fields come from the table iPXE leaves
#                                for the OS (iscsi_ibft.ko); "-" when absent. Plain: os=-. With
#                                `handoff` (needs iscsistart_fetch) it then does what an OS booted
#                                from iSCSI does: the kernel initiator (iscsi_tcp, iscsistart -b)
#                                logs in again from the iBFT (network and CHAP included), mounts
#                                the FAT partition, writes BOOTLINK.TXT ("written by the OS
#                                initiator: <initiator IQN>"), unmounts: os=wrote, or os=<what failed>
#                                (login-failed, no-disk, mount-failed, write-failed) with
#                                iscsistart's last lines before the marker
#   bootdisk_build OUT INITRD    the disk image (32 MiB): sfdisk, mkfs.fat --offset,
#                                syslinux --install --offset, mbr.bin, mcopy of syslinux.cfg
#                                (serial console ttyS0 115200; no_timer_check: under TCG on a busy
#                                machine the kernel's IO-APIC timer check can fail), $VMLINUZ and INITRD
#   bootdisk_cached [handoff]    both of the above for $KVER, cached by the hash of this file,
#                                busybox, syslinux (and iscsistart) (<cache>/bootdisk/KVER-MODE-HASH.img):
#                                sets BOOTDISK (never write to it: copy it for a test)
#   BOOTDISK_MARKER              the start of the marker line, to wait for
#
# The console shows, in order: SYSLINUX's banner, the kernel (quiet), the marker line. Boots with
# `sanboot` from iPXE (BIOS int13) or with `-drive file=...` directly.

BOOTDISK_WHY="" BOOTDISK="" ISCSISTART_ROOT=""
BOOTDISK_MARKER="BOOTLINK-MARKER: booted"
_BOOTDISK_SRC=${BASH_SOURCE[0]}
_BOOTDISK_MBR=/usr/lib/syslinux/mbr/mbr.bin

bootdisk_usable() {
	local c
	BOOTDISK_WHY=""
	for c in sfdisk mkfs.fat syslinux mcopy busybox cpio gzip modprobe; do
		if ! command -v "$c" >/dev/null 2>&1; then
			BOOTDISK_WHY="$c is not installed (tests/lib/deps.sh installs it)"
			return 1
		fi
	done
	if [[ ! -r $_BOOTDISK_MBR ]]; then
		BOOTDISK_WHY="$_BOOTDISK_MBR is missing (Debian package syslinux-common)"
		return 1
	fi
	return 0
}

iscsistart_fetch() {
	local cache=${BOOTLINK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bootlink} dir tmp p
	dir=$cache/open-iscsi
	BOOTDISK_WHY=""
	ISCSISTART_ROOT=$dir/root
	[[ -x $ISCSISTART_ROOT/sbin/iscsistart ]] && return 0
	mkdir -p "$dir" || return 1
	# Extracted under a private name and renamed into place: parallel callers never see half a tree.
	tmp=$(mktemp -d "$dir/.fetch.XXXXXX") || return 1
	for p in open-iscsi libopeniscsiusr; do
		if ! (cd "$tmp" && apt-get download "$p" >/dev/null 2>&1); then
			rm -rf "$tmp"
			BOOTDISK_WHY="apt-get download $p failed (no apt lists or no network?)"
			return 1
		fi
	done
	mkdir "$tmp/root" || return 1
	for p in "$tmp"/*.deb; do
		dpkg-deb -x "$p" "$tmp/root" || {
			rm -rf "$tmp"
			BOOTDISK_WHY="dpkg-deb -x $p failed"
			return 1
		}
	done
	[[ -x $tmp/root/sbin/iscsistart ]] || {
		rm -rf "$tmp"
		BOOTDISK_WHY="the open-iscsi package has no /sbin/iscsistart"
		return 1
	}
	mv -T "$tmp/root" "$ISCSISTART_ROOT" 2>/dev/null || [[ -x $ISCSISTART_ROOT/sbin/iscsistart ]]
	rm -rf "$tmp"
}

marker_initrd() {
	local out=$1 mode=${2:-plain} d m l mods=(iscsi_ibft)
	d=$(mktemp -d "${TMPDIR:-/tmp}/bootdisk-initrd.XXXXXX") || return 1
	mkdir -p "$d"/{bin,sbin,dev,proc,sys,mnt,tmp,run,etc/iscsi,lib/modules} &&
		cp "$(command -v busybox)" "$d/bin/busybox" || return 1
	for m in $(busybox --list); do [[ -e $d/bin/$m ]] || ln -s busybox "$d/bin/$m" || return 1; done
	if [[ $mode == handoff ]]; then
		# The kernel initiator and what the OS needs to use the disk. crc32c_generic: iscsi_tcp
		# wants a crc32c hash per connection (without it, ENOMEM at login).
		mods+=(e1000 crc32c_generic iscsi_tcp sd_mod vfat nls_cp437 nls_utf8 nls_ascii)
		cp "$ISCSISTART_ROOT/sbin/iscsistart" "$d/sbin/" || return 1
		for l in $(LD_LIBRARY_PATH=$ISCSISTART_ROOT/usr/lib/x86_64-linux-gnu ldd "$ISCSISTART_ROOT/sbin/iscsistart" |
			grep -o '/[^ ]*'); do
			mkdir -p "$d$(dirname "${l#"$ISCSISTART_ROOT"}")" && cp -L "$l" "$d${l#"$ISCSISTART_ROOT"}" || return 1
		done
	fi
	# The modules and what they need, in load order (a missing iBFT module only means ibft=no).
	: >"$d/lib/modules/order"
	for m in $(for l in "${mods[@]}"; do modprobe -d "$KROOT" -S "$KVER" --show-depends "$l" 2>/dev/null; done |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
		cp "$m" "$d/lib/modules/" && basename "$m" >>"$d/lib/modules/order" || return 1
	done
	echo "$mode" >"$d/etc/bootlink-mode"
	cat >"$d/init" <<'EOF2' || return 1
#!/bin/sh
# bootlink test initramfs: say that the kernel booted (and what iPXE handed over), power off.
# In handoff mode, first use the disk as an OS booted from iSCSI would.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
i=/sys/firmware/ibft
ibft=no init=- tgt=- os=-
if [ -r $i/initiator/initiator-name ]; then
	ibft=yes init=$(cat $i/initiator/initiator-name) tgt=$(cat $i/target0/target-name 2>/dev/null)
fi
if [ "$(cat /etc/bootlink-mode)" = handoff ]; then
	os=login-failed
	iscsistart -N >/tmp/net.log 2>&1
	if iscsistart -b >/tmp/login.log 2>&1; then
		os=no-disk
		n=0
		while [ ! -b /dev/sda1 ] && [ $n -lt 100 ]; do sleep 0.2; n=$((n + 1)); done
		if [ -b /dev/sda1 ]; then
			os=mount-failed
			if mount -t vfat /dev/sda1 /mnt; then
				os=write-failed
				echo "written by the OS initiator: $init" >/mnt/BOOTLINK.TXT && sync && os=wrote
				umount /mnt || os=umount-failed
			fi
		fi
	fi
	[ $os = wrote ] || tail -n 8 /tmp/net.log /tmp/login.log
fi
echo "BOOTLINK-MARKER: booted kernel=$(uname -r) ibft=$ibft initiator=$init target=$tgt os=$os"
poweroff -f
EOF2
	chmod +x "$d/init" &&
		(cd "$d" && find . | cpio -o -H newc --quiet | gzip -6) >"$out.tmp" &&
		rm -rf "$d" &&
		mv "$out.tmp" "$out"
}

bootdisk_build() {
	local out=$1 initrd=$2 tmp size_mb=32 off=2048 cfg
	tmp=$out.tmp
	cfg=$out.cfg
	# Each step is checked: the caller may be in a condition, where set -e does not act.
	rm -f "$tmp" &&
		truncate -s "${size_mb}M" "$tmp" &&
		printf 'label: dos\nstart=%s, type=6, bootable\n' "$off" | sfdisk -q "$tmp" &&
		# mkfs.fat --offset counts sectors, syslinux and mtools count bytes; the size is in KiB.
		mkfs.fat -F 16 -n BOOTLINK --offset "$off" "$tmp" $((size_mb * 1024 - off / 2)) >/dev/null &&
		syslinux --install --offset $((off * 512)) "$tmp" &&
		dd if="$_BOOTDISK_MBR" of="$tmp" bs=440 count=1 conv=notrunc status=none &&
		cat >"$cfg" <<'EOF2' &&
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT linux
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0,115200 quiet loglevel=3 panic=-1 no_timer_check
EOF2
		mcopy -i "$tmp@@$((off * 512))" "$cfg" ::/syslinux.cfg &&
		mcopy -i "$tmp@@$((off * 512))" "$VMLINUZ" ::/vmlinuz &&
		mcopy -i "$tmp@@$((off * 512))" "$initrd" ::/initrd.gz &&
		rm -f "$cfg" &&
		mv "$tmp" "$out"
}

bootdisk_cached() {
	local cache=${BOOTLINK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bootlink} key mode=${1:-plain}
	BOOTDISK_WHY=""
	bootdisk_usable || return 1
	[[ -n ${KVER:-} && -r ${VMLINUZ:-} ]] || {
		BOOTDISK_WHY="bootdisk_cached: call kernel_fetch first"
		return 1
	}
	if [[ $mode == handoff ]]; then
		iscsistart_fetch || return 1
	fi
	key=$({
		echo "$KVER $mode"
		cat "$_BOOTDISK_SRC"
		dpkg-query -W busybox-static syslinux syslinux-common 2>/dev/null || sha256sum "$(command -v busybox)"
		[[ $mode == plain ]] || sha256sum "$ISCSISTART_ROOT/sbin/iscsistart"
	} | sha256sum | cut -c1-16)
	BOOTDISK=$cache/bootdisk/$KVER-$mode-$key.img
	[[ -s $BOOTDISK ]] && return 0
	mkdir -p "$cache/bootdisk"
	# Built under a private name and renamed into place: parallel callers never see half a disk.
	local tmpd
	tmpd=$(mktemp -d "$cache/bootdisk/.build.XXXXXX")
	if ! marker_initrd "$tmpd/initrd.gz" "$mode" || ! bootdisk_build "$tmpd/disk.img" "$tmpd/initrd.gz"; then
		rm -rf "$tmpd"
		BOOTDISK_WHY="building the boot disk failed"
		return 1
	fi
	mv "$tmpd/disk.img" "$BOOTDISK"
	rm -rf "$tmpd"
	# Older disks of this kind for this kernel are of no more use.
	find "$cache/bootdisk" -maxdepth 1 -name "$KVER-$mode-*.img" ! -name "$KVER-$mode-$key.img" -delete 2>/dev/null || true
	find "$cache/bootdisk" -maxdepth 1 -name "$KVER-????????????????.img" -delete 2>/dev/null || true
	return 0
}
