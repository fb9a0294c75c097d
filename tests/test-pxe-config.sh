#!/bin/bash
# test-pxe-config — `bootlinkctl pxe-config` without root or qemu: the configuration for the
# loopback interface (proxy and full DHCP, --server, --json, stdout and --out), accepted by
# `dnsmasq --test`; every validation error with its exit status and message, and nothing
# written on an error. The real boot through dnsmasq is test-e2e-pxe.
. "$(dirname "$0")/lib/common.sh"
need_bootlink
need ip

make_conf listen/http=0.0.0.0:8080
# A TFTP root of our own, so the test does not depend on the ipxe package.
mkdir -p "$T/tftp" "$T/empty"
echo bios >"$T/tftp/undionly.kpxe"
echo efi >"$T/tftp/ipxe.efi"
echo snp >"$T/tftp/snponly.efi"
px() { ctl pxe-config --tftp-root "$T/tftp" "$@"; }
URL=http://127.0.0.1:8080/boot.ipxe

# lines FILE LINE...: every LINE is a whole line of FILE.
lines() {
	local f=$1 l
	shift
	for l; do grep -qxF -- "$l" "$f" || fail "$f: no line '$l'; it holds:$(printf '\n%s' "$(cat "$f")")"; done
}
# dnsmasq_ok FILE: dnsmasq's own syntax check accepts FILE (when dnsmasq is installed).
dnsmasq_ok() {
	command -v dnsmasq >/dev/null || return 0
	dnsmasq --test --conf-file="$1" 2>&1 | grep -q 'syntax check OK' || fail "dnsmasq --test refuses $1"
}

px --interface lo --proxy --out "$T/proxy.conf" >"$T/said"
grep -q "^wrote $T/proxy.conf: proxyDHCP on lo (127.0.0.1/8), TFTP $T/tftp (undionly.kpxe, ipxe.efi), iPXE then fetches $URL" "$T/said" ||
	fail "unexpected summary: $(cat "$T/said")"
lines "$T/proxy.conf" interface=lo bind-interfaces port=0 dhcp-range=127.0.0.0,proxy,255.0.0.0 enable-tftp \
	"tftp-root=$T/tftp" dhcp-userclass=set:ipxe,iPXE dhcp-match=set:ipxe,175 \
	'pxe-service=tag:!ipxe,x86PC,"bootlink (BIOS)",undionly.kpxe' \
	'pxe-service=tag:!ipxe,BC_EFI,"bootlink (UEFI)",ipxe.efi' \
	"pxe-service=tag:ipxe,x86-64_EFI,\"bootlink (iPXE)\",$URL" \
	enable-ra dhcp-range=::,constructor:lo,ra-only ra-param=lo,0,0
head -n 2 "$T/proxy.conf" | grep -q "bootlinkctl pxe-config --tftp-root $T/tftp --interface lo --proxy --out $T/proxy.conf" ||
	fail "the header does not name the command line"
dnsmasq_ok "$T/proxy.conf"
ok "proxy on lo: proxyDHCP for 127.0.0.0/8, a PXE menu entry per architecture, iPXE sent to $URL"

px --interface lo >"$T/full.conf"
lines "$T/full.conf" dhcp-range=127.128.0.0,127.255.255.254,255.0.0.0,12h "dhcp-leasefile=$T/conf/db/dnsmasq.leases" \
	dhcp-authoritative no-ping dhcp-option=option:router dhcp-option=option:dns-server \
	"dhcp-boot=tag:ipxe,$URL" 'dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi' 'dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe' \
	dhcp-match=set:efi64,option:client-arch,7 dhcp-match=set:efi64,option:client-arch,9
dnsmasq_ok "$T/full.conf"
px --interface lo --range 127.0.0.10,127.0.0.20 --server 127.0.0.2 --efi snponly.efi --out - >"$T/full2.conf"
lines "$T/full2.conf" dhcp-range=127.0.0.10,127.0.0.20,255.0.0.0,12h \
	"dhcp-boot=tag:ipxe,http://127.0.0.2:8080/boot.ipxe" 'dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi'
ok "full DHCP on lo: default range (upper half), --range, --server in the URL, --efi snponly.efi, leases beside the database"

px --interface lo --tftp-only --out "$T/tftp.conf" >"$T/said"
grep -qF "the site's DHCP server must send: next-server (option 66) 127.0.0.1; filename (option 67) undionly.kpxe for BIOS (option 93 = 0), ipxe.efi for x86-64 UEFI (93 = 7 or 9), $URL when the user class is \"iPXE\"" "$T/said" ||
	fail "--tftp-only: the summary does not list the site's DHCP options: $(cat "$T/said")"
lines "$T/tftp.conf" interface=lo bind-interfaces port=0 enable-tftp "tftp-root=$T/tftp" \
	"#   option 66 / next-server (siaddr)         127.0.0.1" "#   option 67 when the user class is \"iPXE\"  $URL"
! grep -q -E '^(dhcp-|pxe-service|enable-ra|log-dhcp)' "$T/tftp.conf" || fail "--tftp-only: DHCP lines in $T/tftp.conf"
dnsmasq_ok "$T/tftp.conf"
ok "--tftp-only: TFTP alone, and the options 66/67 the site's DHCP server must send, in the file and the summary"

px --interface lo --proxy --json >"$T/json"
python3 - "$T/json" "$URL" <<'PY' || fail "pxe-config --json: unexpected document: $(cat "$T/json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mode"] == "proxy" and d["interface"] == "lo" and d["address"] == "127.0.0.1", d
assert d["prefix"] == 8 and d["server"] == "127.0.0.1" and d["boot_url"] == sys.argv[2], d
assert d["bios_file"] == "undionly.kpxe" and d["efi_file"] == "ipxe.efi", d
assert "dhcp-range=127.0.0.0,proxy,255.0.0.0\n" in d["config"], d
PY
ok "--json: mode, addresses, URL, files and the configuration text"

