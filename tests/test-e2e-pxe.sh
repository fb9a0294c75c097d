#!/bin/bash
# test-e2e-pxe — PXE on a private LAN: dnsmasq with the configuration `bootlinkctl pxe-config`
# writes, bootlinkd, and qemu clients whose NIC ROM (iPXE) boots through them.
#
# Two network namespaces the test creates: "A" (the appliance: bridge br0 192.168.77.1/24 with
# tap devices for the qemu clients) and "R" (the site's router, 192.168.77.254, on a veth into
# br0; it also holds pc0, a second veth into br0 for a busybox DHCP client). bootlinkd runs in A
# bound to 192.168.77.1 (its HTTP endpoint on a port the kernel picks in proxy mode, 8080 in full
# mode). Three modes, each with the config generated for it and checked with `dnsmasq --test`:
#
#   proxy  R runs a plain DHCP server (addresses, IPv6 RA); A runs our proxyDHCP + TFTP
#   full   A's dnsmasq alone: addresses (--range), boot file, TFTP, IPv6 RA (br0 gets a ULA)
#   tftp   R's DHCP server is set up with the options 66/67 `pxe-config --tftp-only` lists; A
#          serves TFTP only (checked with udhcpc and curl, no guest)
#
# In each mode three PCs boot at once. A linked MAC (its sanboot script is fetched: the iPXE
# echo line on its console, bootlinkd's log line naming it; its sanboot then connects, and the
# runtime tree counts the boot) and an unknown MAC (the "not linked" screen with its MAC arrives
# on the serial console) boot from the e1000's ROM, which is iPXE already: the loop-breaker sends
# it straight to http://192.168.77.1:PORT/boot.ipxe, which must appear on the console, and no
# file may go to them by TFTP. The third, another linked MAC, takes the firmware's path (qemu
# has no PXE firmware that is not iPXE for BIOS):
#   proxy  UEFI: OVMF's own PXE (EDK2) gets ipxe.efi from the proxyDHCP menu and runs it
#   full   BIOS: ipxe.lkrn, told on its command line to do what PXE firmware does, runs
#          undionly.kpxe from our TFTP
# and in both the iPXE so started must be sent to the URL (not given its binary again) and get
# its script. Also: TFTP serves undionly.kpxe and ipxe.efi byte for byte (curl, from R), and in
# full mode busybox udhcpc, announcing itself as a BIOS PXE client, an x86-64 UEFI one and iPXE,
# gets boot file undionly.kpxe, ipxe.efi and the boot URL.
#
# Needs root (namespaces, tap devices); skips with the reason when they cannot be created. A boot
# takes 10-35 s under TCG (more on a busy machine); each is given 120 s, the UEFI one
# and the undionly one (up to three DHCP attempts) 180 s.
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
need_bootlink
need ip dnsmasq curl busybox
((EUID == 0)) || skip "needs root to create network namespaces and tap devices"
qemu_usable || skip "$QEMU_WHY"
TFTP_ROOT=/usr/lib/ipxe
[[ -r $TFTP_ROOT/undionly.kpxe && -r $TFTP_ROOT/ipxe.efi && -r $TFTP_ROOT/ipxe.lkrn ]] ||
	skip "$TFTP_ROOT has no undionly.kpxe/ipxe.efi/ipxe.lkrn (Debian package ipxe; tests/lib/deps.sh installs it)"

