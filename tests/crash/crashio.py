"""crashio.py — writes with a journal of what was acknowledged, and the check
that everything acknowledged as durable survived a crash (tests/test-crash.sh).

    python3 crashio.py write URI JOURNAL SEED    write until the connection dies
    python3 crashio.py verify URI JOURNAL IMAGE  check the disk against the journal

The disk is handled in 4 KiB blocks. Every block a write stores is
self-describing: 8 bytes of write sequence number, 8 bytes of block number,
then 4080 bytes of a pattern derived from both, so a block read back names
the write it came from.

The writer runs rounds on one connection: a batch of 4..24 writes of 1..16
blocks at random places (about one in six with FUA), all in flight at once;
once every reply is in, NBD_CMD_FLUSH. Writes in flight together never
overlap (NBD does not order them). The journal (line-buffered, so it
survives the daemon being killed; the writer itself is not) gets
    S                         when the writer connects (a new session)
    W SEQ BLOCK NBLOCKS FUA   before the write is sent
    A SEQ                     when its reply says success
    F SEQ                     when a flush sent after the replies of every write
                              up to SEQ succeeded
A write is durable when it was acknowledged and an F line of the same
session covers it, or it had FUA. After a crash, each block must hold its last durable write, or
a write sent after that one (which may or may not have reached the disk), or
— if no durable write touched it — the image's bytes or any write. Anything
else is a lost write.
"""
import random
import struct
import sys

import nbd

BLOCK = 4096


def block_data(seq, blk):
    return struct.pack("<QQ", seq, blk) + random.Random(seq * 1000003 + blk).randbytes(BLOCK - 16)


def read_journal(path):
    """[(seq, block, nblocks, durable)] for every write sent."""
    writes, acked, fua, flushed = [], set(), set(), {}
    session = 0
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if not line.endswith("\n") or not p:
                    continue  # a line cut short (cannot happen: the writer is not killed)
                if p[0] == "S":
                    session += 1
                elif p[0] == "W":
                    writes.append((int(p[1]), int(p[2]), int(p[3]), session))
                    if p[4] == "1":
                        fua.add(int(p[1]))
                elif p[0] == "A":
                    acked.add(int(p[1]))
                elif p[0] == "F":
                    flushed[session] = max(flushed.get(session, 0), int(p[1]))
    except FileNotFoundError:
        pass
    # A flush covers the writes acknowledged before it on the same connection
    # (session): a write acknowledged by a daemon that was then killed before
    # any flush may be lost, whatever later sessions flushed.
    return [(seq, blk, nb, seq in acked and (seq in fua or seq <= flushed.get(sess, 0)))
            for seq, blk, nb, sess in writes]


def write(uri, journal, seed):
    writes = read_journal(journal)
    seq = max((w[0] for w in writes), default=0)
    rnd = random.Random(int(seed) * 7919 + seq)
    h = nbd.NBD()
    h.connect_uri(uri)
    nblocks = h.get_size() // BLOCK
    j = open(journal, "a", buffering=1)
    j.write("S\n")
    rounds = 0
    try:
        while True:
            batch, busy = [], set()
            for _ in range(rnd.randint(4, 24)):
                nb = rnd.randint(1, 16)
                blk = rnd.randrange(0, nblocks - nb)
                if busy & set(range(blk, blk + nb)):
                    continue  # writes in flight together never overlap: their order is not defined
                busy |= set(range(blk, blk + nb))
                fua = rnd.random() < 0.15
                seq += 1
                data = b"".join(block_data(seq, blk + i) for i in range(nb))
                j.write(f"W {seq} {blk} {nb} {int(fua)}\n")
                buf = nbd.Buffer.from_bytearray(bytearray(data))
                cookie = h.aio_pwrite(buf, blk * BLOCK, flags=nbd.CMD_FLAG_FUA if fua else 0)
                batch.append((seq, cookie, buf))
            for s, cookie, _ in batch:
                while not h.aio_command_completed(cookie):
                    h.poll(-1)
                j.write(f"A {s}\n")
            h.flush()
            j.write(f"F {seq}\n")
            rounds += 1
    except Exception as e:  # the daemon was killed: that is the point
        print(f"writer stopped after {rounds} flushed batches: {e}", flush=True)
    j.close()


def verify(uri, journal, image):
    writes = read_journal(journal)
    hist = {}  # block -> [(seq, durable)] in sequence order
    for seq, blk, nb, durable in sorted(writes):
        for b in range(blk, blk + nb):
            hist.setdefault(b, []).append((seq, durable))
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    disk = bytearray()
    while len(disk) < size:
        disk += h.pread(min(32 << 20, size - len(disk)), len(disk))
    base = open(image, "rb").read()
    lost, checked_durable = [], 0
    for b, hs in hist.items():
        got = bytes(disk[b * BLOCK:(b + 1) * BLOCK])
        d = max((i for i, (_, dur) in enumerate(hs) if dur), default=None)
        allowed = {s for s, _ in hs[d:]} if d is not None else {s for s, _ in hs} | {"base"}
        if d is not None:
            checked_durable += 1
        if got == base[b * BLOCK:(b + 1) * BLOCK]:
            what = "base"
        else:
            seq, blk = struct.unpack("<QQ", got[:16])
            what = seq if blk == b and got == block_data(seq, b) else "garbage"
        if what not in allowed:
            lost.append((b, what, sorted(allowed, key=str)[:4]))
    # Blocks never written must still be the image's.
    untouched_bad = sum(1 for b in range(size // BLOCK)
                        if b not in hist and disk[b * BLOCK:(b + 1) * BLOCK] != base[b * BLOCK:(b + 1) * BLOCK])
    print(f"verify {uri}: {len(writes)} writes, {sum(1 for w in writes if w[3])} "
          f"durable, {checked_durable} blocks with a durable write, lost writes: {len(lost)}, "
          f"never-written blocks changed: {untouched_bad}", flush=True)
    for b, what, allowed in lost[:10]:
        print(f"  block {b}: holds {what}, expected one of {allowed}", flush=True)
    return 1 if lost or untouched_bad else 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "write":
        write(*sys.argv[2:])
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "verify":
        return verify(*sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
