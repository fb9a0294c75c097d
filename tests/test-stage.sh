#!/bin/bash
# test-stage — bootlink-stage on real block devices (loop devices, as root).
#
# Three ext4 filesystems on loop devices:
#   A  backed by a file in $T (on the host's disk)  holds the image win10.img
#   B  backed by a file on a tmpfs of its own        a disk apart from A's
#   C  backed by a file in $T, like A                 the same host disk as A
# `disk` must report {loopA} + the host disk for A (a loop device is a disk
# and so is what its backing file lives on), {loopB, virtual:tmpfs} for B,
# the filesystem's type, UUID (as blkid says), mount point and space;
# `check` must refuse A (the image's filesystem) and C (the image's host
# disk, through the backing files) with the reason and accept B; `choose`
# must pick B, then refuse it once it is nearly full. Where the kernel has
# them, btrfs on two loop devices and overlayfs over A and B are resolved
# through mountinfo too. Skips (77) where loop devices or mounts are not
# permitted.
#
# Self-contained rather than built on tests/lib/common.sh: it owns mounts
# and loop devices, which must be released (in order, always) before the
# temporary directory goes.
set -eEuo pipefail
export LC_ALL=C
export PATH=/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$SRCDIR/build}
[[ $BUILD == /* ]] || BUILD=$SRCDIR/$BUILD
STAGE=$BUILD/bootlink-stage
T=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-test-stage.XXXXXX")
T=$(realpath "$T")
MOUNTS=() LOOPS=()

ok() { echo "ok: $*"; }
skip() {
	echo "skip: $*"
	exit 77
}
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
trap 'echo "FAIL: line $LINENO: '\''$BASH_COMMAND'\'' exited with status $?" >&2' ERR

# Unmount what we mounted (newest first), detach our loop devices, then
# remove $T unless something is still mounted below it.
cleanup() {
	local rc=$? i
	trap - ERR
	set +e
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		timeout 30 umount "${MOUNTS[i]}" 2>/dev/null || timeout 30 umount -l "${MOUNTS[i]}"
	done
	for i in "${LOOPS[@]}"; do
		timeout 30 losetup -d "$i"
	done
	if grep -qF " $T/" /proc/self/mountinfo; then
		echo "warning: something is still mounted under $T; not removing it" >&2
	elif [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# mount_it ARGS... DIR: mount and remember DIR for cleanup.
mount_it() {
	local dir=${*: -1}
	mkdir -p "$dir"
	timeout 60 mount "$@"
	MOUNTS+=("$dir")
}

# attach VAR FILE SIZE: a sparse file attached to a free loop device, whose
# name goes into VAR (not printed: a $(...) subshell would lose LOOPS).
# Skips the test if loop devices cannot be attached here.
attach() {
	local dev
	timeout 30 truncate -s "$3" "$2"
	dev=$(timeout 30 losetup -f --show "$2" 2>"$T/losetup.err") ||
		skip "cannot attach a loop device here: $(tr '\n' ' ' <"$T/losetup.err")"
	LOOPS+=("$dev")
	printf -v "$1" %s "$dev"
}

# stage ARGS...: run bootlink-stage under timeout.
stage() { timeout 60 "$STAGE" "$@"; }

# field PATH KEY: one member of `disk --json PATH` (lists sorted, joined with '+').
field() {
	stage disk --json "$1" | timeout 30 python3 -c '
import json, sys
p = json.load(sys.stdin)["paths"][0]
v = p.get(sys.argv[1], "")
print("+".join(sorted(v)) if isinstance(v, list) else v)' "$2"
}

# set_of NAME...: the names sorted and joined with '+', as field prints them.
set_of() { printf '%s\n' "$@" | sort -u | paste -sd+; }

# expect_field PATH KEY WANT
expect_field() {
	local got
	got=$(field "$1" "$2")
	[[ $got == "$3" ]] || fail "disk $1: $2 is '$got', expected '$3'"
}

((EUID == 0)) || skip "needs root: it attaches loop devices and mounts filesystems"
for c in losetup mkfs.ext4 mount umount fallocate truncate blkid python3 stat; do
	command -v "$c" >/dev/null || skip "$c is not installed"
done
[[ -x $STAGE ]] || skip "$STAGE is not built (make build/bootlink-stage)"

# ---- set up ----
mkdir -p "$T/tmpfs"
timeout 30 mount -t tmpfs -o size=256M tmpfs "$T/tmpfs" 2>"$T/mount.err" ||
	skip "mounting is not permitted here: $(tr '\n' ' ' <"$T/mount.err")"
MOUNTS+=("$T/tmpfs")
attach LA "$T/a.raw" 64M
attach LB "$T/tmpfs/b.raw" 64M
attach LC "$T/c.raw" 64M
for d in "$LA" "$LB" "$LC"; do
	timeout 120 mkfs.ext4 -q -F "$d"
done
mount_it "$LA" "$T/a"
mount_it "$LB" "$T/b"
mount_it "$LC" "$T/c"
mkdir -p "$T/a/images" "$T/a/overlays" "$T/b/overlays" "$T/c/overlays"
IMG=$T/a/images/win10.img
timeout 30 truncate -s 16M "$IMG"
A=${LA#/dev/} B=${LB#/dev/} C=${LC#/dev/}
HOST=$(field "$T" disks)   # the disk(s) $T lives on: where a.raw and c.raw are
TMPFS_DISK=virtual:$(stat -c '%Hd:%Ld' "$T/tmpfs")
echo "loop devices: A=$A B=$B C=$C; \$T is on $HOST; the tmpfs is $TMPFS_DISK"

# ---- disk ----
IFS=+ read -ra host <<<"$HOST"
expect_field "$IMG" disks "$(set_of "$A" "${host[@]}")"
expect_field "$T/a/overlays" disks "$(set_of "$A" "${host[@]}")"
expect_field "$T/b/overlays" disks "$(set_of "$B" "$TMPFS_DISK")"
expect_field "$T/c/overlays" disks "$(set_of "$C" "${host[@]}")"
expect_field "$T/tmpfs" virtual True
expect_field "$T/b/overlays" virtual False
for x in a:"$LA" b:"$LB" c:"$LC"; do
	dir=$T/${x%%:*} dev=${x#*:}
	expect_field "$dir/overlays" device "${dev#/dev/}"
	expect_field "$dir/overlays" fstype ext4
	expect_field "$dir/overlays" mountpoint "$dir"
	expect_field "$dir/overlays" uuid "$(timeout 30 blkid -p -s UUID -o value "$dev")"
done
total=$(field "$T/b/overlays" total_bytes) free=$(field "$T/b/overlays" free_bytes)
((total > 40 << 20 && total <= 64 << 20 && free > 0 && free <= total)) ||
	fail "disk $T/b/overlays: free $free of total $total bytes is not plausible for a 64 MiB ext4"
# The loop device node itself stands for its disk set.
expect_field "$LB" disks "$(set_of "$B" "$TMPFS_DISK")"
stage disk "$IMG" "$T/b/overlays" >"$T/disk.txt"
cat "$T/disk.txt"
grep -q "mounted on  $T/a\$" "$T/disk.txt" || fail "disk (text) does not show the mount point $T/a"
ok "disk: loop device + backing disk, fs type, UUID, mount point and space"

# ---- check ----
rc=0
stage check --image "$IMG" --min-free 8M "$T/a/overlays" "$T/b/overlays" "$T/c/overlays" \
	"$T/nonexistent" >"$T/check.out" 2>&1 || rc=$?
cat "$T/check.out"
((rc == 1)) || fail "check exited $rc, expected 1 (directories refused)"
grep -qE "^REFUSED $T/a/overlays: on ([^ ]*\+)?$A(\+[^ ]*)?, the disks? that holds? image win10 \($IMG\); use another disk or --force\$" "$T/check.out" ||
	fail "check does not refuse $T/a/overlays (the image's filesystem) with the reason"
grep -qE "^REFUSED $T/c/overlays: on ${HOST//+/\\+}, the disks? that holds? image win10 \($IMG\); use another disk or --force\$" "$T/check.out" ||
	fail "check does not refuse $T/c/overlays (a loop device on the image's host disk)"
grep -q "^OK      $T/b/overlays: on " "$T/check.out" || fail "check does not accept $T/b/overlays"
grep -q "^REFUSED $T/nonexistent: does not exist" "$T/check.out" || fail "check does not refuse a missing directory"
stage check --image "$IMG" --min-free 8M "$T/b/overlays" >/dev/null || fail "check of $T/b/overlays alone exited non-zero"
stage check --image "$IMG" --min-free 8M --force "$T/a/overlays" >"$T/force.out" || fail "check --force refused $T/a/overlays"
grep -q "allowed by --force" "$T/force.out" || fail "check --force does not say the directory shares the image's disk"
ok "check: refuses the image's filesystem and its host disk with the reason, accepts the other disk"

# ---- choose ----
got=$(stage choose --image "$IMG" --min-free 8M "$T/a/overlays" "$T/c/overlays" "$T/b/overlays")
[[ $got == "$T/b/overlays" ]] || fail "choose picked '$got', expected $T/b/overlays"
rc=0
stage choose --image "$IMG" --min-free 8M "$T/a/overlays" "$T/c/overlays" >"$T/choose.out" 2>&1 || rc=$?
((rc == 1)) || fail "choose among image-disk directories only exited $rc, expected 1"
grep -q "no overlay directory can take a new overlay" "$T/choose.out" || fail "choose does not say why it failed"
grep -q "$T/c/overlays: on .*use another disk or --force" "$T/choose.out" || fail "choose does not give each reason"
got=$(stage choose --image "$IMG" --min-free 8M --force "$T/a/overlays" "$T/b/overlays")
[[ $got == "$T/b/overlays" ]] || fail "choose --force picked '$got'; a disk apart must still come first"
ok "choose: picks the disk apart from the image, explains when there is none"

# ---- free-space floor ----
free=$(field "$T/b/overlays" free_bytes)
timeout 60 fallocate -l $((free - (4 << 20))) "$T/b/overlays/fill"
rc=0
stage choose --image "$IMG" --min-free 8M "$T/a/overlays" "$T/b/overlays" >"$T/full.out" 2>&1 || rc=$?
cat "$T/full.out"
((rc == 1)) || fail "choose exited $rc with $T/b nearly full, expected 1"
grep -q "$T/b/overlays: only .* free of .*, below the floor of 8.0 MiB" "$T/full.out" ||
	fail "choose does not refuse the nearly full filesystem for space"
rc=0
stage check --image "$IMG" --min-free 50% "$T/c/overlays" --force >/dev/null || rc=$?
((rc == 0)) || fail "check --min-free 50% refused the empty filesystem C"
ok "choose: refuses a filesystem below the free-space floor"

# ---- read-only ----
timeout 30 mount -o remount,ro "$T/c"
rc=0
stage check --image "$IMG" --min-free 8M "$T/c/overlays" >"$T/ro.out" || rc=$?
((rc == 1)) && grep -q "^REFUSED $T/c/overlays: on a read-only filesystem" "$T/ro.out" ||
	fail "check does not refuse a read-only filesystem: $(cat "$T/ro.out")"
ok "check: refuses a read-only filesystem"

# ---- overlayfs over A (lower) and B (upper) ----
mkdir -p "$T/a/lower" "$T/b/upper" "$T/b/work" "$T/ovl"
if timeout 30 mount -t overlay overlay -o "lowerdir=$T/a/lower,upperdir=$T/b/upper,workdir=$T/b/work" "$T/ovl" 2>/dev/null; then
	MOUNTS+=("$T/ovl")
	expect_field "$T/ovl" disks "$(set_of "$A" "${host[@]}" "$B" "$TMPFS_DISK")"
	expect_field "$T/ovl" fstype overlay
	ok "disk: overlayfs is the union of its layers' disks"
else
	echo "note: overlayfs cannot be mounted here; covered by the unit test"
fi

# ---- btrfs over two loop devices ----
if command -v mkfs.btrfs >/dev/null && grep -qw btrfs /proc/filesystems; then
	attach LD "$T/d.raw" 160M
	attach LE "$T/tmpfs/e.raw" 160M
	timeout 120 mkfs.btrfs -q -f -d raid1 -m raid1 "$LD" "$LE" >/dev/null
	mount_it "$LD" "$T/btr"
	timeout 30 btrfs subvolume create "$T/btr/sub" >/dev/null
	want=$(set_of "${LD#/dev/}" "${LE#/dev/}" "${host[@]}" "$TMPFS_DISK")
	expect_field "$T/btr" disks "$want"
	expect_field "$T/btr/sub" disks "$want"   # a subvolume has a device number of its own
	expect_field "$T/btr" fstype btrfs
	ok "disk: btrfs on two devices (and a subvolume) resolves to both"
else
	echo "note: no mkfs.btrfs (btrfs-progs) or no btrfs in this kernel; btrfs covered by the unit test"
fi

echo "all stage checks passed"