NSA=blpxe-$$-a NSR=blpxe-$$-r
NSS=()
# On exit: every process in our namespaces (bootlinkd, dnsmasq, qemu: all started by this test),
# then the namespaces, then common.sh's cleanup.
_pxe_cleanup() {
	local rc=$? ns p pids=()
	trap - ERR
	set +e
	for ns in "${NSS[@]}"; do mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null); done
	if ((${#pids[@]})); then
		kill -TERM "${pids[@]}" 2>/dev/null
		wait_for 10 _all_gone "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null
	fi
	for ns in "${NSS[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	(exit "$rc")
	_cleanup
}
trap _pxe_cleanup EXIT

# Namespaces left by a run that was killed with SIGKILL (its PID is gone): their processes, then
# the namespaces themselves.
for ns in $(ip netns list 2>/dev/null | grep -o '^blpxe-[0-9]*-[ar]' || true); do
	pid=${ns#blpxe-}
	pid=${pid%-*}
	proc_alive "$pid" && continue
	for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
done

# The LAN. A failure to create a namespace or tap device is a skip, with the error.
try() {
	local out
	out=$("$@" 2>&1) || skip "cannot set up the test LAN: '$*' failed: ${out:-no message}"
}
try ip netns add "$NSA"
NSS+=("$NSA")
try ip netns add "$NSR"
NSS+=("$NSR")
try ip -n "$NSA" tuntap add dev tap0 mode tap
try ip -n "$NSA" tuntap add dev tap1 mode tap
try ip -n "$NSA" tuntap add dev tap2 mode tap
try ip -n "$NSA" link add br0 type bridge forward_delay 0
try ip -n "$NSA" link add veth-a type veth peer name veth-r netns "$NSR"
try ip -n "$NSA" link add veth-p type veth peer name pc0 netns "$NSR"
for l in tap0 tap1 tap2 veth-a veth-p; do ip -n "$NSA" link set "$l" master br0; done
ip -n "$NSA" addr add 192.168.77.1/24 dev br0
ip -n "$NSR" addr add 192.168.77.254/24 dev veth-r
ip -n "$NSR" addr add fd77::fe/64 dev veth-r nodad
for l in lo br0 tap0 tap1 tap2 veth-a veth-p; do ip -n "$NSA" link set "$l" up; done
for l in lo veth-r pc0; do ip -n "$NSR" link set "$l" up; done
ok "LAN: namespaces $NSA (br0 192.168.77.1/24, tap0-2) and $NSR (router .254, pc0)"

# qemu runs inside A: a wrapper that execs into it keeps qemu's PID.
printf '#!/bin/sh\nexec ip netns exec %s qemu-system-x86_64 "$@"\n' "$NSA" >"$T/qemu-ns"
chmod +x "$T/qemu-ns"
# shellcheck disable=SC2034 # read by qemu.sh
QEMU=$T/qemu-ns

L=52:54:00:77:00:01  # linked
L2=52:54:00:77:00:02 # linked, boots through a firmware binary (ipxe.efi, undionly.kpxe)
U=52:54:00:77:00:09  # unknown
mkimage "$T/img" 1M
ctl image add demo "$T/img" >/dev/null
ctl client add "$L" --image demo --name PC001 >/dev/null
ctl client add "$L2" --image demo --name PC002 >/dev/null

# in_a CMD...: run CMD in the appliance's namespace.
in_a() { ip netns exec "$NSA" "$@"; }
# pxe_config ARGS...: bootlinkctl pxe-config in A (it looks at A's interfaces).
pxe_config() { in_a "$BUILD/bootlinkctl" -c "$T/conf" pxe-config "$@"; }

# dnsmasq_start NS CONF NAME: the command line of bootlink-dnsmasq.service (plus logging to
# stderr), in namespace NS; waits until its TFTP/DHCP is up.
dnsmasq_start() {
	local ns=$1 conf=$2 name=$3
	spawn ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file="$conf" --log-facility=- \
		>"$T/dnsmasq-$name.log" 2>&1
	declare -g "PID_$name=$!"
	wait_for 15 grep -q -E 'TFTP root is|DHCP, IP range' "$T/dnsmasq-$name.log" ||
		fail "dnsmasq $name did not start: $(tail -n 5 "$T/dnsmasq-$name.log")"
}
# dnsmasq_stop NAME
dnsmasq_stop() {
	local v=PID_$1
	kill -TERM "${!v}"
	wait_for 10 _all_gone "${!v}" || fail "dnsmasq $1 did not stop within 10 s of SIGTERM"
	wait "${!v}" 2>/dev/null || true
}

# tftp_serves FILE: a host on the LAN (R) fetches FILE from A's TFTP, byte for byte.
tftp_serves() {
	ip netns exec "$NSR" timeout 30 curl -sf -o "$T/got" "tftp://192.168.77.1/$1" ||
		fail "TFTP: tftp://192.168.77.1/$1 could not be fetched from $NSR"
	cmp -s "$T/got" "$TFTP_ROOT/$1" || fail "TFTP: $1 differs from $TFTP_ROOT/$1"
}

# echos: ICMP echo requests sent from A so far (its namespace's counter; dnsmasq's pings).
echos() {
	ip netns exec "$NSA" awk '/^Icmp:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 }
		else for (i = 1; i <= NF; i++) if (n[i] == "OutEchos") print $i }' /proc/net/snmp
}
# script_fetches MAC: how many sanboot scripts bootlinkd's log says MAC was given
# ("http: boot script for MAC (NAME): sanboot, image demo"; older: "... for MAC: sanboot").
script_fetches() { grep -c -E "http: boot script for $1( \([^)]*\))?: sanboot" "$T/daemon.log" || true; }
# ip_of MAC: the address the DHCP server of this mode ($ALOG: its log) gave MAC last.
ip_of() { grep -o "DHCPACK([a-z0-9-]*) [0-9.]* $1" "$ALOG" | tail -n 1 | awk '{print $2}'; }
# tftp_to IP: the files our dnsmasq ($DLOG: this mode's log) sent IP by TFTP, one a line.
tftp_to() { grep -o "dnsmasq-tftp.*sent [^ ]* to $1\$" "$DLOG" | awk '{print $3}' || true; }

OK_L="bootlink: PC001 \($L\) boots image demo"
OK_L2="bootlink: PC002 \($L2\) boots image demo"
# The screen's last line: the guest is stopped once it is there (so the whole screen is).
OK_U="MAC address: $U"
BAD='No configuration methods succeeded|Could not boot|No bootable device|No more network devices|Connection timed out'

# boot_pair MODE URL: the linked and the unknown client boot at once; check what each shows.
boot_pair() {
	local mode=$1 url=$2 n0 n1 rc log lines ip
	n0=$mode-linked n1=$mode-unknown
	# shellcheck disable=SC2034 # read in the wait_for below
	lines=$(script_fetches "$L")
	qemu_start "$n0" -nographic -boot n -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
		-device "e1000,netdev=n0,mac=$L,bootindex=1"
	qemu_start "$n1" -nographic -boot n -netdev tap,id=n0,ifname=tap1,script=no,downscript=no \
		-device "e1000,netdev=n0,mac=$U,bootindex=1"
	for n in "$n0" "$n1"; do
		log=$(qemu_log "$n")
		rc=0
		if [[ $n == "$n0" ]]; then
			# Kept up after its script's first line: it goes on to sanboot, which is when
			# bootlinkd counts the boot (below).
			QEMU_KEEP=1 qemu_watch "$n" 120 "$OK_L" "$BAD" || rc=$?
		else
			qemu_watch "$n" 120 "$OK_U" "$BAD" || rc=$?
		fi
		if ((rc != 0)); then
			echo "--- console of $n ($log)" >&2
			tail -n 25 "$log" >&2
			echo "--- dnsmasq logs" >&2
			tail -n 30 "$T"/dnsmasq-*.log >&2
			case $rc in
			2) fail "$n: no result on the console within 120 s" ;;
			3) fail "$n: the guest stopped without a result" ;;
			*) fail "$n: $QEMU_MATCH" ;;
			esac
		fi
		grep -a -q -F "$url" "$log" || fail "$n: iPXE did not fetch $url (the loop-breaker's URL)"
		echo "$n: '$QEMU_MATCH' after ${QEMU_SECS}s"
	done
	grep -a -q "This PC (MAC $U) is not linked to an image" "$(qemu_log "$n1")" ||
		fail "$n1: the screen does not say the PC is not linked"
	wait_for 10 eval '(( $(script_fetches "$L") > lines ))' ||
		fail "bootlinkd's log does not show the linked client's script fetch"
	grep "http: boot script for $L" "$T/daemon.log" | tail -n 1
	wait_for 60 eval '(( $(cat "$RUN/clients/$L/boots" 2>/dev/null || echo 0) >= 1 ))' ||
		fail "the runtime tree shows no boot of $L ($RUN/clients/$L/boots): its sanboot did not connect"
	grep "client $L: boot [0-9]*: " "$T/daemon.log" | tail -n 1
	qemu_stop "$n0"
	for m in "$L" "$U"; do
		ip=$(ip_of "$m")
		[[ -n $ip ]] || fail "$ALOG shows no address given to $m"
		[[ -z $(tftp_to "$ip") ]] ||
			fail "TFTP sent $(tftp_to "$ip") to $m ($ip), which runs iPXE already (no loop-breaker)"
	done
}

