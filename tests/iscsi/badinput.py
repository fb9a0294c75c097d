#!/usr/bin/env python3
"""badinput.py CASE — one hostile iSCSI client case against bootlinkd.

Environment: ISCSI_HOST, ISCSI_PORT, TARGET (a writable target IQN),
LOGIN_TIMEOUT (limits/handshake_timeout_s of the daemon). Exit 0 when the
target answered as RFC 7143 says; an AssertionError otherwise. The shell
script checks after every case that the daemon still serves.
"""
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import rawiscsi as ri  # noqa: E402

HOST = os.environ.get("ISCSI_HOST", "127.0.0.1")
PORT = int(os.environ.get("ISCSI_PORT", "3260"))
TARGET = os.environ.get("TARGET", "")
LOGIN_TIMEOUT = int(os.environ.get("LOGIN_TIMEOUT", "2"))

TUR = b"\x00" * 6
READ10_1 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])


def conn():
    return ri.Conn(HOST, PORT)


def logged_in(**kw):
    c = conn()
    c.login(target=TARGET, **kw)
    return c


def login_status(c, data, flags=0x81, ver_min=0, tsih=0):
    """Send one raw login request; return the response's status."""
    r = c.login_pdu(flags >> 2 & 3, flags & 3, bool(flags & 0x80), data, ver_min=ver_min, tsih=tsih)
    assert r.op == ri.OP_LOGIN_RSP, r
    return r.login_status


def expect_reject(c, reason):
    p = c.recv_pdu()
    assert p.op == ri.OP_REJECT, f"expected Reject, got {p}"
    assert p.b2 == reason, f"Reject reason 0x{p.b2:02x}, expected 0x{reason:02x}"
    assert len(p.data) == 48, "a Reject carries the rejected BHS"
    return p


SEC = [("InitiatorName", "iqn.2026-11.test:bad"), ("SessionType", "Normal")]

# --- login phase ---


def case_garbage_bhs():
    c = conn()
    c.send_raw(bytes([0x1e, 0x55]) + os.urandom(46))
    assert c.expect_closed(), "garbage before login: connection not closed"


def case_login_no_nul():
    c = conn()
    st = login_status(c, ri.text(SEC + [("TargetName", TARGET)]) + b"AuthMethod=None")
    assert st >> 8 == 2, f"status 0x{st:04x}, expected class 2 (initiator error)"
    assert c.expect_closed(), "not closed after the login reject"


def case_login_dsl_too_long():
    c = conn()
    data = ri.text(SEC + [("TargetName", TARGET), ("X-pad", "x" * 200)]) * 60   # > 8192 bytes
    st = login_status(c, data)
    assert st == 0x0200, f"status 0x{st:04x}"
    assert c.expect_closed()


def case_login_bad_version():
    c = conn()
    st = login_status(c, ri.text(SEC + [("TargetName", TARGET)]), ver_min=1)
    assert st == 0x0205, f"status 0x{st:04x}"


def case_login_unknown_target():
    c = conn()
    st = login_status(c, ri.text(SEC + [("TargetName", "iqn.2026-11.org.bootlink:image.nope")]))
    assert st == 0x0203, f"status 0x{st:04x}"


def case_login_no_initiator_name():
    c = conn()
    st = login_status(c, ri.text([("SessionType", "Normal"), ("TargetName", TARGET)]))
    assert st == 0x0207, f"status 0x{st:04x}"


def case_login_no_target_name():
    c = conn()
    st = login_status(c, ri.text(SEC))
    assert st == 0x0207, f"status 0x{st:04x}"


def case_login_bad_tsih():
    c = conn()
    st = login_status(c, ri.text(SEC + [("TargetName", TARGET)]), tsih=77)
    assert st == 0x020a, f"status 0x{st:04x}"


def case_login_duplicate_key():
    c = conn()
    st = login_status(c, ri.text(SEC + [("TargetName", TARGET), ("MaxConnections", "1"), ("MaxConnections", "1")]))
    assert st == 0x0200, f"status 0x{st:04x}"


