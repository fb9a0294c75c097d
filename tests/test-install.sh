#!/bin/bash
# test-install — `make install DESTDIR=... PREFIX=/usr` lays out the appliance.
#
# Programs in /usr/sbin (bootlink-attach too when it is built), the manual
# pages (bootlink-config.5 generated from the config schema: every key of
# common/conf.c has its entry with default and range), /etc/bootlink with
# daemon/user = bootlink and a README of every key, /var/lib/bootlink, every
# unit of dist/systemd/ in /lib/systemd/system. Each page renders with
# `man -l` and passes `mandoc -Tlint -Wwarning` and `groff -ww` without a
# warning; bootlinkctl.8 names every command `bootlinkctl --help` lists;
# `systemd-analyze verify` accepts the units (ExecStart pointed into
# DESTDIR) and `systemd-analyze security` rates bootlinkd.service.
. "$(dirname "$0")/lib/common.sh"
need make install man groff
need_bootlink
[[ -x $BUILD/bootlink-confdoc ]] || skip "$BUILD/bootlink-confdoc is not built (run make)"

D=$T/dest
timeout 300 make -s -C "$SRCDIR" install O="$BUILD" SANITIZE="${SANITIZE:-0}" DESTDIR="$D" PREFIX=/usr >"$T/make.log" 2>&1 ||
	fail "make install failed: $(tail -5 "$T/make.log")"
for f in usr/sbin/bootlinkd usr/sbin/bootlinkctl usr/sbin/bootlink-stage; do
	[[ -x $D/$f ]] || fail "missing $f"
done
if [[ -x $BUILD/bootlink-attach ]]; then [[ -x $D/usr/sbin/bootlink-attach ]] || fail "bootlink-attach built but not installed"; fi
[[ $(<"$D/etc/bootlink/daemon/user") == bootlink ]] || fail "etc/bootlink/daemon/user"
[[ -d $D/var/lib/bootlink/overlays && -d $D/var/lib/bootlink/versions ]] || fail "var/lib/bootlink"
for u in "$SRCDIR"/dist/systemd/*.service; do
	[[ -f $D/lib/systemd/system/${u##*/} ]] || fail "unit ${u##*/} not installed"
done
pages=(man5/bootlink-config.5 man8/bootlinkd.8 man8/bootlinkctl.8 man8/bootlink-stage.8 man8/bootlink-attach.8)
for p in "${pages[@]}"; do [[ -f $D/usr/share/man/$p ]] || fail "missing page $p"; done
ok "layout: $(cd "$D" && find . -type f | sort | tr '\n' ' ')"

# ---- the pages render cleanly
for p in "${pages[@]}"; do
	f=$D/usr/share/man/$p
	out=$(MANWIDTH=80 timeout 20 man -l "$f" 2>&1 >/dev/null) || fail "man -l $p failed: $out"
	[[ -z $out ]] || fail "man -l $p warns: $out"
	out=$(timeout 20 groff -man -ww -z "$f" 2>&1) || true
	[[ -z $out ]] || fail "groff -ww $p: $out"
	if command -v mandoc >/dev/null; then
		timeout 20 mandoc -Tlint -Wwarning "$f" || fail "mandoc -Tlint $p"
	fi
done
ok "${#pages[@]} pages render with man -l, no groff -ww$(command -v mandoc >/dev/null && echo ' or mandoc -Tlint') warnings"

# ---- bootlink-config.5 has every key; bootlinkctl.8 every command
text=$(MANWIDTH=200 man -l "$D/usr/share/man/man5/bootlink-config.5" 2>/dev/null)
nkeys=0
for k in $(grep -oE '\.name = "[a-z0-9_/]+"' "$SRCDIR/common/conf.c" | cut -d'"' -f2); do
	grep -qE "^ +$k\$" <<<"$text" || fail "bootlink-config(5) has no entry for $k"
	nkeys=$((nkeys + 1))
done
grep -q "Default: 0.0.0.0:10809" <<<"$text" && grep -q "Changes live" <<<"$text" || fail "no defaults / live marks"
ctext=$(MANWIDTH=200 man -l "$D/usr/share/man/man8/bootlinkctl.8" 2>/dev/null)
ncmds=0
while read -r cmd; do
	grep -qF "$cmd" <<<"$ctext" || fail "bootlinkctl(8) does not describe '$cmd'"
	ncmds=$((ncmds + 1))
done < <("$BUILD/bootlinkctl" --help | sed -n 's/^  \([a-z]\+\( [a-z]\+\)\?\)\( .*\)\?$/\1/p' | grep -v '^-')
((ncmds > 15)) || fail "found only $ncmds commands in bootlinkctl --help"
ok "bootlink-config(5) describes all $nkeys keys with default, range, live or not; bootlinkctl(8) all $ncmds commands"

# ---- systemd
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$T/units"
	for u in "$D"/lib/systemd/system/*.service; do
		# our programs from DESTDIR; others (dnsmasq) from the host
		sed -E "s#^(Exec[A-Za-z]*=[-@+!]*)/usr/sbin/(bootlink[a-z-]*)#\1$D/usr/sbin/\2#" "$u" >"$T/units/${u##*/}"
	done
	timeout 60 systemd-analyze verify --man=no "$T"/units/*.service >"$T/verify.log" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$T/verify.log")"
	[[ ! -s $T/verify.log ]] || fail "systemd-analyze verify warns: $(cat "$T/verify.log")"
	score=$(timeout 60 systemd-analyze security --offline=yes "$T/units/bootlinkd.service" 2>/dev/null | sed -n 's/.*Overall exposure level for bootlinkd.service: //p')
	ok "systemd-analyze verify: $(ls "$T/units" | tr '\n' ' ')ok; bootlinkd.service exposure: ${score:-?}"
else
	ok "systemd-analyze not installed: units not verified"
fi
