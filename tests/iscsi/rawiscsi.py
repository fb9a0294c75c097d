"""rawiscsi.py — a minimal iSCSI initiator over a raw socket, for tests.

It speaks just enough RFC 7143 to log in (optionally with CHAP, digests and
chosen operational keys), send SCSI commands, NOP-Outs and Data-Outs, and —
the point of it — to send whatever malformed PDU a test asks for and read
exactly what the target answers. Nothing here is clever: every PDU is built
byte by byte so a test can break any field.
"""
import hashlib
import os
import socket
import struct
import time

RSVD = 0xFFFFFFFF

OP_NOP_OUT, OP_SCSI_CMD, OP_TMF, OP_LOGIN, OP_TEXT, OP_DATA_OUT, OP_LOGOUT, OP_SNACK = 0, 1, 2, 3, 4, 5, 6, 0x10
OP_NOP_IN, OP_SCSI_RSP, OP_TMF_RSP, OP_LOGIN_RSP, OP_TEXT_RSP, OP_DATA_IN, OP_LOGOUT_RSP = (
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26)
OP_R2T, OP_ASYNC, OP_REJECT = 0x31, 0x32, 0x3F


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _T[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def digest(data):
    return struct.pack("<I", crc32c(data))


def pad4(n):
    return (4 - n % 4) % 4


def text(pairs):
    """[(key, value), ...] or dict -> b'key=value\\0...'."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in items)


def parse_text(data):
    out = []
    for item in data.split(b"\0"):
        if item:
            k, _, v = item.partition(b"=")
            out.append((k.decode(), v.decode()))
    return out


class PDU:
    """A received PDU: the raw BHS plus the common and per-opcode fields tests use."""

    def __init__(self, bhs, data):
        self.bhs = bhs
        self.data = data
        self.op = bhs[0] & 0x3F
        self.flags = bhs[1]
        self.b2, self.b3 = bhs[2], bhs[3]
        self.dsl = int.from_bytes(bhs[5:8], "big")
        self.itt, self.w20, self.w24, self.w28, self.w32, self.w36, self.w40, self.w44 = struct.unpack(
            ">8I", bhs[16:48])

    @property
    def stat_sn(self):
        return self.w24

    @property
    def exp_cmd_sn(self):
        return self.w28

    @property
    def max_cmd_sn(self):
        return self.w32

    @property
    def login_status(self):
        return (self.bhs[36] << 8) | self.bhs[37]

    def __repr__(self):
        return f"<PDU op=0x{self.op:02x} flags=0x{self.flags:02x} b2={self.b2} b3={self.b3} dsl={self.dsl} itt=0x{self.itt:x}>"


class Closed(Exception):
    pass


class Conn:
    def __init__(self, host, port, timeout=10):
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.s.settimeout(timeout)
        self.hd = self.dd = False
        self.cmd_sn = 1
        self.exp_stat_sn = 0
        self.itt = 0x100
        self.isid = b"\x80" + os.urandom(5)
        self.params = {}
        self.neg = {}

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    # --- raw I/O ---

    def send_raw(self, b):
        self.s.sendall(b)

    def bhs(self, op, flags=0, dsl=0, lun=0, itt=0, w20=0, w24=0, w28=0, w32=0, w36=0, w40=0, w44=0,
            immediate=False, ahs_words=0, b2=0, b3=0):
        return struct.pack(">BBBBB", op | (0x40 if immediate else 0), flags, b2, b3, ahs_words) + \
            dsl.to_bytes(3, "big") + struct.pack(">Q8I", lun, itt, w20, w24, w28, w32, w36, w40, w44)

    def send_pdu(self, bhs, data=b"", hd=None, dd=None, bad_hd=False, bad_dd=False):
        hd = self.hd if hd is None else hd
        dd = self.dd if dd is None else dd
        out = bhs
        if hd:
            d = digest(bhs)
            out += bytes([d[0] ^ 0xFF]) + d[1:] if bad_hd else d
        if data:
            body = data + b"\0" * pad4(len(data))
            out += body
            if dd:
                d = digest(body)
                out += bytes([d[0] ^ 0xFF]) + d[1:] if bad_dd else d
        self.send_raw(out)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def recv_pdu(self):
        bhs = self.recv_exact(48)
        ahs = bhs[4] * 4
        if ahs:
            self.recv_exact(ahs)
        if self.hd:
            d = self.recv_exact(4)
            assert d == digest(bhs), "bad header digest from target"
        dsl = int.from_bytes(bhs[5:8], "big")
        data = b""
        if dsl:
            body = self.recv_exact(dsl + pad4(dsl))
            if self.dd:
                d = self.recv_exact(4)
                assert d == digest(body), "bad data digest from target"
            data = body[:dsl]
        p = PDU(bhs, data)
        if p.op in (OP_SCSI_RSP, OP_LOGIN_RSP, OP_TEXT_RSP, OP_LOGOUT_RSP, OP_TMF_RSP, OP_REJECT) or \
                (p.op == OP_DATA_IN and p.flags & 1) or (p.op == OP_NOP_IN and p.itt != RSVD):
            self.exp_stat_sn = p.stat_sn + 1
        return p

    def expect_closed(self, secs=5):
        """True if the target closes the connection within secs (data before that is discarded)."""
        self.s.settimeout(secs)
        end = time.time() + secs
        try:
            while time.time() < end:
                if not self.s.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True
        return False

    def expect_silence(self, secs=1.0):
        """True if nothing (not even the end of the connection) arrives for secs."""
        self.s.settimeout(secs)
        try:
            self.s.recv(1, socket.MSG_PEEK)
            return False
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.s.settimeout(10)

    def next_itt(self):
        self.itt += 1
        return self.itt

    # --- login ---

    def login_pdu(self, csg, nsg, transit, data, cont=False, ver_min=0, tsih=0, itt=None):
        flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (csg << 2) | nsg
        bhs = struct.pack(">BBBBB", OP_LOGIN | 0x40, flags, 0, ver_min, 0) + len(data).to_bytes(3, "big") + \
            self.isid + struct.pack(">HIHHII", tsih, itt or self.itt, 0, 0, self.cmd_sn, self.exp_stat_sn) + \
            b"\0" * 16
        self.send_pdu(bhs, data, hd=False, dd=False)
        return self.recv_pdu()

    def login(self, initiator="iqn.2026-11.test:raw", target=None, discovery=False, chap=None, mutual=None,
              operational=None, header_digest=False, data_digest=False):
        """Log in to full feature phase. chap=(user, secret); mutual=(expected target user, secret).
        Returns the final Login Response; raises AssertionError on a non-zero status."""
        sec = [("InitiatorName", initiator), ("SessionType", "Discovery" if discovery else "Normal")]
        if target:
            sec.append(("TargetName", target))
        sec.append(("AuthMethod", "CHAP,None" if chap else "None"))
        r = self.login_pdu(0, 1, True, text(sec))
        assert r.login_status == 0, f"login status 0x{r.login_status:04x}"
        keys = dict(parse_text(r.data))
        if chap and keys.get("AuthMethod") == "CHAP":
            r = self.login_pdu(0, 1, False, text([("CHAP_A", "5")]))
            assert r.login_status == 0, f"login status 0x{r.login_status:04x}"
            keys = dict(parse_text(r.data))
            cid, chal = int(keys["CHAP_I"]), bytes.fromhex(keys["CHAP_C"][2:])
            resp = hashlib.md5(bytes([cid]) + chap[1].encode() + chal).hexdigest()
            pairs = [("CHAP_N", chap[0]), ("CHAP_R", "0x" + resp)]
            mychal = os.urandom(16)
            if mutual:
                pairs += [("CHAP_I", "7"), ("CHAP_C", "0x" + mychal.hex())]
            r = self.login_pdu(0, 1, True, text(pairs))
            if r.login_status:
                return r
            keys = dict(parse_text(r.data))
            if mutual:
                want = hashlib.md5(bytes([7]) + mutual[1].encode() + mychal).hexdigest()
                assert keys.get("CHAP_N") == mutual[0], f"target CHAP_N {keys.get('CHAP_N')}"
                assert keys.get("CHAP_R", "").lower() == "0x" + want, "target's mutual CHAP_R is wrong"
        if r.login_status:
            return r
        op = [("HeaderDigest", "CRC32C" if header_digest else "None"),
              ("DataDigest", "CRC32C" if data_digest else "None"),
              ("MaxRecvDataSegmentLength", "65536"), ("InitialR2T", "No"), ("ImmediateData", "Yes"),
              ("MaxBurstLength", "262144"), ("FirstBurstLength", "65536"), ("ErrorRecoveryLevel", "0")]
        if operational:
            op = [(k, v) for k, v in op if k not in dict(operational)] + list(operational)
        r = self.login_pdu(1, 3, True, text(op))
        assert r.login_status == 0, f"login status 0x{r.login_status:04x}"
        assert r.flags & 0x80 and r.flags & 3 == 3, "target did not move to full feature phase"
        self.params = dict(parse_text(r.data))
        self.neg = dict(op)
        self.neg.update(self.params)
        self.hd = header_digest
        self.dd = data_digest
        self.exp_cmd_sn = r.exp_cmd_sn
        self.cmd_sn = r.exp_cmd_sn
        self.max_cmd_sn = r.max_cmd_sn
        return r

    # --- full feature phase ---

    def scsi(self, cdb, edtl=0, read=False, write=False, data=b"", final=True, cmd_sn=None, immediate=False,
             itt=None, lun=0, send_only=False):
        itt = itt or self.next_itt()
        cdb = cdb.ljust(16, b"\0")
        flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | 1
        sn = self.cmd_sn if cmd_sn is None else cmd_sn
        bhs = self.bhs(OP_SCSI_CMD, flags, len(data), lun=lun, itt=itt, w20=edtl, w24=sn,
                       w28=self.exp_stat_sn, immediate=immediate)[:32] + cdb
        self.send_pdu(bhs, data)
        if cmd_sn is None and not immediate:
            self.cmd_sn += 1
        if send_only:
            return itt
        return self.collect(itt)

    def collect(self, itt):
        """Data-In and the status of task itt: (status, data, last PDU)."""
        data = b""
        while True:
            p = self.recv_pdu()
            if p.op == OP_DATA_IN and p.itt == itt:
                data += p.data
                if p.flags & 1:
                    return p.b3, data, p
            elif p.op == OP_SCSI_RSP and p.itt == itt:
                return p.b3, data, p
            elif p.op == OP_NOP_IN and p.w20 != RSVD:
                self.nop_out(itt=RSVD, ttt=p.w20, immediate=True, want_reply=False)
            elif p.op == OP_REJECT:
                return None, p.data, p

    def ipxe_login(self, initiator, target, chap=None):
        """Log in exactly as iPXE does (src/net/tcp/iscsi.c): T set on every
        request, AuthMethod=CHAP,None or None, CHAP_A=5, then its fixed
        operational strings. Fails on any key answered Reject (iPXE treats a
        Reject as fatal). Returns every response."""
        self.isid = bytes([0x40, 0x00, 0x27, 0x23, 0x00, 0x00])
        seen = []

        def step(csg, nsg, pairs):
            r = self.login_pdu(csg, nsg, True, text(pairs), itt=0x1000)
            assert r.login_status == 0, f"iPXE login refused: 0x{r.login_status:04x}"
            keys = parse_text(r.data)
            assert not [k for k, v in keys if v == "Reject"], f"a key answered Reject breaks iPXE: {keys}"
            seen.append(r)
            return dict(keys), r
        keys, r = step(0, 1, [("InitiatorName", initiator), ("TargetName", target), ("SessionType", "Normal"),
                              ("AuthMethod", "CHAP,None" if chap else "None")])
        if keys.get("AuthMethod") == "CHAP":
            keys, r = step(0, 1, [("CHAP_A", "5")])
            resp = hashlib.md5(bytes([int(keys["CHAP_I"])]) + chap[1].encode() +
                               bytes.fromhex(keys["CHAP_C"][2:])).hexdigest()
            keys, r = step(0, 1, [("CHAP_N", chap[0]), ("CHAP_R", "0x" + resp)])
        assert r.flags & 0x80 and r.flags & 3 == 1, "target did not leave the security stage"
        keys, r = step(1, 3, [("HeaderDigest", "None"), ("DataDigest", "None"), ("InitialR2T", "Yes"),
                              ("MaxRecvDataSegmentLength", "8192"), ("MaxBurstLength", "262144"),
                              ("DefaultTime2Wait", "0"), ("DefaultTime2Retain", "0"), ("MaxOutstandingR2T", "1"),
                              ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes"), ("ErrorRecoveryLevel", "0")])
        assert r.flags & 0x80 and r.flags & 3 == 3, "target did not enter full feature phase"
        self.params = keys
        self.neg = {"InitialR2T": "Yes", "ImmediateData": "No", "MaxBurstLength": "262144"}
        self.neg.update(keys)
        self.cmd_sn = r.exp_cmd_sn
        return seen

    def ipxe_io(self, image):
        """What iPXE's sanboot does: READ CAPACITY, reads with status in the
        last Data-In, and writes of 512-byte Data-Out PDUs answering one R2T."""
        st, data, _ = self.scsi(bytes([0x25]) + b"\0" * 9, edtl=8, read=True)
        assert st == 0 and int.from_bytes(data[:4], "big") + 1 == len(image) // 512, "READ CAPACITY(10)"
        st, data, last = self.scsi(bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 8, 0]), edtl=4096, read=True)
        assert st == 0 and data == image[512:512 + 4096] and last.op == OP_DATA_IN, "READ(10) with status in Data-In"
        new = os.urandom(2048)
        itt = self.scsi(bytes([0x2a, 0, 0, 0, 0, 4, 0, 0, 4, 0]), edtl=2048, write=True, send_only=True)
        p = self.recv_pdu()
        assert p.op == OP_R2T and p.w40 == 0 and p.w44 == 2048, f"expected one R2T for everything: {p}"
        for i in range(4):
            self.data_out(itt, p.w20, 512 * i, new[512 * i:512 * i + 512], data_sn=i, final=i == 3)
        st, _, _ = self.collect(itt)
        assert st == 0, "iPXE-style write"
        st, data, _ = self.scsi(bytes([0x28, 0, 0, 0, 0, 4, 0, 0, 4, 0]), edtl=2048, read=True)
        assert data == new, "written data read back"

    def write(self, cdb, data, edtl=None):
        """A write command with everything the negotiated parameters allow:
        immediate data, unsolicited Data-Out up to FirstBurstLength, then the
        Data-Out each R2T asks for (several may be outstanding). Checks every
        R2T; returns (status, R2Ts seen)."""
        edtl = len(data) if edtl is None else edtl
        mrdsl = int(self.params.get("MaxRecvDataSegmentLength", 8192))
        first = int(self.neg.get("FirstBurstLength", 65536))
        imm = self.neg.get("ImmediateData", "Yes") == "Yes"
        unsol = self.neg.get("InitialR2T", "Yes") == "No"
        n_imm = min(len(data), first, mrdsl) if imm else 0
        n_unsol = min(len(data), first) if unsol else n_imm
        itt = self.scsi(cdb, edtl=edtl, write=True, data=data[:n_imm], final=n_unsol == n_imm, send_only=True)
        off, sn = n_imm, 0
        while off < n_unsol:
            n = min(mrdsl, n_unsol - off)
            self.data_out(itt, RSVD, off, data[off:off + n], data_sn=sn, final=off + n == n_unsol)
            off, sn = off + n, sn + 1
        r2ts = []
        while True:
            p = self.recv_pdu()
            if p.op == OP_R2T:
                assert p.itt == itt and p.w20 != RSVD, p
                assert p.w36 == len(r2ts), f"R2TSN {p.w36}, expected {len(r2ts)}"
                boff, blen = p.w40, p.w44
                assert blen <= int(self.neg.get("MaxBurstLength", 262144)), "R2T longer than MaxBurstLength"
                r2ts.append((boff, blen))
                o, dsn = boff, 0
                while o < boff + blen:
                    n = min(mrdsl, boff + blen - o)
                    self.data_out(itt, p.w20, o, data[o:o + n], data_sn=dsn, final=o + n == boff + blen)
                    o, dsn = o + n, dsn + 1
            elif p.op == OP_SCSI_RSP and p.itt == itt:
                self.last_rsp = p
                return p.b3, r2ts
            else:
                raise AssertionError(f"unexpected {p} during a write")

    def nop_out(self, itt=None, ttt=RSVD, data=b"", immediate=False, want_reply=True, cmd_sn=None):
        itt = self.next_itt() if itt is None else itt
        sn = self.cmd_sn if cmd_sn is None else cmd_sn
        self.send_pdu(self.bhs(OP_NOP_OUT, 0x80, len(data), itt=itt, w20=ttt, w24=sn, w28=self.exp_stat_sn,
                               immediate=immediate), data)
        if not immediate and cmd_sn is None:
            self.cmd_sn += 1
        if want_reply:
            return self.recv_pdu()
        return None

    def ping(self):
        """A NOP-Out answered by a NOP-In echoing the data: the session works."""
        p = self.nop_out(data=b"ping")
        return p.op == OP_NOP_IN and p.data == b"ping"

    def data_out(self, itt, ttt, offset, data, data_sn=0, final=True):
        self.send_pdu(self.bhs(OP_DATA_OUT, 0x80 if final else 0, len(data), itt=itt, w20=ttt,
                               w28=self.exp_stat_sn, w36=data_sn, w40=offset), data)

    def text_req(self, pairs, ttt=RSVD, itt=None, cont=False):
        itt = itt or self.next_itt()
        data = text(pairs) if pairs else b""
        self.send_pdu(self.bhs(OP_TEXT, 0x40 if cont else 0x80, len(data), itt=itt, w20=ttt, w24=self.cmd_sn,
                               w28=self.exp_stat_sn), data)
        self.cmd_sn += 1
        return itt, self.recv_pdu()

    def send_targets(self, value="All"):
        """SendTargets, following continuation (C bit) answers."""
        itt, p = self.text_req([("SendTargets", value)])
        data = p.data
        while p.flags & 0x40:
            _, p = self.text_req(None, ttt=p.w20, itt=itt)
            data += p.data
        return parse_text(data)

    def logout(self):
        itt = self.next_itt()
        self.send_pdu(self.bhs(OP_LOGOUT, 0x80, 0, itt=itt, w24=self.cmd_sn, w28=self.exp_stat_sn, immediate=True))
        return self.recv_pdu()
