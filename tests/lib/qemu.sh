# shellcheck shell=bash disable=SC2034 # QEMU_* and KROOT/VMLINUZ/INITRD are for the caller
# qemu.sh — qemu clients for the end-to-end tests and `make demo`. Source it (after common.sh
# in a test; demo.sh sources it alone). Needs bash; works under `set -eEuo pipefail`.
#
#   qemu_usable                  qemu-system-x86_64 can run a TCG machine (else QEMU_WHY says why)
#   kernel_fetch [KVER]          a Debian kernel (downloaded once, cached): sets KVER, KROOT,
#                                VMLINUZ (else QEMU_WHY says why)
#   initramfs_cached             the bootlink initramfs for $KVER (initramfs/build.sh), cached by
#                                the hash of its sources: sets INITRD
#   qemu_start NAME ARGS...      start a guest: TCG, 512 MiB, no display, serial console on
#                                stdio, -no-reboot, plus ARGS (-kernel, -initrd, -append, -nic)
#   qemu_watch NAME SECS OK BAD  wait until a console line matches the extended regex BAD
#                                (returns 1), OK (returns 0), the guest stops (3) or SECS have
#                                passed since its start (2); then stop it by PID. Sets
#                                QEMU_MATCH (the line) and QEMU_SECS (seconds from start to it).
#                                With QEMU_KEEP=1 a guest that reached OK is left running
#                                (stop it with qemu_stop)
#   qemu_boot NAME SECS OK BAD -- ARGS...   qemu_start + qemu_watch
#   qemu_pxe_usable              qemu has the iPXE ROM of its e1000 NIC (Debian package ipxe-qemu)
#                                (else QEMU_WHY says why)
#   qemu_pxe_args MAC TFTPDIR FILE   sets QEMU_PXE, the ARGS of a guest that boots iPXE from its
#                                NIC ROM (-boot n; e1000 with MAC) on qemu's user network, whose DHCP
#                                hands out TFTPDIR/FILE as the boot file: iPXE runs it as its first
#                                script. The host's loopback is 10.0.2.2 for the guest. SeaBIOS
#                                and iPXE print to the serial console too, so qemu_watch sees
#                                iPXE's `echo` lines and errors.
#   qemu_stop NAME / qemu_stop_all          stop guests by PID (TERM, then KILL after 5 s)
#   qemu_log NAME                the console log: one line per console line, "SECONDS LINE"
#
# Variables: QEMU (default qemu-system-x86_64), QEMU_DIR (where logs go: $T in a test),
# QEMU_LIVE=1 also prints every console line on stdout as it arrives, prefixed with
# QEMU_LIVE_PREFIX. KVM is never used: on these machines it does not run Linux guests; a boot
# under TCG takes 10-25 s.

QEMU=${QEMU:-qemu-system-x86_64}
QEMU_DIR=${QEMU_DIR:-${T:-${TMPDIR:-/tmp}}}
QEMU_LIVE=${QEMU_LIVE:-0}
QEMU_KEEP=${QEMU_KEEP:-0}
QEMU_LIVE_PREFIX=${QEMU_LIVE_PREFIX:-}
QEMU_WHY="" QEMU_MATCH="" QEMU_SECS=""
QEMU_PXE=()
_QEMU_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -A _QEMU_PID=() _QEMU_RPID=() _QEMU_T0=()

_qemu_now_us() { echo "${EPOCHREALTIME/./}"; }

# _qemu_alive PID: exists and is not a zombie.
_qemu_alive() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

qemu_usable() {
	local out
	QEMU_WHY=""
	if ! command -v "$QEMU" >/dev/null 2>&1; then
		QEMU_WHY="$QEMU is not installed (Debian package qemu-system-x86; tests/lib/deps.sh installs it)"
		return 1
	fi
	# A machine without devices that quits at once: proves qemu starts and has TCG.
	if ! out=$(printf 'quit\n' | timeout 30 "$QEMU" -accel tcg -machine none -nodefaults -display none \
		-monitor stdio 2>&1); then
		QEMU_WHY="$QEMU cannot start a TCG machine: $(grep -v '^ *$' <<<"$out" | grep -v QEMU | tail -n 1)"
		return 1
	fi
	return 0
}

