#!/bin/bash
# test-http.sh — the iPXE script endpoint (daemon/http.c, daemon/ipxe.c) with
# curl and hostile raw-socket clients: the right script per MAC, a clear
# screen for unknown MACs, nothing a client sends is echoed into a script,
# bad requests get their status, slow or oversized heads are cut off.
source "$(dirname "$0")/lib/common.sh"
need curl python3

mkimage "$T/img" 1M
start_daemon limits/handshake_timeout_s=2
ctl image add win "$T/img" >/dev/null
ctl client add 52:54:00:aa:00:01 --image win --name PC001 >/dev/null
ctl client add 52:54:00:aa:00:02 --name LOST --image win >/dev/null
ctl image rm win --force >/dev/null 2>&1 || true
ctl image add win "$T/img" >/dev/null
ctl client link 52:54:00:aa:00:01 win >/dev/null
U="http://$HTTP_ADDR"
# echo_text SCRIPT: the text of its echo lines joined (screens are wrapped to fit 80 columns).
echo_text() { sed -n 's/^echo *//p' <<<"$1" | tr '\n' ' ' | tr -s ' '; }
wait_for 10 sh -c "curl -s '$U/ipxe?mac=52-54-00-aa-00-01' | grep -q sanboot" || fail "no sanboot script for a linked client"

s=$(timeout 10 curl -sf "$U/ipxe?mac=52%3A54%3A00%3AAA%3A00%3A01&uuid=x&serial=a%24%7Bb%7D&ip=1.2.3.4")
grep -q '^#!ipxe' <<<"$s" || fail "script does not start with #!ipxe: $s"
grep -qx "sanboot --drive 0x80 iscsi:127.0.0.1::$ISCSI_PORT::iqn.2026-11.org.bootlink:client.525400aa0001 || goto failed" <<<"$s" ||
	fail "wrong sanboot line (the default: drive 0x80, no --keep): $s"
grep -qx "set initiator-iqn iqn.2026-11.org.bootlink:initiator.525400aa0001" <<<"$s" || fail "no initiator-iqn: $s"
grep -q 'PC001' <<<"$s" || fail "the client's name is missing: $s"
! grep -q 'a\${b}' <<<"$s" || fail "the serial was echoed into the script: $s"
ok "linked client: sanboot of its own target, its name shown, parameters not echoed"

# test_gt CMD N: CMD prints a number greater than N.
test_gt() { (($($1) > $2)); }
# The fetches above are boots: an event each (kind boot) and the PC's last_seen, written by the
# main thread soon after.
boot_recorded() {
	ctl events 52:54:00:aa:00:01 --limit 0 | grep -q 'boot  *boot script: sanboot, image win' &&
		ctl client list --json | python3 -c 'import json, sys
c = [c for c in json.load(sys.stdin)["clients"] if c["mac"] == "52:54:00:aa:00:01"][0]
sys.exit(0 if c["last_seen"] > 0 else 1)'
}
wait_for 10 boot_recorded || fail "no boot event / last_seen for 52:54:00:aa:00:01: $(ctl events 52:54:00:aa:00:01)"
ok "each boot script served is recorded: a boot event and the PC's last_seen"

s=$(timeout 10 curl -s -H 'Host: 10.0.2.2:8080' "$U/ipxe?mac=52-54-00-aa-00-01")
grep -q '^sanboot .*iscsi:10.0.2.2::' <<<"$s" || fail "the Host header's address is not used: $s"
ok "the script names the address the client reached us at (Host)"

# Per-client SAN options (bootlinkctl client set --keep-san/--drive) reach the sanboot line.
ctl client add 52:54:00:aa:00:03 --image win --name SAN3 >/dev/null
ctl client set 52:54:00:aa:00:03 --keep-san 1 --drive 0x81 >/dev/null
SAN3="sanboot --drive 0x81 --keep iscsi:127.0.0.1::$ISCSI_PORT::iqn.2026-11.org.bootlink:client.525400aa0003 || goto failed"
wait_for 10 sh -c "curl -s '$U/ipxe?mac=52-54-00-aa-00-03' | grep -qxF '$SAN3'" ||
	fail "client set --keep-san 1 --drive 0x81: not in the script: $(curl -s "$U/ipxe?mac=52-54-00-aa-00-03")"
ctl client set 52:54:00:aa:00:03 --keep-san 0 --drive 0x80 >/dev/null
wait_for 10 sh -c "curl -s '$U/ipxe?mac=52-54-00-aa-00-03' | grep -qx 'sanboot --drive 0x80 iscsi:.* || goto failed'" ||
	fail "client set --keep-san 0 --drive 0x80: not in the script: $(curl -s "$U/ipxe?mac=52-54-00-aa-00-03")"
