# nbdtool.py — one libnbd connection running a list of steps; used by the
# tests/test-overlay-*.sh scripts. Run with Debian's python3 (python3-libnbd):
#
#   python3 tests/overlay/nbdtool.py URI STEP [STEP...]
#
# Each STEP is one shell word, fields separated by ':'. Offsets and lengths
# are byte counts; a negative offset counts from the end of the export.
#
#   w:OFF:LEN:SEED          write the pattern SEED (see pattern()) at OFF
#   wf:OFF:LEN:SEED         the same with the FUA flag
#   flush                   NBD_CMD_FLUSH
#   r:OFF:LEN:SEED          read, must equal the pattern SEED
#   rf:OFF:LEN:FILE         read, must equal FILE's bytes at OFF
#   rz:OFF:LEN              read, must be all zeros
#   trim:OFF:LEN            NBD_CMD_TRIM
#   zero:OFF:LEN[:FLAGS]    NBD_CMD_WRITE_ZEROES; FLAGS: letters f (FAST_ZERO), n (NO_HOLE)
#   bs:OFF:LEN:KIND         block status (base:allocation) of every 4 KiB block
#                           in [OFF, OFF+LEN) must be KIND: data (no HOLE flag),
#                           hole (HOLE|ZERO), zero (ZERO flag, HOLE or not)
#   ew:OFF:LEN:ERRNO        a write must fail with ERRNO (a name: EPERM, ENOSPC); sent
#                           even where libnbd would refuse it itself (strict mode off)
#   et:OFF:LEN:ERRNO        a trim must fail with ERRNO
#   er:OFF:LEN:ERRNO        a read must fail with ERRNO (EIO)
#   ef:ERRNO                a flush must fail with ERRNO
#   ez:OFF:LEN:ERRNO        a write-zeroes must fail with ERRNO
#   fill:OFF:LEN:SEED:CHUNK write the pattern in CHUNK-byte requests, until done
#                           or the first error; prints "fill: wrote N bytes, error E"
#   qr:OFF:SPAN:N:FILE      queue N reads of 4 KiB at once, cycling over [OFF, OFF+SPAN),
#                           then wait for every reply; each must equal FILE's bytes
#   sw:OFF:NBLK:MAP         write 512-byte sectors of the NBLK 4 KiB blocks from OFF, all
#                           queued at once: MAP has 8 characters, one per sector of a
#                           block; a digit D writes pattern D there, '.' leaves it alone
#   sr:OFF:NBLK:MAP:FILE    read the blocks back: a digit D in MAP = pattern D, '.' =
#                           FILE's bytes (the image)
#   hold:FILE               create FILE, then wait (at most 120 s) until FILE is removed
#                           (a test waits for FILE to exist, then removes it)
#   mark:FILE               create FILE
#   wait:FILE               wait (at most 120 s) until FILE exists (a start signal)
#   size:N                  the export size must be N
#
# Exit status: 0 if every step did what it should, 1 otherwise (the first
# failing step is printed as "FAIL: ..."), 2 for a usage error.
import errno
import os
import random
import sys
import time

import nbd

BLOCK = 4096
HOLE, ZERO = nbd.STATE_HOLE, nbd.STATE_ZERO
_TAPE_LEN = (1 << 20) + 4093  # not a power of two: blocks 1 MiB apart differ
_tapes = {}


def pattern(seed, off, length):
    """The bytes of pattern `seed` at disk offset off: tape[(off + seed) % len]."""
    seed = int(seed)
    tape = _tapes.get(seed)
    if tape is None:
        tape = random.Random(seed).randbytes(_TAPE_LEN)
        tape = tape + tape  # one slice of up to _TAPE_LEN bytes from any start
        _tapes[seed] = tape
    out = bytearray()
    pos = off
    while len(out) < length:
        start = (pos + seed * 977) % _TAPE_LEN
        n = min(length - len(out), _TAPE_LEN)
        out += tape[start:start + n]
        pos += n
    return bytes(out)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "?"