def case_login_unknown_keys():
    """Unknown keys are answered NotUnderstood; the login goes on."""
    c = conn()
    r = c.login_pdu(0, 1, True, ri.text(SEC + [("TargetName", TARGET), ("X-vendor.Key", "1"), ("Bogus", "2")]))
    assert r.login_status == 0
    keys = dict(ri.parse_text(r.data))
    assert keys.get("X-vendor.Key") == "NotUnderstood" and keys.get("Bogus") == "NotUnderstood", keys


def case_login_continuation():
    """Login text split over two PDUs with the C bit."""
    c = conn()
    data = ri.text(SEC + [("TargetName", TARGET), ("AuthMethod", "None")])
    r = c.login_pdu(0, 1, False, data[:10], cont=True)
    assert r.op == ri.OP_LOGIN_RSP and r.login_status == 0 and r.dsl == 0, r
    r = c.login_pdu(0, 1, True, data[10:])
    assert r.login_status == 0 and dict(ri.parse_text(r.data)).get("AuthMethod") == "None"


def case_login_stall():
    c = conn()
    assert c.expect_closed(LOGIN_TIMEOUT + 4), "a silent connection was not closed at the login timeout"


def case_pdu_during_login():
    c = conn()
    c.send_pdu(c.bhs(ri.OP_SCSI_CMD, 0x80, 0, w24=1))
    assert c.expect_closed(), "a SCSI command before login: connection not closed"

# --- full feature phase ---


def case_dsl_beyond_max():
    c = logged_in()
    big = 262144 + 512
    assert int(c.params["MaxRecvDataSegmentLength"]) < big
    c.send_pdu(c.bhs(ri.OP_NOP_OUT, 0x80, big, itt=c.next_itt(), w20=ri.RSVD, w24=c.cmd_sn), b"z" * big)
    expect_reject(c, 0x04)
    assert c.ping(), "session unusable after the oversized PDU"


def case_cmdsn_outside_window():
    c = logged_in()
    for sn in (c.cmd_sn + 1000, c.cmd_sn - 1, c.max_cmd_sn + 1):
        c.scsi(TUR, cmd_sn=sn, send_only=True)
        assert c.expect_silence(1.0), f"CmdSN {sn} outside the window was answered"
    st, _, _ = c.scsi(TUR)
    assert st == 0, "TEST UNIT READY with the right CmdSN failed"


def case_data_out_unknown_task():
    c = logged_in()
    c.data_out(itt=0xABCDEF, ttt=ri.RSVD, offset=0, data=b"x" * 512)
    expect_reject(c, 0x09)
    assert c.ping()


def case_data_out_bad_offset():
    """Unsolicited Data-Out at the wrong offset: ErrorRecoveryLevel 0 drops the connection."""
    c = logged_in()
    itt = c.scsi(bytes([0x2a, 0, 0, 0, 0, 0, 0, 0, 2, 0]), edtl=1024, write=True, final=False, send_only=True)
    c.data_out(itt, ri.RSVD, 512, b"y" * 512)
    assert c.expect_closed(), "out-of-order Data-Out: connection not closed"


def case_unknown_opcode():
    c = logged_in()
    c.send_pdu(c.bhs(0x1e, 0x80, 0, itt=c.next_itt()))
    expect_reject(c, 0x05)
    assert c.ping()


def case_snack():
    c = logged_in()
    c.send_pdu(c.bhs(ri.OP_SNACK, 0x80, 0, itt=c.next_itt()))
    expect_reject(c, 0x04)
    assert c.ping()


