# storm.py — many NBD connections reading the same region, for the cache
# tests (tests/test-cache-*.sh). Run with Debian's python3 (python3-libnbd):
#
#   python3 tests/overlay/storm.py FILE OFF LEN MODE URI [URI...]
#
# Environment: DEPTH = most reads one connection has in flight (default 64;
# 0 = queue every read at once).
#
# Connection i (to URI i) reads [OFF, OFF+LEN) whole, in chunks of a size
# that depends on i (4 KiB .. 4 MiB, some not multiples of 4 KiB), forward
# for even i and backward for odd i, and every byte must equal FILE's at the
# same offset (FILE is the image the export serves).
#   MODE concurrent: connect every URI first, then queue DEPTH reads on
#                    every connection, then drive all connections together,
#                    topping each up to DEPTH, until every reply is in (a
#                    boot storm).
#   MODE sequential: one connection at a time: connect, read, disconnect.
#   MODE scattered:  as concurrent, but every connection reads the same
#                    seeded set of small pieces (512 B .. 20 KiB at 512-byte
#                    offsets, a sparse third of the region), each in its own
#                    order; prints "units_bytes=N": the bytes of the 4 KiB
#                    units they cover (what a cache filling 4 KiB units
#                    reads from disk, cold).
#   MODE forward4k:  as concurrent, every connection reading the region
#                    forward in 4 KiB pieces.
# Exit status 0 if every read returned the right bytes, 1 otherwise.
import os
import select
import sys

import nbd

CHUNKS = [65536, 4096, 1 << 20, 262144, 12288, 4 << 20, 131072, 69632, 8192, 524288, 20480, 2 << 20]


def scattered(off, length):
    import random
    rng = random.Random(int(os.environ.get("SEED", "1")))
    pieces, pos = [], off
    while pos < off + length:
        pos += rng.randrange(0, 40) * 512
        n = min(rng.randrange(1, 41) * 512, off + length - pos)
        if n > 0:
            pieces.append((pos, n))
        pos += max(n, 0) + rng.randrange(1, 80) * 512
    return pieces


def units_bytes(pieces):
    units = set()
    for pos, n in pieces:
        units.update(range(pos // 4096, (pos + n - 1) // 4096 + 1))
    return 4096 * len(units)


def plan(i, off, length, mode="concurrent"):
    if mode == "scattered":
        import random
        pieces = scattered(off, length)
        random.Random(i).shuffle(pieces)
        return pieces
    if mode == "forward4k":
        return [(p, min(4096, off + length - p)) for p in range(off, off + length, 4096)]
    cs = CHUNKS[i % len(CHUNKS)]
    pieces = []
    pos = off
    while pos < off + length:
        n = min(cs, off + length - pos)
        pieces.append((pos, n))
        pos += n
    return pieces[::-1] if i % 2 else pieces


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def main():
    if len(sys.argv) < 6:
        print("usage: storm.py FILE OFF LEN MODE URI...", file=sys.stderr)
        sys.exit(2)
    path, off, length, mode, uris = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    with open(path, "rb") as f:
        f.seek(off)
        want = f.read(length)
    if len(want) != length:
        fail(f"{path} has no {length} bytes at {off}")

    def check(i, uri, pos, got):
        exp = want[pos - off:pos - off + len(got)]
        if got != exp:
            k = next(j for j in range(len(got)) if got[j] != exp[j])
            fail(f"connection {i} ({uri}): wrong data at byte {pos + k}")

    if mode == "sequential":
        for i, uri in enumerate(uris):
            h = connect(uri)
            for pos, n in plan(i, off, length):
                check(i, uri, pos, h.pread(n, pos))
            h.shutdown()
        print(f"storm: {len(uris)} connections, one after another, read {length} bytes each")
        return
    if mode not in ("concurrent", "scattered", "forward4k"):
        fail(f"unknown mode {mode}")

    depth = int(os.environ.get("DEPTH", "64"))
    hs = [connect(u) for u in uris]
    todo = [plan(i, off, length, mode) for i in range(len(hs))]  # pieces not yet issued
    inflight = [dict() for _ in hs]                          # cookie -> (buf, pos)
    nreq = sum(len(t) for t in todo)

    def top_up(i):
        while todo[i] and (depth == 0 or len(inflight[i]) < depth):
            pos, n = todo[i].pop(0)
            buf = nbd.Buffer(n)
            inflight[i][hs[i].aio_pread(buf, pos)] = (buf, pos)

    def retire(i):
        for cookie in list(inflight[i]):
            try:
                if not hs[i].aio_command_completed(cookie):
                    continue
            except nbd.Error as e:
                fail(f"connection {i} ({uris[i]}): read at {inflight[i][cookie][1]} failed: {e.string}")
            buf, pos = inflight[i].pop(cookie)
            check(i, uris[i], pos, bytes(buf.to_bytearray()))

    for i in range(len(hs)):
        top_up(i)
    busy = set(range(len(hs)))
    while busy:
        rl, wl, fdmap = [], [], {}
        for i in list(busy):
            h = hs[i]
            retire(i)
            top_up(i)
            if not inflight[i]:
                busy.discard(i)
                continue
            fd, d = h.aio_get_fd(), h.aio_get_direction()
            fdmap[fd] = h
            if d & nbd.AIO_DIRECTION_READ:
                rl.append(fd)
            if d & nbd.AIO_DIRECTION_WRITE:
                wl.append(fd)
        if not busy:
            break
        r, w, _ = select.select(rl, wl, [], 30)
        if not r and not w:
            fail(f"no progress for 30 s ({len(busy)} connections still waiting)")
        for fd in r:
            fdmap[fd].aio_notify_read()
        for fd in w:
            fdmap[fd].aio_notify_write()
    for h in hs:
        h.shutdown()
    print(f"storm: {len(uris)} connections at once read {length if mode != 'scattered' else 'pieces of'} bytes "
          f"each ({nreq} requests, at most {depth or 'all'} in flight per connection)")
    if mode == "scattered":
        print(f"units_bytes={units_bytes(scattered(off, length))}")


if __name__ == "__main__":
    try:
        main()
    except nbd.Error as e:
        fail(f"{e.string}")
