#!/bin/bash
# test-attach — bootlink-attach on this machine: its NBD handshake against a real bootlinkd,
# its errors, and (only where this kernel has an nbd driver) a real attach and detach.
#
#   1. bad command lines exit 2 with one line saying what is wrong
#   2. --probe (NBD_OPT_INFO, no kernel involved) of an image: its size, read-only,
#      multi-conn, block sizes; of a client's export: writable; the server address comes from
#      the config tree (<run>/listen/nbd, what the daemon bound) as well as from --server
#   3. an unknown export: exit 1 with the server's own message; a closed port: "connection
#      refused" naming the address; a peer that is no NBD server (HTTP) and one that says
#      nothing (times out after --connect-timeout), one whose option reply claims 4 GiB and one
#      that never ends its replies: one clear line each; bootlinkd still serves
#   4. where this kernel has no nbd driver: attach says so (after modprobe fails), and
#      --status/--detach say the module is not loaded
# A real attach on this machine is test-attach-host (where the kernel has nbd); the whole
# attach path in a guest with Debian's kernel is test-e2e-attach.
. "$(dirname "$0")/lib/common.sh"
need_bootlink
need python3
ATTACH=$BUILD/bootlink-attach
[[ -x $ATTACH ]] || skip "$ATTACH is not built (run make)"

# expect_fail STATUS PATTERN ARGS...: bootlink-attach ARGS exits STATUS and its stderr has a
# line matching the extended regex PATTERN. Leaves stderr in OUT.
expect_fail() {
	local want=$1 pat=$2 rc=0
	shift 2
	OUT=$(timeout 60 "$ATTACH" "$@" 2>&1 >/dev/null) || rc=$?
	((rc == want)) || fail "bootlink-attach $*: exit $rc, expected $want; said: $OUT"
	grep -Eq -- "$pat" <<<"$OUT" || fail "bootlink-attach $*: expected a line matching '$pat', got: $OUT"
}

# --- 1. command lines -------------------------------------------------------------------------
expect_fail 2 'give the EXPORT' 
expect_fail 2 '--conns .0.: expected a number 1-16' --conns 0 img
expect_fail 2 '--block-size 1000: must be a power of two' --block-size 1000 img
expect_fail 2 '--block-size .8192.: expected a number 512-4096' --block-size 8192 img
expect_fail 2 "'/dev/sda' is not an nbd device" img /dev/sda
expect_fail 2 '--probe takes one EXPORT' --probe img /dev/nbd0
expect_fail 2 '--reconfigure takes EXPORT /dev/nbdN' --reconfigure img
expect_fail 2 '--detach takes one device' --detach
expect_fail 2 'at most one of' --detach --status /dev/nbd0
expect_fail 2 "--server 'h:p:q'" --server h:p:q --probe img
expect_fail 2 "unknown option '--bogus'" --bogus img
expect_fail 2 'needs a value' img --server
"$ATTACH" --help | grep -q -- '--reconfigure' || fail "--help does not describe --reconfigure"
ok "bad command lines: exit 2 with one line each"

# --- 2. probe -----------------------------------------------------------------------------------
need mke2fs
mkdir -p "$T/files"
echo "bootlink-attach host test $$" >"$T/files/hello.txt"
mke2fs -q -t ext4 -d "$T/files" "$T/fs.img" 8M
MAC=52:54:00:a7:00:01
ctl image add fsimg "$T/fs.img" >/dev/null
ctl client add "$MAC" --image fsimg >/dev/null
start_daemon
size=$(stat -c %s "$T/fs.img")

# probe_ok ARGS...: --probe succeeds; its output in OUT.
probe_ok() {
	OUT=$(timeout 60 "$ATTACH" --probe "$@" 2>&1) || fail "bootlink-attach --probe $*: failed: $OUT"
}
probe_ok --server "$NBD_ADDR" --conns 4 fsimg
grep -qx "size: $size" <<<"$OUT" || fail "probe fsimg: expected size $size: $OUT"
grep -Eq '^flags: 0x[0-9a-f]{4} .*read-only' <<<"$OUT" || fail "probe fsimg: not read-only: $OUT"
grep -Eq '^flags: .*multi-conn' <<<"$OUT" || fail "probe fsimg: no multi-conn: $OUT"
grep -Eq '^block sizes: minimum [0-9]+, preferred [0-9]+, maximum [0-9]+$' <<<"$OUT" ||
	fail "probe fsimg: no block sizes: $OUT"