# second_start NAME ARGS...: the PC with MAC L2 on tap2, booting at the same time as the pair.
second_start() {
	local name=$1
	shift
	qemu_start "$name" -nographic "$@" -netdev tap,id=n0,ifname=tap2,script=no,downscript=no
}
# second_done NAME SECS BAD: wait for its script's first line (OK_L2); the URL on its console.
second_done() {
	local name=$1 secs=$2 bad=$3 rc=0 log
	log=$(qemu_log "$name")
	qemu_watch "$name" "$secs" "$OK_L2" "$bad" || rc=$?
	if ((rc != 0)); then
		tail -n 25 "$log" >&2
		fail "$name: ${QEMU_MATCH:-no result within $secs s}"
	fi
	echo "$name: '$QEMU_MATCH' after ${QEMU_SECS}s"
	grep -a -q -F "$URL" "$log" || fail "$name: the iPXE it started did not fetch $URL"
}

# The UEFI path for real, in proxy mode: OVMF's own PXE (EDK2, not iPXE: virtio-net without an
# option ROM) asks with client architecture 7, takes the boot file from the proxyDHCP menu (PXE
# boot server discovery), gets ipxe.efi by TFTP and runs it; that iPXE is sent to the URL.
OVMF=/usr/share/ovmf/OVMF.fd
uefi_start() {
	[[ -r $OVMF ]] || return 0
	second_start uefi -bios "$OVMF" -device "virtio-net-pci,netdev=n0,mac=$L2,romfile=,bootindex=1"
}
uefi_check() {
	local got
	if [[ ! -r $OVMF ]]; then
		echo "not run: the UEFI boot ($OVMF is missing: Debian package ovmf)"
		return 0
	fi
	second_done uefi 180 "$BAD"
	grep -a -q 'NBP filename is ipxe.efi' "$(qemu_log uefi)" || fail "uefi: OVMF was not told to load ipxe.efi"
	# EDK2 asks for the file's size first (a transfer it aborts, which dnsmasq logs as sent
	# too), then downloads it: ipxe.efi once or twice, nothing else, nothing after iPXE started.
	got=$(tftp_to "$(ip_of "$L2")")
	[[ $got == "$TFTP_ROOT/ipxe.efi" || $got == "$TFTP_ROOT/ipxe.efi"$'\n'"$TFTP_ROOT/ipxe.efi" ]] ||
		fail "TFTP to the UEFI PC: expected ipxe.efi (size probe + download), got: ${got:-nothing}"
	ok "UEFI (OVMF's PXE, proxyDHCP): ipxe.efi fetched by TFTP and run, its iPXE sent to $URL, the script fetched"
}

