# client.py — libnbd clients for tests/test-nbd-concurrency.sh, run inside
# nbdsh (NBDSH in tests/lib/common.sh) with the environment:
#   NBD_HOST, NBD_PORT, EXPORT, EXPORT_FILE
#   MODE=inflight  connect, issue INFLIGHT (64) aio_pread of 1 MiB at once,
#                  create the file MARK and wait to be killed: the test kills
#                  this process with SIGKILL, abandoning every request.
#   MODE=steady    connect, create MARK, then loop over random verified reads
#                  (and a few in parallel) until the file STOP exists; exit 0
#                  if every read was right and the connection never broke.
#   MODE=stream    connect, then read the export over and over, 1 MiB
#                  requests, 16 in flight, verifying each; create MARK after
#                  the first pass. When the server goes away, exit 0 if every
#                  read that completed was right (1 if one was wrong).
import os
import random
import sys
import time

HOST, PORT = os.environ["NBD_HOST"], os.environ["NBD_PORT"]
EXPORT, EXPORT_FILE = os.environ["EXPORT"], os.environ["EXPORT_FILE"]
MODE, MARK = os.environ["MODE"], os.environ["MARK"]
DATA = open(EXPORT_FILE, "rb").read()
SIZE = len(DATA)

h = nbd.NBD()  # noqa: F821 (nbdsh provides nbd)
h.set_export_name(EXPORT)
h.connect_tcp(HOST, PORT)

if MODE == "inflight":
    n = int(os.environ.get("INFLIGHT", "64"))
    bufs = []
    for i in range(n):
        ln = min(1 << 20, SIZE)
        off = (i * 4096 * 37) % (SIZE - ln + 1)
        buf = nbd.Buffer(ln)  # noqa: F821
        h.aio_pread(buf, off)
        bufs.append(buf)
    # Push what libnbd has queued onto the socket without waiting for replies.
    deadline = time.monotonic() + 5
    while h.aio_get_direction() & nbd.AIO_DIRECTION_WRITE and time.monotonic() < deadline:  # noqa: F821
        h.poll(0)
    print(f"inflight: {h.aio_in_flight()} requests in flight", flush=True)
    open(MARK, "w").close()
    time.sleep(300)  # killed long before
    sys.exit(3)

if MODE == "steady":
    STOP = os.environ["STOP"]
    rnd = random.Random(7)
    open(MARK, "w").close()
    n = 0
    deadline = time.monotonic() + 240
    while not os.path.exists(STOP):
        if time.monotonic() > deadline:
            print("FAIL: steady: STOP never appeared")
            sys.exit(1)
        off = rnd.randrange(SIZE)
        ln = rnd.randint(1, min(128 << 10, SIZE - off))
        if h.pread(ln, off) != DATA[off:off + ln]:
            print(f"FAIL: steady: wrong data at {off}+{ln}")
            sys.exit(1)
        # and a few in parallel
        reqs = []
        for _ in range(8):
            o = rnd.randrange(SIZE - 4096)
            b = nbd.Buffer(4096)  # noqa: F821
            reqs.append((h.aio_pread(b, o), b, o))
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for cookie, b, o in reqs:
            h.aio_command_completed(cookie)
            if b.to_bytearray() != DATA[o:o + 4096]:
                print(f"FAIL: steady: wrong data at {o}+4096 (aio)")
                sys.exit(1)
        n += 9
    # One last read after everything else happened.
    if h.pread(4096, SIZE - 4096) != DATA[SIZE - 4096:]:
        print("FAIL: steady: last read wrong")
        sys.exit(1)
    h.shutdown()
    print(f"steady: {n + 1} reads verified")
    sys.exit(0)

if MODE == "stream":
    chunk = 1 << 20
    passes = done = 0
    inflight = {}
    off = 0
    try:
        while True:
            while len(inflight) < 16:
                ln = min(chunk, SIZE - off)
                b = nbd.Buffer(ln)  # noqa: F821
                inflight[h.aio_pread(b, off)] = (b, off, ln)
                off += ln
                if off >= SIZE:
                    off = 0
                    passes += 1
                    if passes == 1:
                        open(MARK, "w").close()
            h.poll(-1)
            for cookie in list(inflight):
                if h.aio_command_completed(cookie):
                    b, o, ln = inflight.pop(cookie)
                    if b.to_bytearray() != DATA[o:o + ln]:
                        print(f"FAIL: stream: wrong data at {o}+{ln}")
                        sys.exit(1)
                    done += 1
    except nbd.Error as e:  # noqa: F821
        print(f"stream: server went away after {done} verified reads ({passes} passes): {e}")
        sys.exit(0)

print(f"unknown MODE {MODE}")
sys.exit(2)
