"""loadclient.py — many connections at once, for tests/test-load.sh.

    python3 loadclient.py hold N_NBD N_ISCSI READY RELEASE
        open N_NBD NBD connections (handshake, NBD_OPT_GO, one read) and
        N_ISCSI iSCSI sessions (login, one READ(10)), one after another; every
        read is checked against the image. Then write "N_NBD N_ISCSI SECONDS"
        to READY and keep every connection open until RELEASE is removed;
        exit 0 if every connection was still usable (one more read each).
    python3 loadclient.py storm N
        N threads wait at a barrier, then each connects, negotiates and reads
        once (NBD), all at the same moment. Prints how long the connects
        took from the first to the last and how long until all were served;
        exit 1 if any failed.
    python3 loadclient.py refused N
        open N NBD connections, one after another and all kept open, and
        count those the server closed before the negotiation ended.

Environment: NBD_HOST, NBD_PORT, ISCSI_HOST, ISCSI_PORT, EXPORT (NBD export
name), TARGET (iSCSI target name), IMAGE (the image file, for checking). Every
read is of 4 KiB inside the image's first 64 KiB, so the cache holds one block
and the daemon's memory is the connections' own.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nbd"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "iscsi"))
import rawiscsi  # noqa: E402
import rawnbd  # noqa: E402

E = os.environ
IMAGE = open(E["IMAGE"], "rb").read(65536) if "IMAGE" in E else b""


def nbd_open(i):
    c = rawnbd.Raw(E["NBD_HOST"], E["NBD_PORT"], timeout=60)
    c.handshake()
    final, _ = c.go(E["EXPORT"])
    assert final == rawnbd.REP_ACK, f"NBD_OPT_GO failed: {final:#x}"
    nbd_check(c, i)
    return c


def nbd_check(c, i):
    off = (i % 16) * 4096
    cookie, err, data = c.read(i + 1, off, 4096)
    assert err == 0 and data == IMAGE[off:off + 4096], f"NBD connection {i}: read at {off} wrong (err {err})"


def iscsi_open(i):
    c = rawiscsi.Conn(E["ISCSI_HOST"], E["ISCSI_PORT"], timeout=60)
    c.login(initiator=f"iqn.2026-11.test:load{i}", target=E["TARGET"])
    iscsi_check(c, i)
    return c


def iscsi_check(c, i):
    lba = (i % 16) * 8
    st, data, _ = c.scsi(bytes([0x28, 0, 0, 0, 0, lba, 0, 0, 8, 0]), edtl=4096, read=True)
    assert st == 0 and data == IMAGE[lba * 512:lba * 512 + 4096], f"iSCSI session {i}: read at LBA {lba} wrong"


def hold(n_nbd, n_iscsi, ready, release):
    n_nbd, n_iscsi = int(n_nbd), int(n_iscsi)
    t0 = time.monotonic()
    conns = []
    for i in range(max(n_nbd, n_iscsi)):  # interleaved: both protocols on every worker
        if i < n_nbd:
            conns.append(("nbd", i, nbd_open(i)))
        if i < n_iscsi:
            conns.append(("iscsi", i, iscsi_open(i)))
    took = time.monotonic() - t0
    with open(ready + ".tmp", "w") as f:
        f.write(f"{n_nbd} {n_iscsi} {took:.2f}\n")
    os.rename(ready + ".tmp", ready)
    deadline = time.monotonic() + 300
    while os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    for kind, i, c in conns:  # still served after being held
        (nbd_check if kind == "nbd" else iscsi_check)(c, i + 1000)
    for _, _, c in conns:
        c.close()
    print(f"held {n_nbd} NBD + {n_iscsi} iSCSI connections (opened in {took:.2f} s), all still served", flush=True)


def storm(n):
    n = int(n)
    barrier = threading.Barrier(n + 1)
    starts, ends, errors = [None] * n, [None] * n, []

    def one(i):
        barrier.wait()
        starts[i] = time.monotonic()
        try:
            c = nbd_open(i)
            ends[i] = time.monotonic()
            c.request(rawnbd.CMD_DISC, 99)
            c.close()
        except Exception as e:  # noqa: BLE001 — every failure is counted and shown
            errors.append(f"connection {i}: {e!r}")

    threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(120)
    served = sum(1 for e in ends if e is not None)
    spread = max(s for s in starts if s) - min(s for s in starts if s)
    total = max((e for e in ends if e), default=t0) - t0
    print(f"storm: {n} connects started within {spread:.3f} s, {served} served "
          f"(handshake + read checked) within {total:.2f} s, {len(errors)} failed", flush=True)
    for e in errors[:5]:
        print("  " + e, flush=True)
    return 0 if served == n and not errors else 1


def refused(n):
    count, keep = 0, []
    for i in range(int(n)):  # each kept open, so the ones accepted count against the limit
        c = rawnbd.Raw(E["NBD_HOST"], E["NBD_PORT"], timeout=10)
        keep.append(c)
        try:
            c.handshake()
            c.go(E["EXPORT"])
        except (rawnbd.Closed, OSError, AssertionError):
            count += 1
    for c in keep:
        c.close()
    print(f"refused: {count} of {n}", flush=True)
    return 0


def main():
    a = sys.argv[1:]
    if len(a) == 5 and a[0] == "hold":
        hold(*a[1:])
        return 0
    if len(a) == 2 and a[0] == "storm":
        return storm(a[1])
    if len(a) == 2 and a[0] == "refused":
        return refused(a[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
