#!/bin/bash
# test-e2e-sanboot — real iPXE (qemu's NIC ROM) boots a disk from bootlinkd over iSCSI.
#
# qemu (TCG, user network: the host's loopback is 10.0.2.2) boots iPXE from its e1000 ROM
# (-boot n); qemu's DHCP/TFTP hands it a first script from $T/tftp. The disk
# (tests/lib/bootdisk.sh: MBR + SYSLINUX + Debian's kernel + a marker initramfs) is a bootlinkd
# image; each boot ends when the kernel prints its marker line on the serial console
# (BOOTLINK-MARKER, with the iBFT iPXE left: initiator and target IQN), or on a failure line.
#
#   1. direct: the TFTP script sanboots iscsi:10.0.2.2::PORT::<client target> itself
#   2. chain (issue 5's e2e test 1): the TFTP script is ipxe-scripts/boot.ipxe; it chains to
#      bootlinkd's /ipxe?mac=${net0/mac:hexhyp}, whose per-MAC script sets the initiator IQN and
#      sanboots with the client's SAN options (client set --drive 0x80 --keep-san 1: real iPXE
#      parses `sanboot --drive 0x80 --keep`, registers SAN device 0x80). The daemon logs the script it served and records a boot event (bootlinkctl
#      events), the runtime tree counts the boot (boots, connections/* with protocol iscsi and
#      the client's export, bytes read)
#   3. CHAP (bootlinkd restarted with iscsi/chap_* set, secrets full of iPXE metacharacters):
#      a. chain via bootlinkd's own /boot.ipxe: the per-MAC script passes the credentials
#         (one-way and mutual) and the boot works; the daemon logs auth=CHAP+mutual
#      b. the TFTP script sets a wrong password and sanboots: iPXE's login is refused (its error
#         number is EPERM_INITIATOR_AUTHENTICATION), bootlinkd logs "login refused (status 0x0201)"
#   4. the OS takes over (a persistent client, a disk whose initramfs has the kernel initiator:
#      bootdisk.sh `handoff`): after iPXE's sanboot, Linux logs in again from the iBFT (iscsistart
#      -b, with the mutual CHAP credentials iPXE handed over), mounts the disk and writes a file.
#      Two sessions in one boot (boots = 1), writes counted; the file is on the client's disk
#      (read back over NBD, mtype), not in the image
#   and after all boots both image files are unchanged (sha256).
#
# 1 and 2 run side by side, then 3a, 3b and 4. Each boot's time is printed: iPXE -> marker takes
# 15-25 s on an idle 2-core machine (4: 25-35 s), 35-60 s when it is busy; the test ~1-3 min.
# BOOT_SECS (150) bounds each boot. Skips (77) only when qemu, its iPXE ROM, the Debian kernel or open-iscsi packages (fetched once
# into ~/.cache/bootlink) are not available.
. "$(dirname "$0")/lib/common.sh"
. "$TESTS/lib/qemu.sh"
. "$TESTS/lib/bootdisk.sh"
need_bootlink
qemu_pxe_usable || skip "$QEMU_WHY"
bootdisk_usable || skip "$BOOTDISK_WHY"
kernel_fetch || skip "$QEMU_WHY"
need nbdcopy mtype
bootdisk_cached || fail "$BOOTDISK_WHY"
cp "$BOOTDISK" "$T/disk.img"
iscsistart_fetch || skip "$BOOTDISK_WHY"
bootdisk_cached handoff || fail "$BOOTDISK_WHY"
cp "$BOOTDISK" "$T/osdisk.img"
SUM=$(sha256sum <"$T/disk.img")
OSSUM=$(sha256sum <"$T/osdisk.img")

A=52:54:00:5b:00:01 # booted by a direct sanboot
B=52:54:00:5b:00:02 # booted through bootlinkd's per-MAC script
C=52:54:00:5b:00:03 # persistent; its OS logs in again from the iBFT and writes
hex() { tr -d : <<<"$1"; }
TA=iqn.2026-11.org.bootlink:client.$(hex $A)
TB=iqn.2026-11.org.bootlink:client.$(hex $B)
IB=iqn.2026-11.org.bootlink:initiator.$(hex $B)
TC=iqn.2026-11.org.bootlink:client.$(hex $C)
IC=iqn.2026-11.org.bootlink:initiator.$(hex $C)
ctl image add disk "$T/disk.img" >/dev/null
ctl client add "$A" --image disk --name SAN-A >/dev/null
ctl client add "$B" --image disk --name SAN-B >/dev/null
ctl client set "$B" --drive 0x80 --keep-san 1 >/dev/null
ctl image add osdisk "$T/osdisk.img" >/dev/null
ctl client add "$C" --image osdisk --name SAN-C --mode persistent >/dev/null
start_daemon overlay/dirs=overlays runtime/interval_ms=100
mkdir -p "$T/tftp"