# ---- proxy mode -------------------------------------------------------------------------------
# bootlinkd in A on every address there; the HTTP port is the kernel's choice, which pxe-config
# reads back from the runtime tree.
DAEMON_WRAPPER="ip netns exec $NSA" start_daemon listen/http=0.0.0.0:0 listen/iscsi=0.0.0.0:0 \
	listen/nbd=0.0.0.0:0 runtime/interval_ms=100 overlay/dirs=overlays
URL=http://192.168.77.1:$HTTP_PORT/boot.ipxe

pxe_config --interface br0 --proxy --out "$T/proxy.conf" >"$T/out"
grep -q "wrote $T/proxy.conf: proxyDHCP on br0 (192.168.77.1/24)" "$T/out" || fail "pxe-config said: $(cat "$T/out")"
for want in "interface=br0" "bind-interfaces" "dhcp-range=192.168.77.0,proxy,255.255.255.0" "enable-tftp" \
	"tftp-root=$TFTP_ROOT" "dhcp-userclass=set:ipxe,iPXE" "dhcp-match=set:ipxe,175" \
	'pxe-service=tag:!ipxe,x86PC,"bootlink (BIOS)",undionly.kpxe' \
	'pxe-service=tag:!ipxe,x86-64_EFI,"bootlink (UEFI)",ipxe.efi' \
	'pxe-service=tag:!ipxe,BC_EFI,"bootlink (UEFI)",ipxe.efi' \
	"pxe-service=tag:ipxe,x86PC,\"bootlink (iPXE)\",$URL" "enable-ra" "dhcp-range=::,constructor:br0,ra-only"; do
	grep -qxF -- "$want" "$T/proxy.conf" || fail "proxy config: no line '$want'"
