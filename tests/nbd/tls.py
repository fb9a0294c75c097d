#!/usr/bin/env python3
"""tls.py CASE... — raw-socket clients of bootlinkd's NBD TLS (tests/test-nbd-tls.sh).

Environment: NBD_HOST, NBD_PORT, EXPORT (an image export), EXPORT_FILE (its
image file), and for the X.509 case TLS_CA (the CA certificate) and
optionally TLS_CLIENT_CERT / TLS_CLIENT_KEY. libnbd is the real TLS peer
of the test; these cases do what it never does (garbage instead of a TLS
handshake, options before TLS under nbd/tls=require, STARTTLS twice).
"""

import os
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawnbd as R  # noqa: E402

HOST = os.environ["NBD_HOST"]
PORT = int(os.environ["NBD_PORT"])
EXPORT = os.environ["EXPORT"]
IMAGE = open(os.environ["EXPORT_FILE"], "rb").read()


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}")
        sys.exit(1)


def connect():
    c = R.Raw(HOST, PORT)
    c.handshake()
    return c


def go_data(name):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", 0)


def case_require_refuses():
    """nbd/tls=require: LIST, INFO, GO, STRUCTURED_REPLY before STARTTLS get
    ERR_TLS_REQD; ABORT is still answered."""
    c = connect()
    for opt, data in ((R.OPT_LIST, b""), (R.OPT_INFO, go_data(EXPORT)), (R.OPT_GO, go_data(EXPORT)),
                      (R.OPT_STRUCTURED_REPLY, b""), (R.OPT_LIST_META_CONTEXT, b"")):
        _, final = c.option(opt, data)
        check(final == R.REP_ERR_TLS_REQD, f"option {opt} before TLS: {final:#x}, expected ERR_TLS_REQD")
    _, final = c.option(R.OPT_ABORT)
    check(final == R.REP_ACK, f"ABORT before TLS: {final:#x}, expected ACK")
    check(c.wait_closed(10), "server did not close after ABORT")
    print("ok: options before STARTTLS refused with ERR_TLS_REQD, ABORT answered")


def case_require_export_name():
    """nbd/tls=require: EXPORT_NAME before TLS cannot carry an error: closed."""
    c = connect()
    c.send_option(R.OPT_EXPORT_NAME, EXPORT.encode())
    check(c.wait_closed(10), "EXPORT_NAME before TLS under require: connection not closed")
    print("ok: EXPORT_NAME before STARTTLS closes the connection")


def case_starttls_data():
    """STARTTLS with data is malformed: ERR_INVALID, and haggling goes on in plaintext."""
    c = connect()
    _, final = c.option(R.OPT_STARTTLS, b"xx")
    check(final == R.REP_ERR_INVALID, f"STARTTLS with data: {final:#x}, expected ERR_INVALID")
    names = c.list_exports()
    check(EXPORT in names, f"{EXPORT!r} not in {names} after a refused STARTTLS")
    print("ok: STARTTLS with data -> ERR_INVALID, plaintext haggling continues")


def case_garbage():
    """ACKed STARTTLS followed by bytes that are no TLS ClientHello: closed."""
    c = connect()
    _, final = c.option(R.OPT_STARTTLS)
    check(final == R.REP_ACK, f"STARTTLS: {final:#x}, expected ACK")
    c.send(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 8)
    check(c.wait_closed(10), "garbage instead of a TLS handshake: connection not closed")
    print("ok: garbage instead of a TLS handshake closes the connection")


def case_pipelined():
    """STARTTLS and garbage in one write (before the ACK): the bytes after the
    option are TLS input, never parsed as options; closed."""
    c = R.Raw(HOST, PORT)
    c.greeting()
    c.send(struct.pack(">I", R.FLAG_FIXED_NEWSTYLE) + struct.pack(">QII", R.IHAVEOPT, R.OPT_STARTTLS, 0)
           + struct.pack(">QII", R.IHAVEOPT, R.OPT_LIST, 0))
    opt, rtype, _ = c.read_reply()
    check(opt == R.OPT_STARTTLS and rtype == R.REP_ACK, f"STARTTLS: {rtype:#x}, expected ACK")
    data, eof = b"", False
    while not eof:
        chunk, eof = c.nothing_received(10)
        if not chunk and not eof:
            break
        data += chunk
    check(eof, "a plaintext option sent after STARTTLS: connection not closed")
    check(R.OPT_REPLY_MAGIC.to_bytes(8, "big") not in data, "the option after STARTTLS was answered in plaintext")
    print("ok: an option pipelined after STARTTLS is not parsed; closed")


def case_stall():
    """ACKed STARTTLS, then silence: closed by limits/handshake_timeout_s."""
    c = connect()
    _, final = c.option(R.OPT_STARTTLS)
    check(final == R.REP_ACK, f"STARTTLS: {final:#x}, expected ACK")
    timeout = float(os.environ.get("HANDSHAKE_TIMEOUT", "30"))
    check(c.wait_closed(timeout + 10), f"silent TLS client still connected after {timeout + 10} s")
    print("ok: a TLS handshake that never comes is closed by the handshake timeout")


def case_x509_inside():
    """STARTTLS, a real TLS handshake (Python's ssl with the test CA), then
    inside TLS: STARTTLS again -> ERR_INVALID, LIST and GO work, a read
    returns the image's bytes."""
    c = connect()
    _, final = c.option(R.OPT_STARTTLS)
    check(final == R.REP_ACK, f"STARTTLS: {final:#x}, expected ACK")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.environ["TLS_CA"])
    if os.environ.get("TLS_CLIENT_CERT"):
        ctx.load_cert_chain(os.environ["TLS_CLIENT_CERT"], os.environ["TLS_CLIENT_KEY"])
    c.s = ctx.wrap_socket(c.s, server_hostname=HOST)
    _, final = c.option(R.OPT_STARTTLS)
    check(final == R.REP_ERR_INVALID, f"STARTTLS inside TLS: {final:#x}, expected ERR_INVALID")
    names = c.list_exports()
    check(EXPORT in names, f"{EXPORT!r} not in {names} (LIST inside TLS)")
    final, info = c.go(EXPORT)
    check(final == R.REP_ACK, f"GO inside TLS: {final:#x}")
    check(info["size"] == len(IMAGE), f"size {info['size']}, expected {len(IMAGE)}")
    for off, n in ((0, 4096), (12345, 100000), (len(IMAGE) - 70000, 70000)):
        c.request(R.CMD_READ, off + 1, off, n)
        ck, err, data = c.reply(n, off)
        check(err == 0 and data == IMAGE[off:off + n], f"read {off}+{n} inside TLS: error {err} or wrong data")
    c.request(R.CMD_DISC, 99)
    try:
        closed = c.wait_closed(10)
    except ssl.SSLError as e:
        closed = False
        print(f"TLS error instead of a clean close_notify after DISC: {e}")
    check(closed, "no clean close (close_notify, then EOF) after NBD_CMD_DISC inside TLS")
    print(f"ok: inside TLS ({c.s.version()}): STARTTLS again refused, LIST, GO and reads work")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()["case_" + name]()