qemu_pxe_usable() {
	local d
	QEMU_WHY=""
	qemu_usable || return 1
	# qemu's firmware search path (-L help): the e1000 ROM is efi-e1000.rom (BIOS + EFI iPXE).
	while read -r d; do
		[[ -r $d/efi-e1000.rom ]] && return 0
	done < <("$QEMU" -L help 2>/dev/null)
	QEMU_WHY="qemu has no iPXE ROM for its e1000 NIC (efi-e1000.rom; Debian package ipxe-qemu)"
	return 1
}

qemu_pxe_args() {
	local mac=$1 dir=$2 file=$3
	# -nographic (on top of qemu_start's -display none) makes qemu turn on SeaBIOS's serial
	# console (sercon): without it neither SeaBIOS nor iPXE print anything on the serial port.
	QEMU_PXE=(-nographic -boot n -nic "user,model=e1000,mac=$mac,tftp=$dir,bootfile=$file")
}

kernel_fetch() {
	local out
	QEMU_WHY=""
	if ! out=$("$_QEMU_SRC/initramfs/fetch-kernel.sh" ${1:+"$1"} 2>&1 >"$QEMU_DIR/.kroot"); then
		QEMU_WHY="no Debian kernel for the qemu client: $(tail -n 1 <<<"$out")"
		return 1
	fi
	[[ -n $out ]] && printf '%s\n' "$out"
	{
		read -r KROOT
		read -r KVER
	} <"$QEMU_DIR/.kroot"
	rm -f "$QEMU_DIR/.kroot"
	VMLINUZ=$KROOT/boot/vmlinuz-$KVER
	if [[ ! -r $VMLINUZ ]]; then
		QEMU_WHY="$VMLINUZ is missing or unreadable"
		return 1
	fi
	return 0
}

# initramfs_cached: build the initramfs for $KVER unless one built from the same sources,
# busybox and nbd-client is in the cache (<cache>/initramfs/<hash>.cpio.gz).
initramfs_cached() {
	local cache=${BOOTLINK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bootlink} key
	key=$({
		echo "$KVER"
		cat "$_QEMU_SRC"/initramfs/{build.sh,init,udhcpc.script,fetch-kernel.sh}
		dpkg-query -W busybox-static nbd-client 2>/dev/null || sha256sum /bin/busybox /usr/sbin/nbd-client
	} | sha256sum | cut -c1-16)
	INITRD=$cache/initramfs/$KVER-$key.cpio.gz
	[[ -s $INITRD ]] && return 0
	mkdir -p "$cache/initramfs"
	"$_QEMU_SRC/initramfs/build.sh" "$INITRD" "$KVER" || return 1
	# Older builds for this kernel are of no more use.
	find "$cache/initramfs" -name "$KVER-*.cpio.gz" ! -name "$KVER-$key.cpio.gz" -delete 2>/dev/null || true
	return 0
}

qemu_log() { echo "$QEMU_DIR/$1.console"; }

# _qemu_reader LOG: stamp each console line with the seconds since the start.
_qemu_reader() {
	set +e
	trap - ERR
	local t0 line now d s
	t0=$(_qemu_now_us)
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line//$'\r'/}
		now=$(_qemu_now_us)
		d=$(((now - t0) / 10000))
		printf -v s '%4d.%02d' $((d / 100)) $((d % 100))
		printf '%s %s\n' "$s" "$line" >>"$1"
		# (qemu's own note that it was stopped by PID is in the log, not worth showing)
		if [[ $QEMU_LIVE == 1 && $line != *": terminating on signal "* ]]; then
			printf '%s%s\n' "$QEMU_LIVE_PREFIX" "$line"
		fi
	done
}

