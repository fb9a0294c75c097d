#!/bin/bash
# test-nbd-tls — NBD over TLS (nbd/tls, docs/tls.md) with real peers:
# libnbd (nbdinfo, nbdcopy) with a PSK file and with X.509 certificates
# made here by certtool, qemu-img with its tls-creds-psk object, Python's
# ssl module, and raw clients (tests/nbd/tls.py) doing what no real client
# does. Checks: data read and written through TLS is byte-identical; a wrong
# key, an unknown PSK user, a missing client certificate and garbage instead
# of a handshake are refused with a log line naming the client, and the
# daemon keeps serving; nbd/tls=on also serves plaintext; nbd/tls=require
# refuses every option before STARTTLS with ERR_TLS_REQD; a bad TLS
# configuration stops bootlinkd at start with a message naming the fault.
. "$(dirname "$0")/lib/common.sh"
need nbdinfo nbdcopy python3 certtool
need_bootlink

MAC=52:54:00:aa:bb:07
mkimage "$T/alpha.img" 5M+512
mkimage "$T/new.img" 5M+512
ctl image add alpha "$T/alpha.img"
ctl client add "$MAC" --image alpha

# PSK files in the format of psktool, qemu and nbdkit: one "user:hexkey" line.
hexkey() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
mkdir -p "$T/psk" "$T/qpsk"
echo "alice:$(hexkey)" >"$T/psk/keys.psk"
echo "carol:$(hexkey)" >>"$T/psk/keys.psk"
chmod 600 "$T/psk/keys.psk"
grep '^alice:' "$T/psk/keys.psk" >"$T/alice.psk"
echo "alice:$(hexkey)" >"$T/wrong.psk"
echo "bob:$(hexkey)" >"$T/bob.psk"
cp "$T/alice.psk" "$T/qpsk/keys.psk"   # qemu's tls-creds-psk reads DIR/keys.psk

psk_uri() { echo "nbds://alice@$NBD_HOST:$NBD_PORT/$1?tls-psk-file=${2:-$T/alice.psk}"; }

# log_has TEXT: the daemon log has a line with TEXT (fixed string).
log_has() { grep -qF -- "$1" "$T/daemon.log"; }

# refused WHAT URI...: nbdinfo --size must fail; its stderr in $T/refused.err.
refused() {
	local what=$1
	shift
	if timeout 30 nbdinfo --size "$@" >/dev/null 2>"$T/refused.err"; then
		fail "$what: nbdinfo connected"
	fi
	echo "  nbdinfo: $(head -c 300 "$T/refused.err")"
}

# still_serving AFTER: the daemon runs and a TLS client is served.
still_serving() {
	assert_daemon_alive "after $1"
	local size
	size=$(timeout 30 nbdinfo --size "$(psk_uri alpha)") || fail "no TLS client is served after $1"
	[[ $size == "$(stat -c %s "$T/alpha.img")" ]] || fail "size $size after $1"
}

export EXPORT=alpha EXPORT_FILE=$T/alpha.img HANDSHAKE_TIMEOUT=3
tlspy() { NBD_HOST=$NBD_HOST NBD_PORT=$NBD_PORT timeout 60 python3 "$TESTS/nbd/tls.py" "$@"; }

# ---------------------------------------------------------------------------
# nbd/tls = on, PSK: TLS at the client's choice
start_daemon nbd/tls=on nbd/tls_psk_file="$T/psk/keys.psk" limits/handshake_timeout_s=3

size=$(timeout 30 nbdinfo --size "$(psk_uri alpha)") || fail "nbdinfo over TLS (PSK) failed"
[[ $size == "$(stat -c %s "$T/alpha.img")" ]] || fail "size over TLS: $size"
wait_for 5 log_has "TLS established: " || fail "no 'TLS established' line in the daemon log"
grep -F "TLS established: " "$T/daemon.log" | head -n 1
log_has "PSK user 'alice'" || fail "the TLS log line does not name the PSK user"
ok "nbdinfo over TLS with a PSK: size right, log names the PSK user"

timeout 120 nbdcopy "$(psk_uri alpha)" "$T/copy.img" || fail "nbdcopy from nbds:// failed"
cmp "$T/alpha.img" "$T/copy.img" || fail "data read over TLS differs from the image"
ok "nbdcopy over TLS: $(stat -c %s "$T/copy.img") bytes byte-identical to the image"

