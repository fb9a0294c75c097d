#!/bin/bash
# test-deb — the debian/ directory builds a .deb that lays out the appliance.
#
# A copy of the source tree (no build output) is built with
# `dpkg-buildpackage -us -uc -b` (parallel=2, nocheck, noddebs), which takes
# about a minute on an idle machine. The .deb is unpacked into an empty
# directory (dpkg-deb -x, no maintainer scripts run) and checked: the
# programs in /usr/sbin, bootlinkd.service, the compressed manual pages,
# /etc/bootlink/daemon/user = bootlink, /var/lib/bootlink; its control
# data: conffiles list /etc/bootlink/*, the postinst creates the bootlink
# system user and enables the unit (debhelper's snippet), Depends has the
# shared libraries. Skips when dpkg-dev or debhelper is not installed.
. "$(dirname "$0")/lib/common.sh"
need dpkg-buildpackage dpkg-deb dh tar
dpkg-checkbuilddeps "$SRCDIR/debian/control" 2>"$T/deps" ||
	skip "build dependencies missing: $(cat "$T/deps")"

S=$T/src/bootlink-0.1.0
mkdir -p "$S"
tar -C "$SRCDIR" --exclude=./build --exclude='./build-*' --exclude=./.git --exclude='./debian/bootlink' \
	--exclude='./debian/.debhelper' -cf - . | tar -C "$S" -xf -
t0=${EPOCHREALTIME/./}
(cd "$S" && DEB_BUILD_OPTIONS="parallel=2 nocheck noddebs" timeout 600 dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1 ||
	fail "dpkg-buildpackage failed: $(tail -20 "$T/build.log")"
t1=${EPOCHREALTIME/./}
deb=$(ls "$T"/src/bootlink_*.deb)
ok "dpkg-buildpackage -us -uc -b built ${deb##*/} ($(stat -c %s "$deb") bytes) in $(((t1 - t0) / 1000000)) s"

R=$T/root
mkdir -p "$R"
dpkg-deb -x "$deb" "$R"
for f in usr/sbin/bootlinkd usr/sbin/bootlinkctl usr/sbin/bootlink-stage; do
	[[ -x $R/$f ]] || fail "the package has no $f"
done
for f in lib/systemd/system/bootlinkd.service usr/share/man/man5/bootlink-config.5.gz \
	usr/share/man/man8/bootlinkd.8.gz usr/share/man/man8/bootlinkctl.8.gz etc/bootlink/README \
	usr/share/doc/bootlink/copyright; do
	[[ -f $R/$f ]] || fail "the package has no $f"
done
[[ -d $R/var/lib/bootlink && $(<"$R/etc/bootlink/daemon/user") == bootlink ]] || fail "var/lib/bootlink or daemon/user"
"$R/usr/sbin/bootlinkd" --version | grep -q "bootlinkd 0.1.0" || fail "the packaged bootlinkd does not run"
"$R/usr/sbin/bootlinkctl" --help >/dev/null || fail "the packaged bootlinkctl does not run"
ok "unpacked into an empty tree: $(cd "$R" && find . -type f | wc -l) files; programs run"

dpkg-deb -e "$deb" "$T/ctrl"
grep -qx /etc/bootlink/daemon/user "$T/ctrl/conffiles" && grep -qx /etc/bootlink/README "$T/ctrl/conffiles" ||
	fail "conffiles: $(cat "$T/ctrl/conffiles")"
grep -q "adduser --system --group" "$T/ctrl/postinst" || fail "postinst does not create the bootlink user"
grep -q "deb-systemd-helper" "$T/ctrl/postinst" || fail "postinst does not enable the unit (no dh_installsystemd snippet)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in liburing libsqlite3 libblkid libnettle adduser; do
	grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
ok "control: conffiles $(tr '\n' ' ' <"$T/ctrl/conffiles"); postinst adds the user and enables bootlinkd.service; Depends: $depends"