def case_duplicate_itt():
    c = logged_in(operational=[("InitialR2T", "Yes")])
    itt = c.scsi(bytes([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), edtl=512, write=True, send_only=True)
    r2t = c.recv_pdu()
    assert r2t.op == ri.OP_R2T and r2t.itt == itt and r2t.w40 == 0 and r2t.w44 == 512, r2t
    c.scsi(TUR, itt=itt, send_only=True)
    expect_reject(c, 0x07)
    c.data_out(itt, r2t.w20, 0, b"w" * 512)
    st, _, _ = c.collect(itt)
    assert st == 0, "the write answered by R2T failed"


def case_immediate_data_without_w():
    c = logged_in()
    c.scsi(TUR, data=b"x" * 512, edtl=512, send_only=True)
    expect_reject(c, 0x04)
    assert c.ping()


def case_header_digest():
    """With HeaderDigest=CRC32C a wrong header digest drops the connection."""
    c = logged_in(header_digest=True)
    assert c.ping()
    c.send_pdu(c.bhs(ri.OP_NOP_OUT, 0x80, 0, itt=c.next_itt(), w20=ri.RSVD, w24=c.cmd_sn), bad_hd=True)
    assert c.expect_closed(), "bad header digest: connection not closed"


def case_data_digest():
    """With DataDigest=CRC32C a wrong data digest is rejected, the session goes on."""
    c = logged_in(header_digest=True, data_digest=True)
    st, data, _ = c.scsi(READ10_1, edtl=512, read=True)
    assert st == 0 and len(data) == 512
    c.send_pdu(c.bhs(ri.OP_NOP_OUT, 0x80, 4, itt=c.next_itt(), w20=ri.RSVD, w24=c.cmd_sn), b"abcd", bad_dd=True)
    expect_reject(c, 0x02)
    assert c.ping()


def case_discovery_scsi():
    c = conn()
    c.login(discovery=True)
    c.scsi(TUR, send_only=True)
    expect_reject(c, 0x04)
    assert c.send_targets()


def case_text_continuation():
    """SendTargets answers longer than MaxRecvDataSegmentLength come in C-bit pieces."""
    c = conn()
    c.login(discovery=True, operational=[("MaxRecvDataSegmentLength", "512")])
    targets = [v for k, v in c.send_targets() if k == "TargetName"]
    assert TARGET in targets, targets


def case_login_in_ffp():
    c = logged_in()
    c.send_pdu(c.bhs(ri.OP_LOGIN, 0x81, 0, itt=c.next_itt(), immediate=True))
    expect_reject(c, 0x04)
    assert c.expect_closed()


def case_logout_with_task_waiting():
    """Logout while a write waits for its Data-Out: the task is dropped, the logout answered."""
    c = logged_in(operational=[("InitialR2T", "Yes")])
    c.scsi(bytes([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), edtl=512, write=True, send_only=True)
    assert c.recv_pdu().op == ri.OP_R2T
    r = c.logout()
    assert r.op == ri.OP_LOGOUT_RSP and r.b2 == 0, r
    assert c.expect_closed()


def case_abort_waiting_task():
    """ABORT TASK of a write waiting for Data-Out: function complete, no answer for the task."""
    c = logged_in(operational=[("InitialR2T", "Yes")])
    itt = c.scsi(bytes([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), edtl=512, write=True, send_only=True)
    r2t = c.recv_pdu()
    assert r2t.op == ri.OP_R2T
    sn = c.cmd_sn - 1
    c.send_pdu(c.bhs(ri.OP_TMF, 0x81, 0, itt=c.next_itt(), w20=itt, w24=c.cmd_sn, w32=sn, immediate=True))
    r = c.recv_pdu()
    assert r.op == ri.OP_TMF_RSP and r.b2 == 0, r
    c.data_out(itt, r2t.w20, 0, b"late" * 128)   # a late Data-Out for the aborted task is dropped quietly
    assert c.ping()


def case_reset():
    c = conn()
    c.send_raw(b"\x43\x81")
    c.s.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


CASES = {name[5:].replace("_", "-"): fn for name, fn in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("cases:", " ".join(CASES))
        sys.exit(2)
    CASES[sys.argv[1]]()