# Writes through TLS (large requests: the decrypted rx buffer grows), read back.
timeout 120 nbdcopy "$T/new.img" "$(psk_uri "client/$MAC")" || fail "nbdcopy to the client export over TLS failed"
timeout 120 nbdcopy "$(psk_uri "client/$MAC")" "$T/back.img" || fail "reading the client export back failed"
cmp "$T/new.img" "$T/back.img" || fail "data written over TLS does not read back the same"
ok "nbdcopy writes over TLS read back byte-identical"

timeout 30 nbdinfo --list "nbds://alice@$NBD_HOST:$NBD_PORT/?tls-psk-file=$T/alice.psk" >"$T/list.out" ||
	fail "nbdinfo --list over TLS failed"
grep -qF 'export="alpha"' "$T/list.out" || fail "alpha not listed over TLS"
ok "NBD_OPT_LIST over TLS"

refused "a wrong PSK" "$(psk_uri alpha "$T/wrong.psk")"
wait_for 5 log_has "TLS handshake failed: PSK user 'alice'" || fail "no log line for the wrong PSK"
grep -F "TLS handshake failed: PSK user 'alice'" "$T/daemon.log" | tail -n 1
grep -F "TLS handshake failed: PSK user 'alice'" "$T/daemon.log" | grep -qE '\[127\.0\.0\.1:[0-9]+ #[0-9]+\]' ||
	fail "the failed-handshake log line does not name the client"
still_serving "a wrong PSK"
ok "a wrong PSK is refused, logged with the client's address"

refused "an unknown PSK user" "nbds://bob@$NBD_HOST:$NBD_PORT/alpha?tls-psk-file=$T/bob.psk"
wait_for 5 log_has "unknown PSK user 'bob'" || fail "no log line for the unknown PSK user"
still_serving "an unknown PSK user"
ok "an unknown PSK user is refused and logged"

size=$(timeout 30 nbdinfo --size "$(nbd_uri alpha)") || fail "plaintext nbd:// refused under nbd/tls=on"
[[ $size == "$(stat -c %s "$T/alpha.img")" ]] || fail "plaintext size $size"
ok "plaintext nbd:// still served under nbd/tls=on"

for c in starttls_data garbage pipelined stall; do
	tlspy "$c" || fail "raw TLS case $c"
	still_serving "raw case $c"
done
ok "STARTTLS with data, garbage, pipelined options, a stalled handshake: refused or closed, daemon serving"

# qemu as another TLS peer: qemu-img compare through tls-creds-psk.
if command -v qemu-img >/dev/null; then
	timeout 120 qemu-img compare --object "tls-creds-psk,id=tls0,endpoint=client,dir=$T/qpsk,username=alice" \
		--image-opts "driver=nbd,server.type=inet,server.host=$NBD_HOST,server.port=$NBD_PORT,export=alpha,tls-creds=tls0" \
		"driver=raw,file.filename=$T/alpha.img" || fail "qemu-img compare over TLS (PSK) failed"
	ok "qemu-img compare over TLS (PSK): identical"
else
	echo "note: qemu-img is not installed; the qemu peer is not tried"
fi
stop_daemon

# ---------------------------------------------------------------------------
# nbd/tls = require, X.509 (client certificates verified) and PSK
pki=$T/pki cli=$T/cli nocli=$T/nocli
mkdir -p "$pki" "$cli" "$nocli"
certtool --generate-privkey --key-type=ecdsa --outfile "$pki/ca-key.pem" 2>/dev/null
printf 'cn = bootlink test CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$T/ca.info"
certtool --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$T/ca.info" \
	--outfile "$pki/ca-cert.pem" 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --outfile "$pki/server-key.pem" 2>/dev/null
printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nsigning_key\nexpiration_days = 2\n' \
	>"$T/server.info"
certtool --generate-certificate --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
	--load-privkey "$pki/server-key.pem" --template "$T/server.info" --outfile "$pki/server-cert.pem" 2>/dev/null
certtool --generate-privkey --key-type=ecdsa --outfile "$cli/client-key.pem" 2>/dev/null
printf 'cn = pc-07\ntls_www_client\nsigning_key\nexpiration_days = 2\n' >"$T/client.info"
certtool --generate-certificate --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
	--load-privkey "$cli/client-key.pem" --template "$T/client.info" --outfile "$cli/client-cert.pem" 2>/dev/null
