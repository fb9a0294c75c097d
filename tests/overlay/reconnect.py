# reconnect.py — a client that reconnects over and over, for
# tests/test-overlay-modes.sh. Run with Debian's python3 (python3-libnbd):
#
#   python3 tests/overlay/reconnect.py URI SECS SEED
#
# Writes 4 KiB of pattern SEED (nbdtool.py's) at offset 0 and disconnects;
# then for SECS seconds: connect, read those 4 KiB, disconnect. Within the
# client's boot gap every read must return the write. Exit 0 if all did, 1
# (with the number of the reconnect that lost it) if not.
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbd  # noqa: E402
from nbdtool import pattern  # noqa: E402


def main():
    uri, secs, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    want = pattern(seed, 0, 4096)
    h = nbd.NBD()
    h.connect_uri(uri)
    h.pwrite(want, 0)
    h.flush()
    h.shutdown()
    n, end = 0, time.monotonic() + secs
    while time.monotonic() < end:
        h = nbd.NBD()
        h.connect_uri(uri)
        got = h.pread(4096, 0)
        h.shutdown()
        n += 1
        if got != want:
            print(f"FAIL: {uri}: reconnect {n}: the write is gone (the disk reads as the image again)")
            sys.exit(1)
    print(f"{uri}: {n} reconnects, the write was there every time")


if __name__ == "__main__":
    main()