done
! grep -q '^dhcp-boot=' "$T/proxy.conf" || fail "proxy config: a dhcp-boot line (the site's DHCP server names no boot file)"
in_a dnsmasq --test --conf-file="$T/proxy.conf" 2>&1 | grep -q 'syntax check OK' || fail "dnsmasq --test refuses the proxy config"
pxe_config --interface br0 --proxy --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["mode"] == "proxy" and d["boot_url"] == sys.argv[1] and d["config"].startswith("# bootlink PXE"), d' "$URL" ||
	fail "pxe-config --json: unexpected document"
ok "pxe-config --proxy: proxyDHCP for 192.168.77.0/24, TFTP of undionly.kpxe/ipxe.efi, iPXE sent to $URL; dnsmasq --test OK"

# The site's router: addresses and IPv6 router advertisements, nothing about booting. Without
# ping checks (as ISC dhcpd's default): dnsmasq's would hold every answer up to 3 s per new
# address while three PCs boot at once, long enough for iPXE's DHCP to give up.
cat >"$T/router.conf" <<EOF
interface=veth-r
bind-interfaces
port=0
pid-file=
dhcp-range=192.168.77.100,192.168.77.127,255.255.255.0,1h
dhcp-option=option:router,192.168.77.254
dhcp-leasefile=$T/router.leases
no-ping
enable-ra
dhcp-range=fd77::,ra-only,64
log-dhcp
EOF
dnsmasq_start "$NSR" "$T/router.conf" router
dnsmasq_start "$NSA" "$T/proxy.conf" proxy
DLOG=$T/dnsmasq-proxy.log ALOG=$T/dnsmasq-router.log
tftp_serves undionly.kpxe
tftp_serves ipxe.efi
ok "TFTP (proxy mode): undionly.kpxe and ipxe.efi served byte for byte"
uefi_start
boot_pair proxy "$URL"
grep -q 'PXE(br0) .*proxy' "$T/dnsmasq-proxy.log" || fail "our dnsmasq logged no proxyDHCP answer"
grep -q "DHCPACK(veth-r) 192.168.77.1[0-2][0-9] $L" "$T/dnsmasq-router.log" || fail "the router's DHCP gave $L no address"
ok "proxy mode: addresses from the router, boot from us: the linked PC's script fetched, the unknown PC's screen shown"
uefi_check
dnsmasq_stop proxy
dnsmasq_stop router
stop_daemon

# ---- full DHCP mode ---------------------------------------------------------------------------
# bootlinkd on 192.168.77.1:8080 only (a fixed port, the usual case); br0 gets an IPv6 ULA, so
# our dnsmasq answers iPXE's router solicitation itself.
ip -n "$NSA" addr add fd77::1/64 dev br0 nodad
DAEMON_WRAPPER="ip netns exec $NSA" start_daemon listen/http=192.168.77.1:8080 listen/iscsi=0.0.0.0:0 \
	listen/nbd=0.0.0.0:0 runtime/interval_ms=100 overlay/dirs=overlays
URL=http://192.168.77.1:8080/boot.ipxe
pxe_config --interface br0 --range 192.168.77.50,192.168.77.99 --out "$T/full.conf" >"$T/out"
grep -q "wrote $T/full.conf: full DHCP on br0 (192.168.77.1/24), addresses 192.168.77.50-192.168.77.99" "$T/out" ||
	fail "pxe-config said: $(cat "$T/out")"
