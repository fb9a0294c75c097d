#!/usr/bin/env python3
"""badinput.py CASE... — hostile raw-socket NBD clients (tests/test-nbd-badinput.sh).

Environment: NBD_HOST, NBD_PORT, EXPORT (a read-only image export),
EXPORT_FILE (its image file, to compare data), HANDSHAKE_TIMEOUT (seconds
the server allows for negotiation). Each case checks what the server
answers; the shell script checks after each case that the daemon is still
alive and that a normal client (nbdinfo) still works.
"""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawnbd import *  # noqa: E402,F401,F403
import rawnbd as R  # noqa: E402

HOST = os.environ["NBD_HOST"]
PORT = int(os.environ["NBD_PORT"])
EXPORT = os.environ["EXPORT"]
IMAGE = open(os.environ["EXPORT_FILE"], "rb").read()
SIZE = len(IMAGE)
HANDSHAKE_TIMEOUT = float(os.environ.get("HANDSHAKE_TIMEOUT", "30"))


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}")
        sys.exit(1)


def connect():
    return R.Raw(HOST, PORT)


def transmission(structured=False):
    c = connect()
    c.handshake()
    if structured:
        c.structured_reply()
    final, info = c.go(EXPORT)
    check(final == R.REP_ACK, f"NBD_OPT_GO {EXPORT!r}: reply {final:#x}")
    check(info["size"] == SIZE, f"size {info['size']} != {SIZE}")
    check(info["flags"] & R.TFLAG_READ_ONLY, "image export is not read-only")
    return c


def good_read(c, cookie, offset=0, length=4096):
    ck, err, data = c.read(cookie, offset, length)
    check(ck == cookie, f"READ: reply cookie {ck:#x}, expected {cookie:#x}")
    check(err == 0, f"READ {offset}+{length}: error {err}")
    check(data == IMAGE[offset:offset + length], f"READ {offset}+{length}: wrong data")


def expect_error(c, cookie, allowed, what):
    ck, err, _ = c.reply()
    check(ck == cookie, f"{what}: reply cookie {ck:#x}, expected {cookie:#x}")
    check(err in allowed, f"{what}: error {err}, expected one of {sorted(allowed)}")
    print(f"ok: {what} -> error {err}")


# --- negotiation -----------------------------------------------------------

def case_garbage_flags():
    """Garbage where the client flags belong: unknown flag bits -> close."""
    c = connect()
    c.greeting()
    c.send(b"\xde\xad\xbe\xef" + os.urandom(1000))
    check(c.wait_closed(10), "server did not close after garbage client flags")
    print("ok: garbage client flags -> closed")


def case_garbage_early():
    """A client speaking another protocol entirely (HTTP) -> close."""
    c = connect()
    c.send(b"GET / HTTP/1.1\r\nHost: bootlink\r\n\r\n")
    check(c.wait_closed(10), "server did not close after an HTTP request")
    print("ok: HTTP request instead of NBD -> closed")


def _expect_error_then_close(c, what, require_reply):
    got_reply = False
    try:
        opt, rtype, _ = c.read_reply()
        got_reply = True
        check(rtype & R.REP_ERR_BIT, f"{what}: reply type {rtype:#x} has no error bit")
        print(f"ok: {what} -> error reply {rtype:#x}")
    except R.Closed:
        check(not require_reply, f"{what}: closed without an error reply")
    check(c.wait_closed(10), f"{what}: server did not close the connection")
    print(f"ok: {what} -> closed ({'after an error reply' if got_reply else 'without reply'})")


def case_option_4g():
    """Option length 4 GiB - 1 (no data follows): error reply and/or close."""
    c = connect()
    c.handshake()
    c.send_option(R.OPT_LIST, length=0xFFFFFFFF)
    _expect_error_then_close(c, "option length 4 GiB", require_reply=False)