printf '    %s\n' "${OUT//$'\n'/$'\n    '}"
probe_ok -c "$T/conf" "client/$MAC"
grep -qx "size: $size" <<<"$OUT" || fail "probe client/$MAC: expected size $size: $OUT"
grep -q 'read-only' <<<"$OUT" && fail "probe client/$MAC: a client's export should be writable: $OUT"
grep -qx "server: $NBD_ADDR" <<<"$OUT" || fail "probe -c: expected the daemon's bound address $NBD_ADDR: $OUT"
ok "probe: image read-only with multi-conn and block sizes, client export writable, address from the config tree"

# --- 3. errors from peers ----------------------------------------------------------------------
expect_fail 1 "export 'nosuch': unknown export: .+" --probe -s "$NBD_ADDR" nosuch
echo "    $OUT"
# A port nothing listens on: bind one, then close it.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail 1 "cannot connect to bootlinkd at 127.0.0.1:$closed: Connection refused" --probe -s "127.0.0.1:$closed" fsimg
echo "    $OUT"
# Peers that are not NBD servers: one answers like a web server, one says nothing.
cat >"$T/peer.py" <<'EOF'
import socket, struct, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
mode = sys.argv[1]
def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            break
        b += d
    return b
end = time.time() + 60
while time.time() < end:
    s.settimeout(end - time.time())
    try:
        c, _ = s.accept()
    except OSError:
        break
    if mode == "http":
        c.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    elif mode in ("huge", "endless"):
        # a valid greeting, then option replies no server should send
        c.sendall(b"NBDMAGIC" + b"IHAVEOPT" + struct.pack(">H", 3))
        c.settimeout(10)
        recvn(c, 4)
        hdr = recvn(c, 16)
        opt, olen = struct.unpack(">II", hdr[8:16])
        recvn(c, olen)
        rep = lambda typ, data: struct.pack(">QIII", 0x3e889045565a9, opt, typ, len(data)) + data
        try:
            if mode == "huge":
                c.sendall(struct.pack(">QIII", 0x3e889045565a9, opt, 3, 0xFFFFFFFF))
            else:
                for _ in range(100):
                    c.sendall(rep(3, struct.pack(">HQH", 0, 4096, 1)))
        except OSError:
            pass
        # Close only once the client has: unread data here would make our close a reset,
        # which can throw away what we sent before the client reads it.
        try:
            c.shutdown(socket.SHUT_WR)
            while c.recv(4096):
                pass
        except OSError:
            pass
    else:
        time.sleep(5)
    c.close()
EOF
for mode in http silent huge endless; do
	python3 "$T/peer.py" $mode >"$T/$mode.port" &
	_PIDS+=($!)
	wait_for 10 test -s "$T/$mode.port" || fail "the $mode peer did not start"
done
expect_fail 1 'not a newstyle NBD server' --probe -s "127.0.0.1:$(<"$T/http.port")" fsimg
echo "    $OUT"
t0=$SECONDS
expect_fail 1 'no NBD greeting from the server: (Connection timed out|Resource temporarily unavailable)' \
	--probe --connect-timeout 1 -s "127.0.0.1:$(<"$T/silent.port")" fsimg
echo "    $OUT"
((SECONDS - t0 <= 4)) || fail "a silent server took $((SECONDS - t0)) s to time out (--connect-timeout 1)"
expect_fail 1 'server sent an option reply of 4294967295 bytes \(at most 65536\)' --probe -s "127.0.0.1:$(<"$T/huge.port")" fsimg
echo "    $OUT"
expect_fail 1 'server sent more than 64 replies to NBD_OPT_INFO' --probe -s "127.0.0.1:$(<"$T/endless.port")" fsimg
echo "    $OUT"
probe_ok -s "$NBD_ADDR" fsimg
assert_daemon_alive
ok "peer errors: unknown export (server's message), refused, not NBD, silent, oversized and endless replies: one line each"

# --- 4. the kernel side -------------------------------------------------------------------------
if ! modprobe -n nbd >/dev/null 2>&1 && [[ ! -e /sys/module/nbd ]]; then
	expect_fail 1 'the kernel has no nbd driver|modprobe could not be run' -s "$NBD_ADDR" fsimg
	echo "    $OUT" | tail -n 1
	expect_fail 1 'the nbd kernel module is not loaded' --no-modprobe -s "$NBD_ADDR" fsimg
	expect_fail 1 'the nbd kernel module is not loaded' --status
	expect_fail 1 'the nbd kernel module is not loaded' --detach /dev/nbd0
	ok "no nbd driver here: attach, --status and --detach say so"
fi
stop_daemon
ok "done (a real attach: test-attach-host where this kernel has nbd, test-e2e-attach in a guest)"