# refused RC MESSAGE ARGS...: pxe-config ARGS exits RC, says MESSAGE on stderr, writes nothing.
refused() {
	local rc=$1 msg=$2 got=0
	shift 2
	rm -f "$T/x.conf"
	"$BUILD/bootlinkctl" -c "$T/conf" pxe-config "$@" --out "$T/x.conf" >/dev/null 2>"$T/err" || got=$?
	[[ $got == "$rc" ]] || fail "pxe-config $*: exit $got, expected $rc ($(head -n 1 "$T/err"))"
	grep -qF -- "$msg" "$T/err" || fail "pxe-config $*: said '$(head -n 1 "$T/err")', expected '$msg'"
	[[ ! -e $T/x.conf ]] || fail "pxe-config $*: wrote $T/x.conf although it failed"
}
TR=(--tftp-root "$T/tftp")
refused 2 "missing --interface IF" "${TR[@]}"
refused 2 "--range is for full DHCP; with --proxy" "${TR[@]}" --interface lo --proxy --range 127.0.0.10,127.0.0.20
refused 2 "--range is for full DHCP; with --tftp-only" "${TR[@]}" --interface lo --tftp-only --range 127.0.0.10,127.0.0.20
refused 2 "--proxy and --tftp-only exclude each other" "${TR[@]}" --interface lo --tftp-only --proxy
refused 2 "unknown option '--bogus'" "${TR[@]}" --interface lo --bogus
refused 1 "there is no network interface 'nope0' here" "${TR[@]}" --interface nope0
refused 1 "'a,b' is not a network interface name" "${TR[@]}" --interface a,b
refused 1 "both ends must be host addresses of lo's subnet 127.0.0.0/8" "${TR[@]}" --interface lo --range 10.0.0.1,10.0.0.9
refused 1 "both ends must be host addresses" "${TR[@]}" --interface lo --range 127.0.0.0,127.0.0.9
refused 1 "the DHCP range 127.0.0.1-127.0.0.9 holds 127.0.0.1, an address of the appliance" "${TR[@]}" --interface lo --range 127.0.0.1,127.0.0.9
refused 1 "holds 127.0.0.5, an address of the appliance" "${TR[@]}" --interface lo --range 127.0.0.2,127.0.0.9 --server 127.0.0.5
refused 1 "START is after END" "${TR[@]}" --interface lo --range 127.0.0.9,127.0.0.2
refused 1 "expected START,END" "${TR[@]}" --interface lo --range 127.0.0.9
refused 1 "--server 'fe80::1' is not an IPv4 address" "${TR[@]}" --interface lo --server fe80::1
refused 1 "$T/empty/undionly.kpxe is missing or unreadable" --tftp-root "$T/empty" --interface lo
refused 1 "TFTP root $T/none: No such file or directory" --tftp-root "$T/none" --interface lo
refused 1 "--efi '../ipxe.efi': expected a file name" "${TR[@]}" --interface lo --efi ../ipxe.efi
refused 1 "$T/tftp/ipxe64.efi is missing or unreadable" "${TR[@]}" --interface lo --efi ipxe64.efi
chmod o-r "$T/tftp/snponly.efi"
refused 1 "$T/tftp/snponly.efi is not readable by others: dnsmasq serves TFTP as its own user" "${TR[@]}" --interface lo --efi snponly.efi
chmod o+r "$T/tftp/snponly.efi"
conf_set listen/http 127.0.0.1:80
refused 1 "listen/http is 127.0.0.1:80: a loopback address PCs cannot reach" "${TR[@]}" --interface lo
conf_set listen/http off
refused 1 "listen/http is off, so bootlinkd hands iPXE no scripts" "${TR[@]}" --interface lo
conf_set listen/http 10.1.2.3:8080
refused 1 "--server 127.0.0.2, but bootlinkd listens on 10.1.2.3:8080 only" "${TR[@]}" --interface lo --server 127.0.0.2
conf_set listen/http 0.0.0.0:0
refused 1 "listen/http '0.0.0.0:0' has port 0 (any free port) and bootlinkd is not running" "${TR[@]}" --interface lo
conf_set listen/http 0.0.0.0:8080
ok "refused with a clear line and nothing written: missing/unknown/bad interface, ranges, --server, TFTP root, --efi, listen/http"

got=0
px --interface lo --out "$T/no/such/dir.conf" >/dev/null 2>"$T/err" || got=$?
((got == 1)) && grep -q "cannot write $T/no/such/dir.conf: No such file or directory" "$T/err" ||
	fail "an unwritable --out: exit $got, said '$(cat "$T/err")'"
got=0
"$BUILD/bootlinkctl" -c "$T/nothere" pxe-config --interface lo >/dev/null 2>"$T/err" || got=$?
((got == 1)) && grep -q "create it, or name the config tree with" "$T/err" ||
	fail "a missing config tree: exit $got, said '$(cat "$T/err")'"
# An interface that is up without an IPv4 address, if this machine has one.
for dev in /sys/class/net/*; do
	dev=${dev##*/}
	[[ $dev == lo || -n $(ip -4 -o addr show dev "$dev" 2>/dev/null) ]] && continue
	refused 1 "interface $dev has no IPv4 address" "${TR[@]}" --interface "$dev"
	ok "an interface without IPv4 ($dev) is refused"
	break
done
ok "unwritable --out and a missing config tree are refused"
