#!/usr/bin/env python3
"""chap.py CASE — CHAP logins against bootlinkd at the byte level.

Environment: ISCSI_HOST, ISCSI_PORT, TARGET, CHAP_USER, CHAP_SECRET and, for
mutual CHAP, MUTUAL_USER and MUTUAL_SECRET (what the target must answer
with). Exit 0 when the target behaved as RFC 7143 §12.1.3 says.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rawiscsi as ri  # noqa: E402

H, P, TARGET = os.environ["ISCSI_HOST"], os.environ["ISCSI_PORT"], os.environ["TARGET"]
USER, SECRET = os.environ.get("CHAP_USER", ""), os.environ.get("CHAP_SECRET", "")
MUSER, MSECRET = os.environ.get("MUTUAL_USER", ""), os.environ.get("MUTUAL_SECRET", "")
SEC = [("InitiatorName", "iqn.2026-11.test:chap"), ("SessionType", "Normal"), ("TargetName", TARGET)]


def challenge(c):
    """AuthMethod=CHAP, then CHAP_A: the target's (identifier, challenge)."""
    r = c.login_pdu(0, 1, True, ri.text(SEC + [("AuthMethod", "CHAP")]))
    assert r.login_status == 0 and dict(ri.parse_text(r.data)).get("AuthMethod") == "CHAP", r
    assert not r.flags & 0x80, "target left the security stage before authentication"
    r = c.login_pdu(0, 1, False, ri.text([("CHAP_A", "5")]))
    k = dict(ri.parse_text(r.data))
    assert r.login_status == 0 and k.get("CHAP_A") == "5", k
    chal = bytes.fromhex(k["CHAP_C"][2:])
    assert len(chal) >= 16, "challenge shorter than 16 bytes"
    return int(k["CHAP_I"]), chal


def answer(cid, chal, secret):
    return "0x" + hashlib.md5(bytes([cid]) + secret.encode() + chal).hexdigest()


def case_wrong_secret():
    c = ri.Conn(H, P)
    cid, chal = challenge(c)
    r = c.login_pdu(0, 1, True, ri.text([("CHAP_N", USER), ("CHAP_R", answer(cid, chal, SECRET + "x"))]))
    assert (r.bhs[36], r.bhs[37]) == (0x02, 0x01), f"status {r.bhs[36]:02x}{r.bhs[37]:02x}, expected 0201"
    assert c.expect_closed()


def case_wrong_user():
    c = ri.Conn(H, P)
    cid, chal = challenge(c)
    r = c.login_pdu(0, 1, True, ri.text([("CHAP_N", USER + "x"), ("CHAP_R", answer(cid, chal, SECRET))]))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_no_chap_offered():
    c = ri.Conn(H, P)
    r = c.login_pdu(0, 1, True, ri.text(SEC + [("AuthMethod", "None")]))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_skip_security():
    c = ri.Conn(H, P)
    r = c.login_pdu(1, 3, True, ri.text(SEC))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_no_md5():
    c = ri.Conn(H, P)
    r = c.login_pdu(0, 1, True, ri.text(SEC + [("AuthMethod", "CHAP")]))
    r = c.login_pdu(0, 1, False, ri.text([("CHAP_A", "6,7")]))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_reflection():
    """Mutual CHAP with our own challenge sent back: refused."""
    c = ri.Conn(H, P)
    cid, chal = challenge(c)
    r = c.login_pdu(0, 1, True, ri.text([("CHAP_N", USER), ("CHAP_R", answer(cid, chal, SECRET)),
                                        ("CHAP_I", "9"), ("CHAP_C", "0x" + chal.hex())]))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_one_way():
    c = ri.Conn(H, P)
    c.login(target=TARGET, chap=(USER, SECRET))
    st, _, _ = c.scsi(b"\0" * 6)
    assert st == 0


def case_mutual():
    c = ri.Conn(H, P)
    r = c.login(target=TARGET, chap=(USER, SECRET), mutual=(MUSER, MSECRET))
    assert r.login_status == 0, hex(r.login_status)
    st, _, _ = c.scsi(b"\0" * 6)
    assert st == 0


def case_mutual_refused():
    """The initiator asks for mutual CHAP, the target has no mutual secret."""
    c = ri.Conn(H, P)
    r = c.login(target=TARGET, chap=(USER, SECRET), mutual=("x", "y"))
    assert r.login_status == 0x0201, hex(r.login_status)


def case_discovery_needs_chap():
    c = ri.Conn(H, P)
    r = c.login_pdu(0, 1, True, ri.text([("InitiatorName", "iqn.x:y"), ("SessionType", "Discovery"),
                                        ("AuthMethod", "None")]))
    assert r.login_status == 0x0201, hex(r.login_status)
    c = ri.Conn(H, P)
    c.login(discovery=True, chap=(USER, SECRET))
    assert ("TargetName", TARGET) in c.send_targets()


def case_ipxe():
    """iPXE's login with CHAP, byte for byte."""
    c = ri.Conn(H, P)
    c.ipxe_login("iqn.2010-04.org.ipxe:pc", TARGET, chap=(USER, SECRET))
    st, _, _ = c.scsi(b"\0" * 6)
    assert st == 0


CASES = {n[5:].replace("_", "-"): f for n, f in globals().items() if n.startswith("case_")}
if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("cases:", " ".join(CASES))
        sys.exit(2)
    CASES[sys.argv[1]]()
