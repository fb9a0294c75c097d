#!/bin/bash
# fetch-kernel.sh [KVER] — a Debian kernel, extracted, for the bootlink initramfs and qemu clients.
#
# Prints two lines: the directory the package was extracted into (it holds boot/vmlinuz-KVER
# and lib/modules/KVER with depmod run), then KVER; everything else goes to stderr. The package is fetched
# with `apt-get download linux-image-KVER` (nothing is installed on this machine) into the
# cache, extracted with `dpkg-deb -x` and indexed with `depmod -b`, once per version:
#
#   ${BOOTLINK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bootlink}/kernels/KVER/
#       linux-image-KVER_*.deb    the downloaded package
#       root/                     its contents
#
# KVER (e.g. 6.1.0-56-amd64): default is the version Debian's linux-image-amd64 depends on
# (from the local apt lists; no network needed to decide). If that one cannot be downloaded
# (the archive moved on, no network) the newest kernel already in the cache is used instead.
# If /lib/modules/KVER and /boot/vmlinuz-KVER exist on this machine (an installed kernel),
# `/` is printed as the directory and nothing is downloaded.
#
# Exit status: 0, or 1 with one line on stderr saying why (no package, no apt lists, ...).
# Several callers at once are fine: the extraction is serialised with flock and renamed into
# place, so a half-extracted tree is never seen.
set -euo pipefail
export LC_ALL=C

die() {
	echo "fetch-kernel: $*" >&2
	exit 1
}

CACHE=${BOOTLINK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bootlink}
KDIR=$CACHE/kernels
KVER=${1:-}

# newest_cached: the newest kernel version already extracted in the cache.
newest_cached() {
	local d
	for d in "$KDIR"/*/root/lib/modules/*; do
		[[ -f $d/modules.dep ]] && basename "$d"
	done 2>/dev/null | sort -V | tail -n 1
}

for t in dpkg-deb depmod; do
	command -v "$t" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
	command -v "$t" >/dev/null 2>&1 || die "$t is not installed (Debian packages dpkg, kmod)"
done

if [[ -z $KVER ]]; then
	# linux-image-amd64 depends on linux-image-<ABI>-amd64: that is the current kernel.
	KVER=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*-amd64\)$/\1/p' | head -n 1 || true)
	if [[ -z $KVER ]]; then
		KVER=$(newest_cached)
		[[ -n $KVER ]] || die "cannot tell which Debian kernel to use: apt-cache knows no linux-image-amd64 (run apt-get update) and the cache $KDIR is empty; or pass a version like 6.1.0-56-amd64"
		echo "fetch-kernel: apt-cache knows no linux-image-amd64; using the cached $KVER" >&2
	fi
fi
[[ $KVER =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "'$KVER' does not look like a kernel version (e.g. 6.1.0-56-amd64)"

# An installed kernel of that version: use it as it is.
if [[ -f /lib/modules/$KVER/modules.dep && -r /boot/vmlinuz-$KVER ]]; then
	printf '%s\n' / "$KVER"
	exit 0
fi

dir=$KDIR/$KVER
root=$dir/root
if [[ -f $root/lib/modules/$KVER/modules.dep && -f $root/boot/vmlinuz-$KVER ]]; then
	printf '%s\n' "$root" "$KVER"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
# Someone else may have finished while we waited for the lock.
if [[ -f $root/lib/modules/$KVER/modules.dep && -f $root/boot/vmlinuz-$KVER ]]; then
	printf '%s\n' "$root" "$KVER"
	exit 0
fi

deb=$(ls "$dir"/linux-image-"$KVER"_*.deb 2>/dev/null | head -n 1 || true)
if [[ -z $deb ]]; then
	echo "fetch-kernel: downloading linux-image-$KVER (about 70 MB) into $dir ..." >&2
	sandbox=()
	# As root, apt drops to the _apt user for downloads, which cannot write into a private
	# cache directory; download as root instead (the package is only extracted, never run).
	((EUID == 0)) && sandbox=(-o APT::Sandbox::User=root)
	if ! out=$(cd "$dir" && timeout 600 apt-get download -q "${sandbox[@]}" "linux-image-$KVER" 2>&1); then
		fallback=$(newest_cached)
		if [[ -n $fallback && -z ${1:-} ]]; then
			echo "fetch-kernel: cannot download linux-image-$KVER ($(tail -n 1 <<<"$out")); using the cached $fallback" >&2
			printf '%s\n' "$KDIR/$fallback/root" "$fallback"
			exit 0
		fi
		die "cannot download linux-image-$KVER: $(grep -E '^(E|W):' <<<"$out" | head -n 1 || tail -n 1 <<<"$out")"
	fi
	deb=$(ls "$dir"/linux-image-"$KVER"_*.deb 2>/dev/null | head -n 1 || true)
	[[ -n $deb ]] || die "apt-get download linux-image-$KVER left no .deb in $dir"
fi

echo "fetch-kernel: extracting $(basename "$deb") ..." >&2
tmp=$(mktemp -d "$dir/.root.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp" || die "dpkg-deb -x $deb failed (a broken download? delete it and retry)"
[[ -f $tmp/boot/vmlinuz-$KVER && -d $tmp/lib/modules/$KVER ]] ||
	die "$deb holds no boot/vmlinuz-$KVER or lib/modules/$KVER"
depmod -b "$tmp" "$KVER" || die "depmod -b $tmp $KVER failed"
rm -rf "$root"
mv "$tmp" "$root"
trap - EXIT
printf '%s\n' "$root" "$KVER"