def case_option_too_long():
    """Option length 64 KiB + 1: error reply, then disconnect. Only the
    header is sent: a server that closed with our data unread would reset
    the connection, and a reset may discard its reply before we read it."""
    c = connect()
    c.handshake()
    c.send_option(R.OPT_INFO, length=64 * 1024 + 1)
    _expect_error_then_close(c, "option length 64 KiB + 1", require_reply=True)


def case_too_many_options():
    """More than 128 options in one negotiation: disconnect."""
    c = connect()
    c.handshake()
    answered = 0
    closed = False
    for i in range(300):
        try:
            c.send_option(1000 + i)
            opt, rtype, _ = c.read_reply()
        except R.Closed:
            closed = True
            break
        if i >= 128 and rtype & R.REP_ERR_BIT:
            print(f"ok: option {i + 1} refused with {rtype:#x}")
            break
        check(rtype == R.REP_ERR_UNSUP, f"unknown option {1000 + i}: reply {rtype:#x}, expected ERR_UNSUP")
        answered += 1
    if not closed:
        closed = c.wait_closed(5)
    check(closed, f"server still negotiating after {answered} options")
    check(answered == 128, f"server answered {answered} options before closing, expected 128")
    print(f"ok: closed after {answered} answered options")


def case_unknown_options():
    """Unknown option -> ERR_UNSUP; STARTTLS -> ERR_POLICY (nbd/tls is off:
    the NOTLS mode of proto.md); EXTENDED_HEADERS -> an error reply; the
    negotiation continues and GO still works."""
    c = connect()
    c.handshake()
    _, final = c.option(1000)
    check(final == R.REP_ERR_UNSUP, f"unknown option 1000: {final:#x}, expected ERR_UNSUP")
    _, final = c.option(R.OPT_STARTTLS)
    check(final == R.REP_ERR_POLICY, f"STARTTLS: {final:#x}, expected ERR_POLICY (TLS is off)")
    print(f"ok: STARTTLS -> {final:#x}")
    _, final = c.option(R.OPT_EXTENDED_HEADERS)
    check(final & R.REP_ERR_BIT, f"EXTENDED_HEADERS: {final:#x}, expected an error reply")
    print(f"ok: EXTENDED_HEADERS -> {final:#x}")
    # An option with data the server does not expect.
    _, final = c.option(R.OPT_STRUCTURED_REPLY, b"unexpected")
    check(final & R.REP_ERR_BIT, f"STRUCTURED_REPLY with data: {final:#x}, expected an error reply")
    names = c.list_exports()
    check(EXPORT in names, f"{EXPORT!r} not in the list {names}")
    final, info = c.go(EXPORT)
    check(final == R.REP_ACK, f"GO after errors: {final:#x}")
    good_read(c, 7)
    print("ok: negotiation continues after unsupported options")


def case_unknown_export():
    """GO/INFO/EXPORT_NAME for an unknown export."""
    c = connect()
    c.handshake()
    for opt in (R.OPT_INFO, R.OPT_GO):
        final, _ = c.go("no/such/export", opt=opt)
        check(final & R.REP_ERR_BIT, f"option {opt} for an unknown export: {final:#x}")
    final, _ = c.go("../../../../etc/passwd")
    check(final & R.REP_ERR_BIT, f"GO for a path-like name: {final:#x}")
    final, _ = c.go(EXPORT)
    check(final == R.REP_ACK, f"GO after errors: {final:#x}")
    good_read(c, 1)
    # NBD_OPT_EXPORT_NAME has no error reply: the server closes.
    c = connect()
    c.handshake()
    c.send_option(R.OPT_EXPORT_NAME, b"no-such-export")
    check(c.wait_closed(10), "EXPORT_NAME for an unknown export: not closed")
    print("ok: unknown exports refused, path-like names too")


