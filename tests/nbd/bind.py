"""bind.py — NBD from a chosen source address, for tests/test-nbd-bind.sh.

    python3 bind.py SOURCE EXPORT STEP...

connects from SOURCE (a loopback address such as 127.0.0.2) to $NBD_HOST:
$NBD_PORT and runs the steps in order on one connection:

    go                  NBD_OPT_GO EXPORT must succeed (transmission follows)
    refused:TEXT        NBD_OPT_INFO and NBD_OPT_GO of EXPORT must fail with
                        NBD_REP_ERR_POLICY and a message containing TEXT; the
                        negotiation goes on
    list:NAME           NBD_OPT_LIST must include NAME
    unlisted:NAME       ... must not include NAME
    oldgo               NBD_OPT_EXPORT_NAME EXPORT; must be closed without an answer
    w:OFF:B             (after go) write 4 KiB of byte B at OFF
    r:OFF:B             (after go) read 4 KiB at OFF: must be all byte B
    eperm:OFF           (after go) a write at OFF must fail with EPERM
Exit 0 if every step did what it should, 1 otherwise (with the reason).
"""
import errno
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawnbd as rn  # noqa: E402


def main():
    src, export, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    c = rn.Raw(os.environ["NBD_HOST"], os.environ["NBD_PORT"], source=src)
    c.handshake()
    cookie = 1
    for st in steps:
        f = st.split(":", 1)
        if f[0] in ("w", "r", "eperm"):
            f = st.split(":")
        if f[0] == "go":
            final, _ = c.go(export)
            assert final == rn.REP_ACK, f"GO {export} from {src}: reply {final:#x}, expected ACK"
        elif f[0] == "refused":
            n = export.encode()
            for opt in (rn.OPT_INFO, rn.OPT_GO):
                replies, final = c.option(opt, struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
                msg = replies[-1][1].decode(errors="replace")
                assert final == rn.REP_ERR_POLICY, f"option {opt} {export} from {src}: {final:#x} {msg!r}"
                assert f[1] in msg, f"option {opt} refused with {msg!r}, expected it to say {f[1]!r}"
            print(f"{src}: {export} refused: {msg}")
        elif f[0] in ("list", "unlisted"):
            names = c.list_exports()
            assert (f[1] in names) == (f[0] == "list"), f"LIST from {src}: {names}"
        elif f[0] == "oldgo":
            c.send_option(rn.OPT_EXPORT_NAME, export.encode())
            assert c.wait_closed(10), f"NBD_OPT_EXPORT_NAME {export} from {src} was not closed"
            return 0
        elif f[0] == "w":
            off = int(f[1])
            c.request(rn.CMD_WRITE, cookie, off, 4096, data=bytes([int(f[2])]) * 4096)
            ck, err, _ = c.reply()
            assert ck == cookie and err == 0, f"write at {off} from {src}: error {err}"
        elif f[0] == "r":
            off = int(f[1])
            ck, err, data = c.read(cookie, off, 4096)
            assert err == 0 and data == bytes([int(f[2])]) * 4096, f"read at {off} from {src}: error {err} or wrong data"
        elif f[0] == "eperm":
            off = int(f[1])
            c.request(rn.CMD_WRITE, cookie, off, 4096, data=bytes(4096))
            ck, err, _ = c.reply()
            assert err == errno.EPERM, f"write to {export} from {src}: error {err}, expected EPERM"
        else:
            print(__doc__, file=sys.stderr)
            return 2
        cookie += 1
    c.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, rn.Closed, OSError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