qemu_start() {
	local name=$1 log fifo
	shift
	log=$(qemu_log "$name")
	fifo=$QEMU_DIR/.$name.fifo
	rm -f "$log" "$fifo"
	: >"$log"
	mkfifo "$fifo"
	_qemu_reader "$log" <"$fifo" &
	_QEMU_RPID[$name]=$!
	_QEMU_T0[$name]=$(_qemu_now_us)
	"$QEMU" -accel tcg -m 512 -nodefaults -display none -monitor none -serial stdio -no-reboot \
		"$@" </dev/null >"$fifo" 2>&1 &
	_QEMU_PID[$name]=$!
	# A test's exit handler (common.sh) stops whatever is in _PIDS.
	if declare -p _PIDS >/dev/null 2>&1; then _PIDS+=("${_QEMU_PID[$name]}" "${_QEMU_RPID[$name]}"); fi
}

qemu_stop() {
	local name=$1 pid rpid i p keep=()
	pid=${_QEMU_PID[$name]:-}
	rpid=${_QEMU_RPID[$name]:-}
	[[ -n $pid ]] || return 0
	if _qemu_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			_qemu_alive "$pid" || break
			sleep 0.1
		done
		_qemu_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || true
	# The reader ends at EOF: qemu is gone, so that is now.
	[[ -n $rpid ]] && { wait "$rpid" 2>/dev/null || true; }
	if declare -p _PIDS >/dev/null 2>&1; then
		for p in "${_PIDS[@]}"; do [[ $p == "$pid" || $p == "$rpid" ]] || keep+=("$p"); done
		_PIDS=("${keep[@]}")
	fi
	unset "_QEMU_PID[$name]" "_QEMU_RPID[$name]"
	rm -f "$QEMU_DIR/.$name.fifo"
	return 0
}

qemu_stop_all() {
	local n
	for n in "${!_QEMU_PID[@]}"; do qemu_stop "$n"; done
}

qemu_watch() {
	local name=$1 secs=$2 ok=$3 bad=$4 log pid deadline rc line
	log=$(qemu_log "$name")
	pid=${_QEMU_PID[$name]:?qemu_watch: $name was not started}
	deadline=$((${_QEMU_T0[$name]} + secs * 1000000))
	QEMU_MATCH="" QEMU_SECS=""
	while :; do
		if grep -a -q -E "$bad" "$log"; then
			rc=1
			break
		fi
		if grep -a -q -E "$ok" "$log"; then
			rc=0
			break
		fi
		if ! _qemu_alive "$pid"; then
			rc=3
			break
		fi
		if (($(_qemu_now_us) > deadline)); then
			rc=2
			break
		fi
		sleep 0.1
	done
	# Stopped by PID at once, unless the caller wants the guest kept up after OK.
	((rc == 0)) && [[ $QEMU_KEEP == 1 ]] || qemu_stop "$name"
	# The log is complete now (or holds the deciding line): report the first line that decided it.
	case $rc in
	0) line=$(grep -a -m 1 -E "$ok" "$log") ;;
	1) line=$(grep -a -m 1 -E "$bad" "$log") ;;
	*) line=$(grep -a -E "$bad|$ok" "$log" | head -n 1) ;;
	esac
	if [[ -n $line ]]; then
		QEMU_SECS=$(awk '{print $1}' <<<"$line")
		QEMU_MATCH=${line#*[0-9] }
		# A line seen after the guest stopped still decides it.
		if ((rc == 3)); then
			grep -a -q -E "$bad" <<<"$line" && rc=1 || rc=0
		fi
	else
		QEMU_SECS=$(awk -v a="${_QEMU_T0[$name]}" -v b="$(_qemu_now_us)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
	fi
	return $rc
}

qemu_boot() {
	local name=$1 secs=$2 ok=$3 bad=$4
	shift 4
	[[ ${1:-} == -- ]] && shift
	qemu_start "$name" "$@"
	qemu_watch "$name" "$secs" "$ok" "$bad"
}