cp "$pki/ca-cert.pem" "$cli/"
cp "$pki/ca-cert.pem" "$nocli/"
rm "$pki/ca-key.pem"

start_daemon nbd/tls=require nbd/tls_cert_dir="$pki" nbd/tls_verify_peer=1

refused "plaintext nbd:// under nbd/tls=require" "$(nbd_uri alpha)"
grep -qi "requires TLS" "$T/refused.err" || fail "nbdinfo's error does not say the server requires TLS"
wait_for 5 log_has "TLS is required: send NBD_OPT_STARTTLS first" || fail "no log line for the refused option"
ok "plaintext nbd:// refused under require, with the TLS-required error"

for c in require_refuses require_export_name; do
	tlspy "$c" || fail "raw TLS case $c"
	assert_daemon_alive "raw case $c"
done
ok "require: LIST/INFO/GO/STRUCTURED_REPLY/LIST_META_CONTEXT get ERR_TLS_REQD, EXPORT_NAME closes"

x509_uri() { echo "nbds://$NBD_HOST:$NBD_PORT/$1?tls-certificates=${2:-$cli}"; }
timeout 120 nbdcopy "$(x509_uri alpha)" "$T/copy2.img" || fail "nbdcopy over TLS (X.509) failed"
cmp "$T/alpha.img" "$T/copy2.img" || fail "data read over TLS (X.509) differs from the image"
wait_for 5 log_has "client certificate 'pc-07' verified" || fail "the log does not name the client certificate"
ok "nbdcopy over TLS with X.509 certificates: byte-identical, client certificate 'pc-07' verified"

refused "no client certificate" "$(x509_uri alpha "$nocli")"
wait_for 5 log_has "TLS handshake failed: " || fail "no log line for the missing client certificate"
grep -F "TLS handshake failed: " "$T/daemon.log" | tail -n 1
assert_daemon_alive "a client without a certificate"
ok "a client without a certificate is refused under nbd/tls_verify_peer=1"

TLS_CA=$cli/ca-cert.pem TLS_CLIENT_CERT=$cli/client-cert.pem TLS_CLIENT_KEY=$cli/client-key.pem \
	tlspy x509_inside || fail "raw TLS case x509_inside"
ok "Python ssl peer: STARTTLS inside TLS refused, LIST/GO/reads inside TLS, close_notify after DISC"
stop_daemon

# PSK and X.509 together, without client certificates.
start_daemon nbd/tls_psk_file="$T/psk/keys.psk" nbd/tls_verify_peer=0
size=$(timeout 30 nbdinfo --size "$(psk_uri alpha)") || fail "PSK next to X.509 failed"
size=$(timeout 30 nbdinfo --size "$(x509_uri alpha "$nocli")") || fail "X.509 without a client certificate failed"
ok "PSK and X.509 on one server; no client certificate needed with nbd/tls_verify_peer=0"
stop_daemon

# ---------------------------------------------------------------------------
# Bad TLS configuration: bootlinkd stops at start, saying why.
bad_start() {
	local what=$1 want=$2 st=0
	timeout 20 "$BUILD/bootlinkd" -c "$T/conf" >"$T/bad.out" 2>"$T/bad.err" || st=$?
	((st == 1)) || fail "$what: bootlinkd exited with status $st, expected 1"
	grep -qF -- "$want" "$T/bad.err" || { cat "$T/bad.err"; fail "$what: the error does not say '$want'"; }
	echo "  $(grep -F -- "$want" "$T/bad.err" | head -n 1)"
}
conf_set nbd/tls maybe
bad_start "nbd/tls = maybe" "one of off, on, require"
conf_set nbd/tls require
rm -f "$T/conf/nbd/tls_psk_file" "$T/conf/nbd/tls_cert_dir"
bad_start "require without credentials" "neither nbd/tls_psk_file nor nbd/tls_cert_dir"
printf 'alice:00ff\nbob:xyz1\n' >"$T/bad.psk"
conf_set nbd/tls_psk_file "$T/bad.psk"
bad_start "a bad PSK file" "line 2"
conf_set nbd/tls_psk_file "$T/nosuch.psk"
bad_start "a missing PSK file" "$T/nosuch.psk"
rm -f "$T/conf/nbd/tls_psk_file"
conf_set nbd/tls_cert_dir "$nocli"
bad_start "a certificate directory without server-cert.pem" "server-cert.pem"
ok "bad TLS settings stop bootlinkd at start with a message naming the fault"
ok "done"
