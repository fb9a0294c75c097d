# mkexpect.py — build the file a client's disk should read as: a copy of
# the image with nbdtool.py's pattern writes and zeroed ranges applied.
#
#   python3 tests/overlay/mkexpect.py IMAGE OUT EDIT...
#
# EDIT: w:OFF:LEN:SEED (pattern SEED, as nbdtool.py writes it) or
# z:OFF:LEN (zeros); a negative OFF counts from the end. Edits apply in
# order. Prints the sha256 of OUT.
import hashlib
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbdtool import pattern  # noqa: E402


def main():
    if len(sys.argv) < 3:
        print("usage: mkexpect.py IMAGE OUT EDIT...", file=sys.stderr)
        sys.exit(2)
    img, out = sys.argv[1], sys.argv[2]
    shutil.copyfile(img, out)
    size = os.path.getsize(out)
    with open(out, "r+b") as f:
        for e in sys.argv[3:]:
            p = e.split(":")
            off = int(p[1])
            off = size + off if off < 0 else off
            ln = int(p[2])
            if off + ln > size:
                print(f"mkexpect: {e} goes past the end ({size})", file=sys.stderr)
                sys.exit(2)
            f.seek(off)
            f.write(pattern(p[3], off, ln) if p[0] == "w" else bytes(ln))
    h = hashlib.sha256()
    with open(out, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    print(h.hexdigest())


if __name__ == "__main__":
    main()