for want in "dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,12h" "dhcp-leasefile=$T/conf/db/dnsmasq.leases" \
	"dhcp-boot=tag:ipxe,$URL" "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi" "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe" \
	"dhcp-match=set:efi64,option:client-arch,7" "dhcp-match=set:efi64,option:client-arch,9" "enable-tftp" "no-ping"; do
	grep -qxF -- "$want" "$T/full.conf" || fail "full config: no line '$want'"
done
! grep -v '^#' "$T/full.conf" | grep -q 'proxy' || fail "full config: a proxy line"
in_a dnsmasq --test --conf-file="$T/full.conf" 2>&1 | grep -q 'syntax check OK' || fail "dnsmasq --test refuses the full config"
ok "pxe-config (full DHCP): range, leases beside the database, boot file by architecture and user class; dnsmasq --test OK"
ECHOS0=$(echos)
dnsmasq_start "$NSA" "$T/full.conf" full
DLOG=$T/dnsmasq-full.log ALOG=$T/dnsmasq-full.log
tftp_serves undionly.kpxe

# A real DHCP client (busybox udhcpc on pc0, in R) as BIOS PXE firmware, x86-64 UEFI firmware,
# and iPXE: the boot file each is given. The script only records; it configures nothing.
printf '#!/bin/sh\n[ "$1" = bound ] && echo "file=$boot_file siaddr=$siaddr ip=$ip" >>"$OUT"\nexit 0\n' >"$T/udhcpc.sh"
chmod +x "$T/udhcpc.sh"
dhcp_file() {
	: >"$T/dhcp.out"
	OUT=$T/dhcp.out ip netns exec "$NSR" timeout 30 busybox udhcpc -f -q -n -t 5 -T 2 -i pc0 \
		-s "$T/udhcpc.sh" "$@" >/dev/null 2>&1 || true
	cat "$T/dhcp.out"
}
got=$(dhcp_file -V PXEClient:Arch:00000:UNDI:002001 -x 0x5d:0000)
[[ $got == "file=undionly.kpxe siaddr=192.168.77.1 ip=192.168.77."* ]] || fail "BIOS PXE client got: '${got:-no lease}'"
got=$(dhcp_file -V PXEClient:Arch:00007:UNDI:003016 -x 0x5d:0007)
[[ $got == "file=ipxe.efi siaddr=192.168.77.1 "* ]] || fail "UEFI x86-64 PXE client got: '${got:-no lease}'"
got=$(dhcp_file -V PXEClient:Arch:00000:UNDI:002001 -x 0x5d:0000 -x 0x4d:69505845)
[[ $got == "file=$URL "* ]] || fail "a client with user class iPXE got: '${got:-no lease}'"
ok "DHCP (full mode, busybox udhcpc): BIOS PXE -> undionly.kpxe, UEFI x86-64 -> ipxe.efi, iPXE -> $URL; next-server 192.168.77.1"

# The BIOS path after its first DHCP: PXE firmware runs undionly.kpxe from our TFTP, and the iPXE
# it starts must be sent to HTTP, not given undionly.kpxe again. The firmware here is iPXE too
# (ipxe.lkrn as the kernel, with its own e1000 driver: it offers the PXE API undionly.kpxe runs
# on) told by its command line to do what PXE firmware does with the boot file udhcpc got above.
# Like PXE firmware it asks by DHCPv4 alone (`ifconf -c dhcp`: plain `dhcp` also takes IPv6 from
# our router advertisements as success, and leaves next-server empty if DHCPv4 timed out), and
# asks again when no answer came in time, as happens with three TCG guests on a busy 2-core box.
second_start undionly -kernel "$TFTP_ROOT/ipxe.lkrn" -device "e1000,netdev=n0,mac=$L2" \
	-append 'ifconf -c dhcp net0 || ifconf -c dhcp net0 || ifconf -c dhcp net0 || echo E2E-DHCP-FAILED ; chain tftp://${next-server}/undionly.kpxe || echo E2E-CHAIN-FAILED'
