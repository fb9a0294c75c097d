"""rawnbd.py — a deliberately low-level NBD client over a plain TCP socket.

For tests that must send what no well-behaved client sends (garbage, huge
lengths, bad magic, requests after NBD_CMD_DISC). Real clients (libnbd,
qemu, fio) cover the normal protocol; this covers the hostile one. Every
wire constant is written out here (from the NBD protocol document), never
taken from the code under test.
"""

import socket
import struct
import time

NBDMAGIC = 0x4E42444D41474943          # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054          # "IHAVEOPT"
OPT_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

# Options
OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10
OPT_EXTENDED_HEADERS = 11

# Option replies
REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
REP_ERR_BIT = 1 << 31
REP_ERR_UNSUP = REP_ERR_BIT | 1
REP_ERR_POLICY = REP_ERR_BIT | 2
REP_ERR_INVALID = REP_ERR_BIT | 3
REP_ERR_PLATFORM = REP_ERR_BIT | 4
REP_ERR_TLS_REQD = REP_ERR_BIT | 5
REP_ERR_UNKNOWN = REP_ERR_BIT | 6
REP_ERR_SHUTDOWN = REP_ERR_BIT | 7
REP_ERR_BLOCK_SIZE_REQD = REP_ERR_BIT | 8
REP_ERR_TOO_BIG = REP_ERR_BIT | 9

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

# Transmission flags
TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1

# Commands
CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

# Structured reply chunk types
REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = (1 << 15) + 1
REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2

EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN = 1, 5, 12, 22, 28, 75, 95, 108


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Raw:
    def __init__(self, host, port, timeout=10.0, source=None):
        """source: the local IP to connect from (e.g. 127.0.0.2: every 127/8
        address is this host, and the server sees it as the peer)."""
        self.s = socket.create_connection((host, int(port)), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.structured = False
        self.size = None
        self.tflags = None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def abort(self):
        """Close with a TCP RST (SO_LINGER 0), as a crashed client would."""
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()

    # -- bytes -----------------------------------------------------------
    def send(self, data):
        try:
            self.s.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))

    def recvn(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.s.recv(min(n - len(buf), 1 << 20))
            except ConnectionResetError as e:
                raise Closed(str(e))
            if not chunk:
                raise Closed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def wait_closed(self, timeout=10.0):
        """True if the server closes the connection within timeout seconds,
        discarding anything it still sends; False if it is still open."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True

    def nothing_received(self, timeout=1.0):
        """Bytes received within timeout (b'' on EOF or nothing), and whether EOF was seen."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(65536)
            return data, data == b""
        except socket.timeout:
            return b"", False
        except ConnectionResetError:
            return b"", True
        finally:
            self.s.settimeout(10.0)

    # -- handshake -------------------------------------------------------
    def greeting(self):
        magic, opt, flags = struct.unpack(">QQH", self.recvn(18))
        assert magic == NBDMAGIC, f"bad server magic {magic:#x}"
        assert opt == IHAVEOPT, f"not newstyle: {opt:#x}"
        assert flags & FLAG_FIXED_NEWSTYLE, f"server does not do fixed newstyle (flags {flags:#x})"
        self.sflags = flags
        return flags

    def handshake(self):
        flags = self.greeting()
        cflags = FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)
        self.send(struct.pack(">I", cflags))
        return flags

    def send_option(self, opt, data=b"", length=None):
        """Send an option header; length defaults to len(data)."""
        if length is None:
            length = len(data)
        self.send(struct.pack(">QII", IHAVEOPT, opt, length) + data)

    def read_reply(self):
        """One option reply: (option, type, data)."""
        magic, opt, rtype, length = struct.unpack(">QIII", self.recvn(20))
        assert magic == OPT_REPLY_MAGIC, f"bad option reply magic {magic:#x}"
        assert length <= 16 << 20, f"absurd option reply length {length}"
        return opt, rtype, self.recvn(length)

    def option(self, opt, data=b""):
        """Send an option and collect replies up to the final one
        (ACK or an error). Returns (list of (type, data), final type)."""
        self.send_option(opt, data)
        replies = []
        while True:
            ropt, rtype, rdata = self.read_reply()
            assert ropt == opt, f"reply for option {ropt}, expected {opt}"
            replies.append((rtype, rdata))
            if rtype == REP_ACK or rtype & REP_ERR_BIT:
                return replies, rtype

    def list_exports(self):
        replies, final = self.option(OPT_LIST)
        assert final == REP_ACK, f"NBD_OPT_LIST failed: {final:#x}"
        names = []
        for rtype, data in replies:
            if rtype == REP_SERVER:
                (n,) = struct.unpack(">I", data[:4])
                names.append(data[4:4 + n].decode())
        return names

    def structured_reply(self):
        replies, final = self.option(OPT_STRUCTURED_REPLY)
        assert final == REP_ACK, f"NBD_OPT_STRUCTURED_REPLY refused: {final:#x}"
        self.structured = True

    def go(self, name, infos=(), opt=OPT_GO):
        """NBD_OPT_GO (or INFO): returns (final reply type, dict of infos)."""
        n = name.encode()
        data = struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos))
        data += b"".join(struct.pack(">H", i) for i in infos)
        replies, final = self.option(opt, data)
        info = {}
        for rtype, rdata in replies:
            if rtype != REP_INFO:
                continue
            (itype,) = struct.unpack(">H", rdata[:2])
            if itype == INFO_EXPORT:
                info["size"], info["flags"] = struct.unpack(">QH", rdata[2:12])
            elif itype == INFO_NAME:
                info["name"] = rdata[2:].decode()
            elif itype == INFO_DESCRIPTION:
                info["description"] = rdata[2:].decode()
            elif itype == INFO_BLOCK_SIZE:
                info["block_size"] = struct.unpack(">III", rdata[2:14])
        if final == REP_ACK and opt == OPT_GO:
            self.size, self.tflags = info["size"], info["flags"]
        return final, info

    # -- transmission ----------------------------------------------------
    def request(self, cmd, cookie, offset=0, length=0, flags=0, data=b"", magic=REQUEST_MAGIC):
        self.send(struct.pack(">IHHQQI", magic, flags, cmd, cookie, offset, length) + data)

    def reply(self, read_length=0, read_offset=0):
        """One whole reply. Returns (cookie, error, data). For a simple
        reply, read_length bytes of data follow a successful READ. For
        structured replies all chunks up to the DONE flag are collected:
        data chunks are placed into a buffer, holes are zero."""
        if not self.structured:
            magic, err, cookie = struct.unpack(">IIQ", self.recvn(16))
            assert magic == SIMPLE_REPLY_MAGIC, f"bad simple reply magic {magic:#x}"
            data = self.recvn(read_length) if err == 0 and read_length else b""
            return cookie, err, data
        buf = bytearray(read_length)
        err = 0
        cookie = None
        while True:
            magic, cflags, ctype, ck, length = struct.unpack(">IHHQI", self.recvn(20))
            assert magic == STRUCTURED_REPLY_MAGIC, f"bad structured reply magic {magic:#x}"
            assert cookie is None or ck == cookie, "chunks of two replies interleaved"
            cookie = ck
            payload = self.recvn(length)
            if ctype == REPLY_TYPE_OFFSET_DATA:
                (off,) = struct.unpack(">Q", payload[:8])
                data = payload[8:]
                assert read_offset <= off and off + len(data) <= read_offset + read_length, \
                    f"data chunk at {off}+{len(data)} outside the read {read_offset}+{read_length}"
                buf[off - read_offset:off - read_offset + len(data)] = data
            elif ctype == REPLY_TYPE_OFFSET_HOLE:
                pass  # already zero
            elif ctype & (1 << 15):
                (err,) = struct.unpack(">I", payload[:4])
            if cflags & REPLY_FLAG_DONE:
                return cookie, err, bytes(buf) if err == 0 else b""

    def read(self, cookie, offset, length):
        self.request(CMD_READ, cookie, offset, length)
        return self.reply(length, offset)


def serving(host, port, export, expect_size=None):
    """A fresh connection can negotiate export and read its first block."""
    c = Raw(host, port)
    try:
        c.handshake()
        final, info = c.go(export)
        assert final == REP_ACK, f"NBD_OPT_GO {export!r} failed: {final:#x}"
        if expect_size is not None:
            assert info["size"] == expect_size, f"size {info['size']} != {expect_size}"
        cookie, err, data = c.read(1, 0, min(4096, info["size"]))
        assert cookie == 1 and err == 0, f"read failed: cookie {cookie} err {err}"
        c.request(CMD_DISC, 2)
        return True
    finally:
        c.close()