ok "client set --keep-san 1 --drive 0x81: sanboot --drive 0x81 --keep; back to 0/0x80: no --keep"

s=$(timeout 10 curl -sf "$U/ipxe?mac=52-54-00-aa-00-09")
grep -q 'This PC (MAC 52:54:00:aa:00:09) is not linked to an image' <<<"$(echo_text "$s")" &&
	grep -q 'bootlinkctl client add 52:54:00:aa:00:09 --image NAME' <<<"$(echo_text "$s")" && grep -q '^sleep 10' <<<"$s" &&
	grep -q '^chain --replace' <<<"$s" || fail "unknown MAC: no clear screen and retry: $s"
! grep -q '^sanboot' <<<"$s" || fail "unknown MAC got a sanboot line"
ok "unknown MAC: a screen saying how to link it, then a retry"
# A PC that cannot boot gets no boot event: a later boot's event comes after the fetch above.
nboots() { ctl events 52:54:00:aa:00:01 --limit 0 | grep -c 'boot  *boot script' || true; }
before=$(nboots)
timeout 10 curl -sf "$U/ipxe?mac=52-54-00-aa-00-01" >/dev/null
wait_for 10 test_gt nboots "$before" || fail "the boot event of a second fetch is not recorded"
! ctl events --limit 0 | grep -q '52:54:00:aa:00:09' || fail "an unknown MAC got an event: $(ctl events)"
ok "an unknown MAC gets no boot event"

s=$(timeout 10 curl -sf "$U/ipxe?mac=52-54-00-aa-00-02")
grep -q 'is not linked to an image; link it with: bootlinkctl client link 52:54:00:aa:00:02 IMAGE' <<<"$(echo_text "$s")" ||
	fail "a client without an image: no clear screen: $s"
ok "a known client without an image: a screen saying how to link it"

s=$(timeout 10 curl -sf "$U/boot.ipxe")
grep -q 'chain --replace http://127.0.0.1:[0-9]*/ipxe?mac=${net0/mac:hexhyp}' <<<"$s" && grep -q '^shell' <<<"$s" ||
	fail "boot.ipxe does not chain with the MAC and fall back to a shell: $s"
ok "boot.ipxe chains to /ipxe with the MAC, retries, falls back to a shell"

code() { timeout 10 curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ $(code "$U/ipxe?mac=52:54:00:aa:00:0%24") == 400 ]] || fail "a MAC with iPXE metacharacters is not refused"
[[ $(code "$U/ipxe?mac=52:54:00:aa:00:01%0aecho%20pwned") == 400 ]] || fail "a MAC with a newline is not refused"
[[ $(code "$U/ipxe") == 400 ]] || fail "no MAC: not 400"
[[ $(code -X POST "$U/ipxe?mac=52-54-00-aa-00-01") == 405 ]] || fail "POST is not 405"
[[ $(code "$U/../../etc/passwd") == 404 ]] || fail "a path outside the known ones is not 404"
[[ $(code "$U/ipxe?mac=$(head -c 3000 /dev/zero | tr '\0' a)") == 414 ]] || fail "a 3000-byte query is not 414"
[[ $(code -I "$U/boot.ipxe") == 200 ]] || fail "HEAD is not answered"
ok "bad requests: metacharacters/newline in the MAC 400, POST 405, unknown path 404, long query 414, HEAD 200"

python3 - "$HTTP_HOST" "$HTTP_PORT" <<'PY' || fail "raw-socket checks failed"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def talk(data, wait=5):
    s = socket.create_connection((host, port), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b: break
            out += b
    except socket.timeout:
        out += b"<timeout>"
    s.close()
    return out
r = talk(b"GET /ipxe?mac=52-54-00-aa-00-01 HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n")
assert r.startswith(b"HTTP/1.1 431"), r[:80]
r = talk(b"\x00\xff garbage\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400"), r[:80]
r = talk(b"GET /boot.ipxe HTTP/9.9\r\n\r\n")
assert r.startswith(b"HTTP/1.1 505"), r[:80]
# slowloris: a head that never ends is cut off after limits/handshake_timeout_s (2 s)
t = time.time()
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"GET /boot.ipxe HTTP/1.1\r\n")
got = s.recv(100)
assert got == b"" and time.time() - t < 8, (got, time.time() - t)
print("raw: 431 for a huge head, 400 for garbage, 505 for HTTP/9.9, a stalled head closed in %.1f s" % (time.time() - t))
PY
ok "raw clients: oversized head 431, garbage 400, bad version 505, slowloris cut off"
assert_daemon_alive
stop_daemon
ok "done"
