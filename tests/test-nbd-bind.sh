#!/bin/bash
# test-nbd-bind — nbd/bind_client_address: a client's NBD export answers only
# the address its boot came from; image exports stay read-only for everyone.
# Loopback addresses 127.0.0.2.. are distinct sources (tests/nbd/bind.py binds
# its socket to one before connecting):
#  - client A's first connection from 127.0.0.2 binds its boot there: it
#    writes and reads; from 127.0.0.3 INFO and GO of A's export fail with
#    NBD_REP_ERR_POLICY naming both addresses (negotiation goes on), LIST
#    does not show A but shows the unbound client B and the image,
#    NBD_OPT_EXPORT_NAME is closed; the log says why; 127.0.0.3 reads the
#    image export and its writes there get EPERM; 127.0.0.2 still reads A's data;
#  - A's iPXE script fetched from 127.0.0.4 (HTTP): the next boot belongs to
#    127.0.0.4: 127.0.0.2 is refused, 127.0.0.4 connects and starts boot 2;
#  - nbd/bind_client_address=0 (live): 127.0.0.3 reaches A's disk.
. "$(dirname "$0")/lib/common.sh"
need python3
need_bootlink
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null ||
	skip "cannot bind to 127.0.0.2 here"

A=52:54:00:b1:00:01
B=52:54:00:b1:00:02
mkimage "$T/img" 1M
ctl image add img "$T/img"
ctl client add "$A" --image img --mode ephemeral
ctl client add "$B" --image img --mode persistent
start_daemon overlay/dirs=overlays overlay/boot_gap_s=3600 runtime/interval_ms=100
export NBD_HOST NBD_PORT
bind() { timeout 30 python3 "$TESTS/nbd/bind.py" "$@"; }

bind 127.0.0.2 "client/$A" go w:0:7 r:0:7
ok "client A's first connection, from 127.0.0.2, writes and reads"
bind 127.0.0.3 "client/$A" "refused:answers only 127.0.0.2" "unlisted:client/$A" "list:client/$B" list:img
bind 127.0.0.3 img go eperm:0
bind 127.0.0.3 "client/$A" oldgo
grep -q "option 7 refused: export 'client/$A': client $A's disk answers only 127.0.0.2, the address it booted from (nbd/bind_client_address); this connection comes from 127.0.0.3" \
	"$T/daemon.log" || fail "no log line naming client A and both addresses"
grep -q "NBD_OPT_EXPORT_NAME 'client/$A': client $A's disk answers only 127.0.0.2" "$T/daemon.log" ||
	fail "no log line for the refused NBD_OPT_EXPORT_NAME"
bind 127.0.0.2 "client/$A" go r:0:7
ok "from 127.0.0.3: A's export refused (INFO, GO: POLICY; EXPORT_NAME: closed), not listed; the image read-only; 127.0.0.2 still served"

# An iPXE script fetch starts the next boot and says where it comes from.
export HTTP_HOST HTTP_PORT
timeout 30 python3 - "$A" <<'PY'
import http.client, os, sys
c = http.client.HTTPConnection(os.environ["HTTP_HOST"], int(os.environ["HTTP_PORT"]), timeout=20,
                               source_address=("127.0.0.4", 0))
c.request("GET", "/ipxe?mac=" + sys.argv[1])
r = c.getresponse()
body = r.read().decode()
assert r.status == 200 and "sanboot" in body, f"{r.status}: {body[:200]}"
PY
bind 127.0.0.2 "client/$A" "refused:answers only 127.0.0.4"
bind 127.0.0.4 "client/$A" go w:4096:9 r:4096:9
wait_for 10 eval '[[ $(cat "$RUN/clients/$A/boots" 2>/dev/null) == 2 ]]' ||
	fail "client A's boots is $(cat "$RUN/clients/$A/boots" 2>/dev/null), expected 2 after the iPXE fetch"
ok "after A's iPXE script was fetched from 127.0.0.4: 127.0.0.2 refused, 127.0.0.4 starts boot 2"

conf_set nbd/bind_client_address 0
wait_for 10 grep -q "config: nbd/bind_client_address changed: 1 -> 0" "$T/daemon.log" ||
	fail "nbd/bind_client_address not applied"
bind 127.0.0.3 "client/$A" "list:client/$A" go r:4096:9
ok "nbd/bind_client_address=0: any address reaches A's disk"
stop_daemon