OK_RE=$BOOTDISK_MARKER
# Each guest's limit, from its start: 4-6 times an idle boot, for a machine shared by others.
BOOT_SECS=${BOOT_SECS:-150}
# iPXE's own errors, the failure lines of our scripts and of bootlinkd's, SeaBIOS giving up.
BAD_RE='BOOTLINK-TEST: .*failed|bootlink: sanboot of .* failed|bootlink: the boot server|Could not (boot|open)|No bootable device|Kernel panic'

# boot NAME MAC FILE: start a guest with MAC that runs $T/tftp/FILE first.
boot() {
	qemu_pxe_args "$2" "$T/tftp" "$3"
	qemu_start "$1" "${QEMU_PXE[@]}"
}
# booted NAME TARGET [INITIATOR [OS]]: wait (BOOT_SECS from its start) for NAME's marker; the
# iBFT iPXE left must name TARGET (and INITIATOR), and the marker must say os=OS (default -: the
# plain disk).
booted() {
	local name=$1 target=$2 initiator=${3:-} os=${4:--} rc=0 log
	log=$(qemu_log "$name")
	qemu_watch "$name" "$BOOT_SECS" "$OK_RE" "$BAD_RE" || rc=$?
	if ((rc != 0)); then
		echo "--- console of $name ($log)" >&2
		tail -n 30 "$log" >&2
		case $rc in
		2) fail "$name: no marker on the console within $BOOT_SECS s" ;;
		3) fail "$name: the guest stopped without a marker" ;;
		*) fail "$name: $QEMU_MATCH" ;;
		esac
	fi
	echo "$name: ${QEMU_MATCH#*BOOTLINK-MARKER: }"
	echo "$name: boot took ${QEMU_SECS}s (qemu start to marker)"
	[[ $QEMU_MATCH == *" ibft=yes "* ]] || fail "$name: the kernel found no iBFT from iPXE: $QEMU_MATCH"
	[[ $QEMU_MATCH == *" target=$target "* ]] || fail "$name: the iBFT names another target: $QEMU_MATCH"
	[[ -z $initiator || $QEMU_MATCH == *" initiator=$initiator "* ]] ||
		fail "$name: the iBFT names another initiator (want $initiator): $QEMU_MATCH"
	if [[ $QEMU_MATCH != *" os=$os" ]]; then
		tail -n 30 "$log" >&2
		fail "$name: the OS part of the boot did not end with os=$os: $QEMU_MATCH"
	fi
}
# tree_fresh: wait until the runtime tree holds a snapshot taken after this call.