boot_pair full "$URL"
grep -q "DHCPACK(br0) 192.168.77.[5-9][0-9] $L" "$T/dnsmasq-full.log" || fail "our DHCP gave $L no address from the range"
second_done undionly 180 "$BAD|E2E-DHCP-FAILED|E2E-CHAIN-FAILED"
grep -a -q 'undionly.kpxe\.\.\. ok' "$(qemu_log undionly)" || fail "undionly: undionly.kpxe was not loaded"
got=$(tftp_to "$(ip_of "$L2")")
[[ $got == "$TFTP_ROOT/undionly.kpxe" ]] || fail "TFTP to the undionly PC: expected undionly.kpxe once, got: ${got:-nothing}"
ok "undionly.kpxe: fetched once by TFTP and run, the iPXE it started sent to $URL, the script fetched"


grep -q "RTR-SOLICIT(br0) $L" "$T/dnsmasq-full.log" && grep -q 'RTR-ADVERT(br0) fd77::' "$T/dnsmasq-full.log" ||
	fail "our dnsmasq did not answer $L's IPv6 router solicitation"
# Every address went out without a ping first (no-ping): dnsmasq answers nobody while it waits
# up to 3 s for a ping's echo, which stalls PCs booting together.
(($(echos) == ECHOS0)) || fail "our dnsmasq pinged addresses before handing them out: $(($(echos) - ECHOS0)) ICMP echo requests from $NSA"
ok "full DHCP mode: address and boot from us: the linked PC's script fetched, the unknown PC's screen shown, no address pinged first"

# ---- TFTP only: the site's DHCP server names the boot file (options 66/67) -------------------
dnsmasq_stop full
pxe_config --interface br0 --tftp-only --out "$T/tftp.conf" >"$T/out"
grep -qF "the site's DHCP server must send: next-server (option 66) 192.168.77.1; filename (option 67) undionly.kpxe for BIOS (option 93 = 0), ipxe.efi for x86-64 UEFI (93 = 7 or 9), $URL when the user class is \"iPXE\"" "$T/out" ||
	fail "pxe-config --tftp-only said: $(cat "$T/out")"
! grep -q -E '^(dhcp-|pxe-service|enable-ra)' "$T/tftp.conf" || fail "the TFTP-only config does DHCP: $(grep -E '^(dhcp-|pxe-)' "$T/tftp.conf")"
in_a dnsmasq --test --conf-file="$T/tftp.conf" 2>&1 | grep -q 'syntax check OK' || fail "dnsmasq --test refuses the TFTP-only config"
# The site's server set up as docs/pxe.md tells its admin (here in dnsmasq's words).
cat >"$T/site.conf" <<EOF
interface=veth-r
bind-interfaces
port=0
pid-file=
dhcp-range=192.168.77.100,192.168.77.127,255.255.255.0,1h
dhcp-leasefile=$T/site.leases
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-boot=tag:ipxe,$URL
dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,192.168.77.1
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe,,192.168.77.1
log-dhcp
EOF
dnsmasq_start "$NSR" "$T/site.conf" site
dnsmasq_start "$NSA" "$T/tftp.conf" tftp
DLOG=$T/dnsmasq-tftp.log ALOG=$T/dnsmasq-site.log
! grep -q 'dnsmasq-dhcp' "$DLOG" || fail "the TFTP-only dnsmasq does DHCP: $(grep dnsmasq-dhcp "$DLOG")"
got=$(dhcp_file -V PXEClient:Arch:00000:UNDI:002001 -x 0x5d:0000)
[[ $got == "file=undionly.kpxe siaddr=192.168.77.1 ip=192.168.77.1"[0-2]* ]] || fail "BIOS PXE client got: '${got:-no lease}'"
tftp_serves undionly.kpxe
got=$(dhcp_file -V PXEClient:Arch:00007:UNDI:003016 -x 0x5d:0007)
[[ $got == "file=ipxe.efi siaddr=192.168.77.1 "* ]] || fail "UEFI x86-64 PXE client got: '${got:-no lease}'"
tftp_serves ipxe.efi
got=$(dhcp_file -V PXEClient:Arch:00000:UNDI:002001 -x 0x5d:0000 -x 0x4d:69505845)
[[ $got == "file=$URL "* ]] || fail "a client with user class iPXE got: '${got:-no lease}'"
ok "TFTP only: the site's DHCP server with the options pxe-config lists sends BIOS, UEFI and iPXE clients to our TFTP and $URL"
dnsmasq_stop tftp
dnsmasq_stop site
stop_daemon
ok "done"