class Tool:
    def __init__(self, uri):
        self.h = nbd.NBD()
        self.h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        self.h.connect_uri(uri)
        self.size = self.h.get_size()
        self.uri = uri

    def off(self, s):
        v = int(s)
        return self.size + v if v < 0 else v

    def read(self, off, length):
        out = bytearray()
        while len(out) < length:
            n = min(length - len(out), 32 << 20)
            out += self.h.pread(n, off + len(out))
        return bytes(out)

    def write(self, data, off, flags=0):
        done = 0
        while done < len(data):
            n = min(len(data) - done, 32 << 20)
            self.h.pwrite(data[done:done + n], off + done, flags)
            done += n

    def check(self, what, got, want, off):
        if got != want:
            i = first_diff(got, want)
            fail(f"{what}: {self.uri} differs at byte {off + i} (got {got[i:i+8].hex()}, "
                 f"expected {want[i:i+8].hex()})")

    def extents(self, off, length):
        """[(start, len, flags)] covering [off, off+length)."""
        out = []
        pos, end = off, off + length

        def cb(meta, start, entries, err):
            p = start
            for i in range(0, len(entries), 2):
                out.append((p, entries[i], entries[i + 1]))
                p += entries[i]
            return 0

        while pos < end:
            before = len(out)
            self.h.block_status(end - pos, pos, cb)
            got = out[before:]
            if not got:
                fail(f"block status at {pos}: no extents")
            last = got[-1]
            pos = last[0] + last[1]
            if sum(e[1] for e in got) == 0:
                fail(f"block status at {pos}: zero-length extents")
        return out

    def step(self, s):
        f = s.split(":")
        op = f[0]
        h = self.h
        if op in ("w", "wf"):
            off, ln = self.off(f[1]), int(f[2])
            self.write(pattern(f[3], off, ln), off, nbd.CMD_FLAG_FUA if op == "wf" else 0)
        elif op == "flush":
            h.flush()
        elif op == "r":
            off, ln = self.off(f[1]), int(f[2])
            self.check(s, self.read(off, ln), pattern(f[3], off, ln), off)
        elif op == "rf":
            off, ln = self.off(f[1]), int(f[2])
            with open(f[3], "rb") as fh:
                fh.seek(off)
                want = fh.read(ln)
            if len(want) != ln:
                fail(f"{s}: {f[3]} is shorter than {off + ln} bytes")
            self.check(s, self.read(off, ln), want, off)
        elif op == "rz":
            off, ln = self.off(f[1]), int(f[2])
            self.check(s, self.read(off, ln), bytes(ln), off)
        elif op == "trim":
            h.trim(int(f[2]), self.off(f[1]))
        elif op == "zero":
            flags = 0
            for c in f[3] if len(f) > 3 else "":
                flags |= {"f": nbd.CMD_FLAG_FAST_ZERO, "n": nbd.CMD_FLAG_NO_HOLE}[c]
            h.zero(int(f[2]), self.off(f[1]), flags)
        elif op == "bs":
            off, ln, kind = self.off(f[1]), int(f[2]), f[3]
            for (start, elen, flags) in self.extents(off, ln):
                lo, hi = max(start, off), min(start + elen, off + ln)
                if lo >= hi:
                    continue
                okk = {"data": not flags & HOLE, "hole": flags & (HOLE | ZERO) == HOLE | ZERO,
                       "zero": bool(flags & ZERO)}[kind]
                if not okk:
                    fail(f"{s}: block status says [{lo}, {hi}) has flags {flags} "
                         f"(hole={flags & HOLE}, zero={flags & ZERO >> 1}), expected {kind}")
        elif op == "ef":
            try:
                h.flush()
            except nbd.Error as e:
                if err_name(e) != f[1]:
                    fail(f"{s}: failed with {err_name(e)} ({e.string}), expected {f[1]}")
                return
            fail(f"{s}: succeeded, expected {f[1]}")
        elif op == "er":
            off, ln, want = self.off(f[1]), int(f[2]), f[3]
            try:
                h.pread(ln, off)
            except nbd.Error as e:
                if err_name(e) != want:
                    fail(f"{s}: failed with {err_name(e)} ({e.string}), expected {want}")
                return
            fail(f"{s}: succeeded, expected {want}")
        elif op in ("ew", "et", "ez"):
            off, ln, want = self.off(f[1]), int(f[2]), f[3]
            # Send the request even where libnbd would refuse it itself (a
            # read-only export): the server's answer is what is tested.
            strict = h.get_strict_mode()
            h.set_strict_mode(0)
            try:
                if op == "ew":
                    h.pwrite(pattern(99, off, ln), off)
                elif op == "et":
                    h.trim(ln, off)
                else:
                    h.zero(ln, off)
            except nbd.Error as e:
                if err_name(e) != want:
                    fail(f"{s}: failed with {err_name(e)} ({e.string}), expected {want}")
                return
            finally:
                h.set_strict_mode(strict)
            fail(f"{s}: succeeded, expected {want}")
        elif op == "fill":
            off, ln, seed, chunk = self.off(f[1]), int(f[2]), f[3], int(f[4])
            done, err = 0, "none"
            while done < ln:
                n = min(chunk, ln - done)
                try:
                    h.pwrite(pattern(seed, off + done, n), off + done)
                except nbd.Error as e:
                    err = err_name(e)
                    break
                done += n
            print(f"fill: wrote {done} bytes, error {err}", flush=True)
        elif op == "qr":
            off, span, n = self.off(f[1]), int(f[2]), int(f[3])
            with open(f[4], "rb") as fh:
                fh.seek(off)
                want = fh.read(span)
            bufs = []
            for i in range(n):
                pos = off + (i * BLOCK) % span
                buf = nbd.Buffer(BLOCK)
                bufs.append((h.aio_pread(buf, pos), buf, pos))
            while h.aio_in_flight() > 0:
                h.poll(-1)
            for cookie, buf, pos in bufs:
                h.aio_command_completed(cookie)
                self.check(f"{s} (read at {pos})", bytes(buf.to_bytearray()),
                           want[pos - off:pos - off + BLOCK], pos)
        elif op == "sw":
            off, nblk, m = self.off(f[1]), int(f[2]), f[3]
            cookies = []
            for b in range(nblk):
                for k, c in enumerate(m):
                    if c != ".":
                        pos = off + b * BLOCK + k * 512
                        buf = nbd.Buffer.from_bytearray(bytearray(pattern(c, pos, 512)))
                        cookies.append((h.aio_pwrite(buf, pos), buf, pos))
            while h.aio_in_flight() > 0:
                h.poll(-1)
            for cookie, buf, pos in cookies:
                try:
                    h.aio_command_completed(cookie)
                except nbd.Error as e:
                    fail(f"{s}: write at {pos} failed: {err_name(e)}: {e.string}")
        elif op == "sr":
            off, nblk, m = self.off(f[1]), int(f[2]), f[3]
            got = self.read(off, nblk * BLOCK)
            with open(f[4], "rb") as fh:
                fh.seek(off)
                img = fh.read(nblk * BLOCK)
            want = bytearray(img)
            for b in range(nblk):
                for k, c in enumerate(m):
                    if c != ".":
                        pos = b * BLOCK + k * 512
                        want[pos:pos + 512] = pattern(c, off + pos, 512)
            self.check(s, got, bytes(want), off)
        elif op == "hold":
            open(f[1], "w").close()
            deadline = time.monotonic() + 120
            while os.path.exists(f[1]):
                if time.monotonic() > deadline:
                    fail(f"{s}: still there after 120 s")
                time.sleep(0.02)
        elif op == "wait":
            deadline = time.monotonic() + 120
            while not os.path.exists(f[1]):
                if time.monotonic() > deadline:
                    fail(f"{s}: not there after 120 s")
                time.sleep(0.005)
        elif op == "mark":
            open(f[1], "w").close()
        elif op == "size":
            if self.size != int(f[1]):
                fail(f"{s}: export size is {self.size}")
        else:
            print(f"nbdtool: unknown step '{s}'", file=sys.stderr)
            sys.exit(2)


def main():
    if len(sys.argv) < 3:
        print(__doc__ if __doc__ else "usage: nbdtool.py URI STEP...", file=sys.stderr)
        sys.exit(2)
    try:
        t = Tool(sys.argv[1])
    except nbd.Error as e:
        fail(f"cannot connect to {sys.argv[1]}: {err_name(e)}: {e.string}")
    for s in sys.argv[2:]:
        try:
            t.step(s)
        except nbd.Error as e:
            fail(f"{s}: {err_name(e)}: {e.string}")
        except (ValueError, IndexError, KeyError) as e:
            print(f"nbdtool: bad step '{s}': {e}", file=sys.stderr)
            sys.exit(2)
    try:
        t.h.shutdown()
    except nbd.Error:
        pass


if __name__ == "__main__":
    main()