t0=$SECONDS
# --- 1 and 2 (side by side) --------------------------------------------------------------------
# 1. a direct sanboot
cat >"$T/tftp/direct.ipxe" <<EOF
#!ipxe
echo BOOTLINK-TEST: direct sanboot of $TA
sanboot iscsi:10.0.2.2::$ISCSI_PORT::$TA || echo BOOTLINK-TEST: sanboot failed
EOF
# 2. the boot chain: ipxe-scripts/boot.ipxe -> /ipxe?mac= -> sanboot. The shipped first script,
# told where bootlinkd's HTTP endpoint is (it defaults to next-server:80).
{
	echo '#!ipxe'
	echo "set bootlink 10.0.2.2:$HTTP_PORT"
	grep -v '^#!ipxe' "$SRCDIR/ipxe-scripts/boot.ipxe"
} >"$T/tftp/chain.ipxe"
# iscsi_conn_seen MAC: the runtime tree shows an iSCSI connection on the client's disk that read
# something (it lives from iPXE's sanboot until the guest powers off).
iscsi_conn_seen() {
	local d
	for d in "$RUN"/connections/*; do
		[[ $(cat "$d/protocol" 2>/dev/null) == iscsi && $(cat "$d/export" 2>/dev/null) == "client/$1" ]] &&
			(($(cat "$d/bytes_read" 2>/dev/null || echo 0) > 0)) && return 0
	done
	return 1
}
# seen_or_over NAME MAC: the connection was seen (SEEN=1), or the console already decided the boot.
seen_or_over() {
	iscsi_conn_seen "$2" && SEEN=1 && return 0
	grep -a -q -E "$OK_RE|$BAD_RE" "$(qemu_log "$1")"
}
boot direct "$A" direct.ipxe
boot chain "$B" chain.ipxe
SEEN=0
wait_for "$BOOT_SECS" seen_or_over chain "$B" || true
booted direct "$TA"
ok "1. iPXE sanboot iscsi:10.0.2.2::$ISCSI_PORT::$TA -> SYSLINUX -> kernel -> marker"
booted chain "$TB" "$IB"
((SEEN)) || fail "chain: the runtime tree never showed an iSCSI connection of client/$B reading its disk"
grep -a -q "bootlink: SAN-B ($B) boots image disk (ephemeral overlay)" "$(qemu_log chain)" ||
	fail "chain: the per-MAC script's greeting is not on the console"
grep -a -q "Registered SAN device 0x80" "$(qemu_log chain)" ||
	fail "chain: iPXE did not register SAN device 0x80 (sanboot --drive 0x80 --keep)"
grep -q "http: boot script for $B (SAN-B): sanboot, image disk" "$T/daemon.log" || fail "chain: the daemon did not log the script it served"
grep -q "initiator=$IB target=client/$B: normal session started (auth=None" "$T/daemon.log" ||
	fail "chain: no iSCSI session of $IB on client/$B in the daemon log"
wait_for 10 test "$(cat "$RUN/clients/$B/boots" 2>/dev/null)" = 1 ||
	fail "chain: runtime tree clients/$B/boots is '$(cat "$RUN/clients/$B/boots" 2>/dev/null)', expected 1"
boot_event() { ctl events "$B" | grep -q 'boot  *boot script: sanboot, image disk'; }
wait_for 10 boot_event || fail "chain: no boot event for $B: $(ctl events "$B")"
ok "2. iPXE -> ipxe-scripts/boot.ipxe -> /ipxe?mac=$B -> sanboot --drive 0x80 --keep -> marker; logged, a boot event, counted as boot 1, connection seen in the runtime tree"

# --- 3. CHAP --------------------------------------------------------------------------------------
# A secret made of iPXE metacharacters: the per-MAC script must hand it over as it is.
# shellcheck disable=SC2016 # the secrets are meant to hold $ and braces
CHAP_USER=alice CHAP_SECRET='pa$${x} #|&"word' MUTUAL_USER=bootlink MUTUAL_SECRET='t$rget{secret}'
stop_daemon
start_daemon iscsi/chap_user="$CHAP_USER" iscsi/chap_secret="$CHAP_SECRET" \
	iscsi/chap_mutual_user="$MUTUAL_USER" iscsi/chap_mutual_secret="$MUTUAL_SECRET"
IA=iqn.2026-11.org.bootlink:initiator.$(hex $A)
# 3a: bootlinkd's own /boot.ipxe, then its per-MAC script with the credentials.
cat >"$T/tftp/chap.ipxe" <<EOF
#!ipxe
chain http://10.0.2.2:$HTTP_PORT/boot.ipxe || echo BOOTLINK-TEST: chain failed
EOF
# 3b: a wrong password, set by hand.
cat >"$T/tftp/wrong.ipxe" <<EOF
#!ipxe
set username $CHAP_USER
set password not-the-secret
sanboot iscsi:10.0.2.2::$ISCSI_PORT::$TB || echo BOOTLINK-TEST: sanboot refused
EOF
# 4: straight to the per-MAC script; the OS then logs in again from the iBFT and writes.
cat >"$T/tftp/os.ipxe" <<EOF
#!ipxe
chain http://10.0.2.2:$HTTP_PORT/ipxe?mac=\${net0/mac:hexhyp} || echo BOOTLINK-TEST: chain failed
EOF
boot chap "$A" chap.ipxe
boot wrong "$B" wrong.ipxe
boot os "$C" os.ipxe
rc=0
qemu_watch wrong "$BOOT_SECS" 'BOOTLINK-TEST: sanboot refused' "$OK_RE|No bootable device" || rc=$?
if ((rc != 0)); then
	tail -n 30 "$(qemu_log wrong)" >&2
	fail "wrong password: expected the login to be refused, got: ${QEMU_MATCH:-nothing} (rc $rc)"
fi
said=$(grep -a -m 1 -o 'Could not open SAN device: .*' "$(qemu_log wrong)" || true)
echo "wrong: iPXE says '$said' after ${QEMU_SECS}s"
# iPXE's error numbers are POSIX code << 24 | source file | disambiguator << 8 | PXE code: EPERM
# (0x41) with disambiguator 1 in iscsi.c is EPERM_INITIATOR_AUTHENTICATION, what iPXE makes of
# login status 0x0201 (the build has no error texts, only "Operation not permitted" and the number).
[[ $said =~ Operation\ not\ permitted\ \(http://ipxe.org/([0-9a-f]{8})\) ]] ||
	fail "wrong password: iPXE does not say 'Operation not permitted (http://ipxe.org/...)': '$said'"
code=$((16#${BASH_REMATCH[1]}))
(((code >> 24) == 0x41 && ((code >> 8) & 0x1f) == 1)) ||
	fail "wrong password: iPXE error ${BASH_REMATCH[1]} is not EPERM_INITIATOR_AUTHENTICATION"
grep -q "login refused (status 0x0201): CHAP authentication failed for user '$CHAP_USER'" "$T/daemon.log" ||
	fail "wrong password: the daemon did not log the refused login with status 0x0201"
ok "3b. a wrong CHAP password: iPXE's login refused, the daemon logs status 0x0201"
booted chap "$TA" "$IA"
grep -q "initiator=$IA target=client/$A: normal session started (auth=CHAP+mutual" "$T/daemon.log" ||
	fail "chap: no mutual CHAP session of $IA in the daemon log"
ok "3a. CHAP configured: /boot.ipxe -> per-MAC script with the credentials (mutual CHAP) -> marker"

# --- 4. the OS takes over from iPXE and writes -------------------------------------------------------
booted os "$TC" "$IC" wrote
# Both sessions of this boot (iPXE's, then the kernel initiator's from the iBFT, with the CHAP
# credentials iPXE handed over) used the client's disk: one boot, writes in its overlay.
n=$(grep -c "initiator=$IC target=client/$C: normal session started (auth=CHAP+mutual" "$T/daemon.log" || true)
((n == 2)) || fail "os: $n mutual CHAP sessions of $IC on client/$C in the daemon log, expected 2 (iPXE, then the OS)"
grep "initiator=$IC target=client/$C: normal session started" "$T/daemon.log" | tail -n 1 | grep -q -v ', iPXE)' ||
	fail "os: the second session is iPXE's, not the OS initiator's"
wait_for 10 test "$(cat "$RUN/clients/$C/boots" 2>/dev/null)" = 1 ||
	fail "os: runtime tree clients/$C/boots is '$(cat "$RUN/clients/$C/boots" 2>/dev/null)', expected 1"
wait_for 10 test "$(cat "$RUN/clients/$C/writes" 2>/dev/null || echo 0)" -gt 0 ||
	fail "os: runtime tree clients/$C/writes is '$(cat "$RUN/clients/$C/writes" 2>/dev/null)', expected > 0"
echo "os: runtime tree: boots=$(<"$RUN/clients/$C/boots") writes=$(<"$RUN/clients/$C/writes") bytes_written=$(<"$RUN/clients/$C/bytes_written")"
# What the OS wrote is on the client's disk (read back over NBD), not in the image.
timeout 60 nbdcopy "$(nbd_uri "client/$C")" "$T/c.img"
got=$(mtype -i "$T/c.img@@1M" ::/BOOTLINK.TXT 2>&1) || fail "os: no BOOTLINK.TXT on the client's disk: $got"
[[ $got == "written by the OS initiator: $IC" ]] || fail "os: BOOTLINK.TXT on the client's disk says '$got'"
! mtype -i "$T/osdisk.img@@1M" ::/BOOTLINK.TXT >/dev/null 2>&1 || fail "os: BOOTLINK.TXT is in the image file"
ok "4. the OS logged in again from the iBFT (mutual CHAP), wrote a file: on the client's disk over NBD, not in the image"

[[ $(sha256sum <"$T/disk.img") == "$SUM" ]] || fail "the image file disk.img changed"
[[ $(sha256sum <"$T/osdisk.img") == "$OSSUM" ]] || fail "the image file osdisk.img changed"
ok "the image files are unchanged after 5 boots"

echo "5 boots in $((SECONDS - t0)) s"
assert_daemon_alive
stop_daemon
ok "done"
