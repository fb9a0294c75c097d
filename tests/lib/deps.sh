#!/bin/bash
# deps.sh — make sure the Debian packages bootlink builds and tests with are installed.
#
# Called by `make deps` (and so by `make check`, `make bench`, `make demo`).
# A machine that has everything: one dpkg-query call, nothing else, silent.
# Something missing and we are root on Debian: `apt-get update` once, then
# `apt-get install -y --no-install-recommends` the missing packages only.
# Something missing and we are not root: print what is missing, exit 1.
#
# To add a dependency, add it to PACKAGES below (and to the README's table
# if it is more than a test peer).
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config clang
	liburing-dev libsqlite3-dev sqlite3 libblkid-dev
	libnl-3-dev libnl-genl-3-dev nettle-dev
	# <linux/nbd-netlink.h> for bootlink-attach (build-essential brings it; named for clarity)
	linux-libc-dev
	# the boot-storm replayer (bench/storm.c) links libnbd
	libnbd-dev
	# NBD tools and the test/benchmark peers
	nbd-client nbd-server nbdkit libnbd-bin python3-libnbd
	fio qemu-utils libiscsi-bin iperf3 valgrind python3
	# qemu-img's iscsi:// driver (test-iscsi-basic)
	qemu-block-extra
	# the iSCSI benchmark peer (bench/iscsi.sh): tgtd
	tgt
	# the end-to-end boot test and make demo: a qemu client whose initramfs
	# (busybox + nbd-client + nbd.ko from a downloaded Debian kernel) boots from bootlinkd
	qemu-system-x86 busybox-static cpio kmod e2fsprogs
	# test-e2e-attach: a partitioned test disk
	fdisk
	# PXE (bootlinkctl pxe-config, test-e2e-pxe): dnsmasq for DHCP/proxyDHCP and TFTP, the iPXE
	# binaries it serves (/usr/lib/ipxe), ip for the test's namespaces, curl as TFTP client,
	# OVMF for a UEFI PC whose PXE client is not iPXE
	dnsmasq-base ipxe iproute2 curl ovmf
	# the iPXE sanboot end-to-end test: iPXE from qemu's NIC ROM boots a disk built by
	# tests/lib/bootdisk.sh (sfdisk, mkfs.fat, syslinux + its mbr.bin, mtools)
	ipxe-qemu syslinux syslinux-common mtools dosfstools
)

# ops: the Prometheus parser checks /metrics (test-metrics); the .deb build
# (test-deb) and manual page lint (test-install)
PACKAGES+=(python3-prometheus-client dpkg-dev debhelper mandoc)

# NBD over TLS (daemon/tls.c): GnuTLS to build with; certtool and psktool
# make the test's certificates and keys (test-nbd-tls)
PACKAGES+=(libgnutls28-dev gnutls-bin)

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system (no dpkg-query); make sure the equivalents of these are installed:" >&2
	echo "  ${PACKAGES[*]}" >&2
	exit 0
fi

# One query for all packages. Packages dpkg has never heard of are not
# printed (dpkg-query complains on stderr and exits 1): treat as missing.
declare -A installed=()
while read -r pkg status; do
	[[ $status == ii ]] && installed[${pkg%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for p in "${PACKAGES[@]}"; do
	[[ -n ${installed[$p]:-} ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
	echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
	echo "deps.sh: install them as root:  apt-get install --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