def case_handshake_stall():
    """A client that connects and sends nothing, and one that stops in the
    middle of an option: closed after limits/handshake_timeout_s."""
    c1 = connect()
    c2 = connect()
    c2.handshake()
    c2.send(struct.pack(">QI", R.IHAVEOPT, R.OPT_LIST))  # half a header
    t0 = time.monotonic()
    limit = HANDSHAKE_TIMEOUT + 5
    check(c1.wait_closed(limit), f"silent client not closed within {limit:.0f} s")
    check(c2.wait_closed(max(1.0, limit - (time.monotonic() - t0))),
          f"stalled option not closed within {limit:.0f} s")
    print(f"ok: stalled negotiations closed after {time.monotonic() - t0:.1f} s")


# --- transmission ----------------------------------------------------------

def _bad_reads(structured):
    c = transmission(structured)
    tag = "structured" if structured else "simple"
    c.request(R.CMD_READ, 0xDEAD0001, 1 << 63, 4096)
    expect_error(c, 0xDEAD0001, {R.EINVAL}, f"READ at 2^63 ({tag})")
    good_read(c, 0xDEAD0002, 0, 4096)
    print(f"ok: READ after the bad one works ({tag})")
    c.request(R.CMD_READ, 0xDEAD0003, (1 << 64) - 4096, 8192)  # offset + length wraps
    expect_error(c, 0xDEAD0003, {R.EINVAL}, f"READ wrapping 2^64 ({tag})")
    c.request(R.CMD_READ, 0xDEAD0004, SIZE - 100, 4096)       # crosses the end
    expect_error(c, 0xDEAD0004, {R.EINVAL}, f"READ across the end ({tag})")
    c.request(R.CMD_READ, 0xDEAD0005, SIZE, 1)                # starts at the end
    expect_error(c, 0xDEAD0005, {R.EINVAL}, f"READ at the end ({tag})")
    c.request(R.CMD_READ, 0xDEAD0006, 0, 33 << 20)            # over 32 MiB
    expect_error(c, 0xDEAD0006, {R.EINVAL, R.EOVERFLOW}, f"READ of 33 MiB ({tag})")
    c.request(R.CMD_READ, 0xDEAD0007, 0, 0xFFFFFFFF)          # 4 GiB
    expect_error(c, 0xDEAD0007, {R.EINVAL, R.EOVERFLOW}, f"READ of 4 GiB ({tag})")
    good_read(c, 0xDEAD0008, SIZE - 1, 1)                     # the last byte
    good_read(c, 0xDEAD0009, SIZE // 2 + 1, 65536 + 3)        # unaligned
    c.request(R.CMD_DISC, 0xDEAD000A)
    check(c.wait_closed(10), "not closed after NBD_CMD_DISC")
    print(f"ok: out-of-range reads answered, connection kept ({tag})")


def case_bad_reads():
    _bad_reads(False)


def case_bad_reads_structured():
    _bad_reads(True)


def case_unknown_command():
    for structured in (False, True):
        c = transmission(structured)
        c.request(99, 0x99, 0, 4096)
        expect_error(c, 0x99, {R.EINVAL}, f"command 99 ({'structured' if structured else 'simple'})")
        c.request(R.CMD_READ, 0x100, 0, 4096, flags=0x8000)   # unknown command flag
        ck, err, data = c.reply(4096, 0)
        check(ck == 0x100, "READ with an unknown flag: wrong cookie")
        check(err in (0, R.EINVAL), f"READ with an unknown flag: error {err}")
        good_read(c, 0x101)
    print("ok: unknown command -> EINVAL, connection kept")


def case_read_only():
    """WRITE, TRIM, WRITE_ZEROES on a read-only export -> EPERM (the WRITE's
    payload is consumed); FLUSH and CACHE succeed; the image is unchanged."""
    c = transmission()
    c.request(R.CMD_WRITE, 0x201, 0, 4096, data=b"\xaa" * 4096)
    expect_error(c, 0x201, {R.EPERM}, "WRITE on a read-only export")
    good_read(c, 0x202)  # the payload was not taken for a request
    c.request(R.CMD_TRIM, 0x203, 0, 4096)
    expect_error(c, 0x203, {R.EPERM}, "TRIM on a read-only export")
    c.request(R.CMD_WRITE_ZEROES, 0x204, 0, 4096)
    expect_error(c, 0x204, {R.EPERM}, "WRITE_ZEROES on a read-only export")
    c.request(R.CMD_FLUSH, 0x205)
    ck, err, _ = c.reply()
    check(ck == 0x205 and err == 0, f"FLUSH: cookie {ck:#x} error {err}")
    c.request(R.CMD_CACHE, 0x206, 0, 65536)
    ck, err, _ = c.reply()
    check(ck == 0x206 and err == 0, f"CACHE: cookie {ck:#x} error {err}")
    good_read(c, 0x207, 0, 8192)
    check(open(os.environ["EXPORT_FILE"], "rb").read(8192) == IMAGE[:8192], "the image file changed")
    print("ok: writes refused with EPERM, FLUSH and CACHE succeed, image unchanged")


def case_pipelined():
    """64 reads in one send, replies matched by cookie (any order)."""
    c = transmission()
    reqs = {}
    batch = b""
    for i in range(64):
        off = (i * 7919 * 4096) % max(4096, SIZE - 65536)
        ln = 512 * (1 + i % 128)
        reqs[0x1000 + i] = (off, ln)
        batch += struct.pack(">IHHQQI", R.REQUEST_MAGIC, 0, R.CMD_READ, 0x1000 + i, off, ln)
    c.send(batch)
    for _ in range(64):
        magic, err, cookie = struct.unpack(">IIQ", c.recvn(16))
        check(magic == R.SIMPLE_REPLY_MAGIC, f"bad reply magic {magic:#x}")
        check(cookie in reqs, f"reply with unknown or repeated cookie {cookie:#x}")
        off, ln = reqs.pop(cookie)
        check(err == 0, f"pipelined READ {off}+{ln}: error {err}")
        check(c.recvn(ln) == IMAGE[off:off + ln], f"pipelined READ {off}+{ln}: wrong data")
    print("ok: 64 pipelined reads answered")


def case_after_disc():
    """A request after NBD_CMD_DISC gets no reply; the server closes."""
    c = transmission()
    good_read(c, 0x301)
    c.request(R.CMD_DISC, 0x302)
    try:
        c.request(R.CMD_READ, 0x303, 0, 4096)
    except R.Closed:
        pass
    data, eof = c.nothing_received(2)
    check(data == b"", f"server replied after NBD_CMD_DISC: {data[:32]!r}")
    check(eof or c.wait_closed(10), "server did not close after NBD_CMD_DISC")
    print("ok: NBD_CMD_DISC -> closed, later request not answered")


def case_bad_magic():
    """A request with a bad magic: the stream cannot be trusted -> close."""
    c = transmission()
    good_read(c, 0x401)
    c.request(R.CMD_READ, 0x402, 0, 4096, magic=0x12345678)
    check(c.wait_closed(10), "server did not close after a bad request magic")
    c = transmission()
    c.send(os.urandom(28 * 4))  # random bytes as requests
    check(c.wait_closed(10), "server did not close after random request bytes")
    print("ok: bad request magic -> closed")


def case_client_reset():
    """A client that queues reads and resets the connection (RST)."""
    for _ in range(8):
        c = transmission()
        batch = b"".join(struct.pack(">IHHQQI", R.REQUEST_MAGIC, 0, R.CMD_READ, i, 0, min(SIZE, 1 << 20))
                         for i in range(32))
        c.send(batch)
        c.abort()
    print("ok: 8 clients reset with 32 reads in flight")


CASES = {name[5:].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) < 2 or any(a not in CASES for a in sys.argv[1:]):
        print("usage: badinput.py CASE...; cases: " + " ".join(CASES))
        sys.exit(2)
    for a in sys.argv[1:]:
        CASES[a]()
