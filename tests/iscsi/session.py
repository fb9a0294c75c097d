#!/usr/bin/env python3
"""session.py CASE — full-feature-phase behaviour of bootlinkd at the byte level.

Environment: ISCSI_HOST, ISCSI_PORT, TARGET, and per case NOP_INTERVAL,
NOP_TIMEOUT, REDIRECT (the configured iscsi/target_address).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import rawiscsi as ri  # noqa: E402

H, P, TARGET = os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"], os.environ["TARGET"]
TUR = b"\0" * 6


def logged_in(**kw):
    c = ri.Conn(H, P)
    c.login(target=TARGET, **kw)
    return c


def rw10(op, lba, blocks):
    return bytes([op, 0]) + lba.to_bytes(4, "big") + b"\0" + blocks.to_bytes(2, "big") + b"\0"


def read_checked(c, lba, blocks, burst, mrdsl):
    """READ(10) checking every Data-In: DataSN, offsets, PDU sizes, F at
    each MaxBurstLength boundary, status in the last one."""
    itt = c.scsi(rw10(0x28, lba, blocks), edtl=blocks * 512, read=True, send_only=True)
    data, sn = b"", 0
    while True:
        p = c.recv_pdu()
        assert p.op == ri.OP_DATA_IN and p.itt == itt, p
        assert p.w36 == sn, f"DataSN {p.w36}, expected {sn}"
        assert p.w40 == len(data), f"offset {p.w40}, expected {len(data)}"
        assert 0 < p.dsl <= mrdsl, f"Data-In of {p.dsl} bytes, initiator takes {mrdsl}"
        end = len(data) + p.dsl
        at_burst_end = end % burst == 0 or end == blocks * 512
        assert bool(p.flags & 0x80) == at_burst_end, f"F bit {p.flags:#x} at offset {end}"
        data += p.data
        sn += 1
        if p.flags & 1:
            assert p.b3 == 0 and end == blocks * 512, "status before the end"
            return data


def case_data_path():
    """Small MaxRecvDataSegmentLength / bursts, several R2Ts outstanding, digests."""
    for digests in (False, True):
        c = logged_in(header_digest=digests, data_digest=digests,
                      operational=[("MaxRecvDataSegmentLength", "4096"), ("MaxBurstLength", "16384"),
                                   ("FirstBurstLength", "8192"), ("MaxOutstandingR2T", "4"),
                                   ("InitialR2T", "No"), ("ImmediateData", "Yes")])
        assert int(c.params["MaxRecvDataSegmentLength"]) >= 4096
        assert c.params["MaxOutstandingR2T"] == "4" and c.params["MaxBurstLength"] == "16384", c.params
        data = os.urandom(200 * 1024 + 512)
        blocks = len(data) // 512
        st, r2ts = c.write(rw10(0x2a, 64, blocks), data)
        assert st == 0, f"write status {st}"
        assert r2ts and r2ts[0][0] == 8192 and sum(n for _, n in r2ts) == len(data) - 8192, r2ts
        back = read_checked(c, 64, blocks, 16384, 4096)
        assert back == data, "data read back differs"
        # EDTL shorter than the command: only EDTL bytes are written, overflow residual.
        st, _ = c.write(rw10(0x2a, 10, 2), b"\x11" * 512, edtl=512)
        assert st == 0
        c.logout()


def case_initial_r2t():
    """InitialR2T=Yes, ImmediateData=No (what iPXE negotiates): all data solicited."""
    c = logged_in(operational=[("InitialR2T", "Yes"), ("ImmediateData", "No"), ("MaxRecvDataSegmentLength", "8192")])
    data = os.urandom(64 * 1024)
    st, r2ts = c.write(rw10(0x2a, 0, 128), data)
    assert st == 0 and r2ts[0] == (0, 64 * 1024), r2ts
    assert read_checked(c, 0, 128, 262144, 8192) == data


def case_nop_ping():
    """The target pings an idle session; an answered ping keeps it, silence ends it."""
    interval, timeout = int(os.environ["NOP_INTERVAL"]), int(os.environ["NOP_TIMEOUT"])
    c = logged_in()
    c.s.settimeout(interval + 3)
    p = c.recv_pdu()
    assert p.op == ri.OP_NOP_IN and p.itt == ri.RSVD and p.w20 != ri.RSVD, p
    c.nop_out(itt=ri.RSVD, ttt=p.w20, immediate=True, want_reply=False)
    p = c.recv_pdu()   # the next ping: answered pings keep the session
    assert p.op == ri.OP_NOP_IN and p.w20 != ri.RSVD, p
    t0 = time.time()
    assert c.expect_closed(timeout + interval + 4), "an unanswered ping did not end the session"
    assert time.time() - t0 >= timeout - 1, "closed before iscsi/nop_timeout_s"


def case_no_ping_for_ipxe():
    """iPXE cannot answer pings: it gets keepalive NOP-Ins that ask for nothing,
    and its session stays open however long it is silent."""
    interval, timeout = int(os.environ["NOP_INTERVAL"]), int(os.environ["NOP_TIMEOUT"])
    c = ri.Conn(H, P)
    c.isid = bytes([0x40, 0x00, 0x27, 0x23, 0x00, 0x00])   # iPXE's ISID
    c.login(target=TARGET)
    c.s.settimeout(interval + 3)
    end = time.time() + interval + timeout + 3
    seen = 0
    while time.time() < end:
        p = c.recv_pdu()
        assert p.op == ri.OP_NOP_IN and p.itt == ri.RSVD and p.w20 == ri.RSVD, f"iPXE was pinged: {p}"
        seen += 1
    assert seen >= 1, "no keepalive NOP-In"
    assert c.ping(), "the silent iPXE session was closed"


def case_ipxe():
    c = ri.Conn(H, P)
    c.ipxe_login("iqn.2010-04.org.ipxe:525400aabb05", TARGET)
    c.ipxe_io(open(os.environ["IMAGE"], "rb").read())


def case_redirect():
    want = os.environ["REDIRECT"]
    c = ri.Conn(H, P)
    r = c.login_pdu(0, 1, True, ri.text([("InitiatorName", "iqn.x:y"), ("TargetName", TARGET)]))
    assert r.login_status == 0x0101, hex(r.login_status)
    assert dict(ri.parse_text(r.data)).get("TargetAddress") == want + ",1", r.data
    c = ri.Conn(H, P)
    c.login(discovery=True)
    assert ("TargetAddress", want + ",1") in c.send_targets(), "SendTargets does not announce the redirect address"


def case_no_redirect_loop():
    c = logged_in()
    assert c.ping()


def tmf(c, function, ref_itt=ri.RSVD, lun=0):
    """Send a task management request; its response code. RefCmdSN is an old one."""
    c.send_pdu(c.bhs(ri.OP_TMF, 0x80 | function, 0, lun=lun, itt=c.next_itt(), w20=ref_itt, w24=c.cmd_sn,
                     w32=c.cmd_sn - 1, immediate=True))
    p = c.recv_pdu()
    assert p.op == ri.OP_TMF_RSP, p
    return p.b2


def case_tmf():
    c = logged_in()
    assert tmf(c, 5) == 0, "LUN RESET"
    assert tmf(c, 2) == 0, "ABORT TASK SET"
    assert tmf(c, 4) == 0, "CLEAR TASK SET"
    assert tmf(c, 5, lun=1 << 48) == 2, "LUN RESET of LUN 1"
    assert tmf(c, 1, ref_itt=0x777) == 1, "ABORT TASK of an unknown, old task"
    assert tmf(c, 3) == 5, "CLEAR ACA"
    assert tmf(c, 8) == 4, "TASK REASSIGN"
    assert tmf(c, 99) == 255, "unknown function"
    assert tmf(c, 6) == 0, "TARGET WARM RESET"
    st, _, _ = c.scsi(TUR)
    assert st == 0
    assert tmf(c, 7) == 0, "TARGET COLD RESET"
    assert c.expect_closed(), "TARGET COLD RESET keeps the connection"


def case_logout():
    c = logged_in()
    itt = c.next_itt()
    c.send_pdu(c.bhs(ri.OP_LOGOUT, 0x80 | 1, 0, itt=itt, w20=77 << 16, w24=c.cmd_sn, immediate=True))
    p = c.recv_pdu()
    assert p.op == ri.OP_LOGOUT_RSP and p.b2 == 1, f"close connection with a wrong CID: {p}"
    c.send_pdu(c.bhs(ri.OP_LOGOUT, 0x80 | 2, 0, itt=c.next_itt(), w24=c.cmd_sn, immediate=True))
    p = c.recv_pdu()
    assert p.op == ri.OP_LOGOUT_RSP and p.b2 == 2, f"recovery: {p}"
    assert c.ping()
    p = c.logout()
    assert p.op == ri.OP_LOGOUT_RSP and p.b2 == 0, p
    assert c.expect_closed()


def case_hold():
    """Keep a session open (for runtime-tree and shutdown checks) until killed."""
    c = logged_in()
    st, _, _ = c.scsi(TUR)
    assert st == 0
    print("ready", flush=True)
    while True:
        try:
            p = c.recv_pdu()
        except ri.Closed:
            print("closed", flush=True)
            return
        if p.op == ri.OP_NOP_IN and p.w20 != ri.RSVD:
            c.nop_out(itt=ri.RSVD, ttt=p.w20, immediate=True, want_reply=False)


CASES = {n[5:].replace("_", "-"): f for n, f in globals().items() if n.startswith("case_")}
if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("cases:", " ".join(CASES))
        sys.exit(2)
    CASES[sys.argv[1]]()
