# options.py — NBD negotiation and meta contexts through libnbd.
# Run by tests/test-nbd-options.sh through "${NBDSH[@]}" (inside nbdsh, which has
# already imported the `nbd` module). Environment:
#   NBD_HOST, NBD_PORT
#   IMG, IMG_FILE, IMG_DESC   a fully allocated random image and its description
#   SPARSE, SPARSE_FILE       a sparse image; SPARSE_FILE.data lists its data
#                             blocks ("OFFSET LENGTH" lines)
#   CLIENT                    a client export (client/MAC) linked to IMG
import os
import random
import sys

sys.path.insert(0, os.path.join(os.environ["TESTS"], "nbd"))
import rawnbd as R  # noqa: E402

HOST, PORT = os.environ["NBD_HOST"], os.environ["NBD_PORT"]
IMG, IMG_FILE, IMG_DESC = os.environ["IMG"], os.environ["IMG_FILE"], os.environ["IMG_DESC"]
SPARSE, SPARSE_FILE = os.environ["SPARSE"], os.environ["SPARSE_FILE"]
CLIENT = os.environ["CLIENT"]
IMG_DATA = open(IMG_FILE, "rb").read()
SPARSE_SIZE = os.path.getsize(SPARSE_FILE)
DATA_BLOCKS = [tuple(map(int, line.split())) for line in open(SPARSE_FILE + ".data")]
HOLE = 1  # NBD_STATE_HOLE
ZERO = 2  # NBD_STATE_ZERO


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}")


def opt_handle(**settings):
    """A handle left in negotiation (opt mode) on a fresh connection."""
    h = nbd.NBD()  # noqa: F821 (nbdsh provides nbd)
    h.set_opt_mode(True)
    for k, v in settings.items():
        getattr(h, "set_" + k)(v)
    h.connect_tcp(HOST, PORT)
    return h


def expect_error(what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:  # noqa: F821
        ok(f"{what} -> error ({e.string.strip() if e.string else e.errno})")
        return
    fail(f"{what} succeeded, expected an error")


def sparse_read(h):
    """Compare reads of every data block and a few holes with the file."""
    with open(SPARSE_FILE, "rb") as f:
        for off, ln in DATA_BLOCKS:
            f.seek(off)
            if h.pread(ln, off) != f.read(ln):
                fail(f"{SPARSE}: data block at {off} reads wrong")
        for off in (4096 * 3, SPARSE_SIZE // 2 + 65536, SPARSE_SIZE - 3 * 65536):
            if any(o <= off < o + l or o < off + 4096 <= o + l for o, l in DATA_BLOCKS):
                continue
            if h.pread(4096, off) != bytes(4096):
                fail(f"{SPARSE}: hole at {off} does not read as zeros")


def random_reads(h, n=64):
    rnd = random.Random(1)
    size = len(IMG_DATA)
    ranges = [(0, 4096), (size - 1, 1), (size - 4096 - 17, 4096 + 17), (1, 65536)]
    ranges += [(o, rnd.randint(1, min(256 << 10, size - o))) for o in (rnd.randrange(size) for _ in range(n))]
    for off, ln in ranges:
        if h.pread(ln, off) != IMG_DATA[off:off + ln]:
            fail(f"{IMG}: pread {off}+{ln} returned wrong data")


# --- NBD_OPT_LIST ---------------------------------------------------------
h = opt_handle()
listed = {}
h.opt_list(lambda name, desc: listed.__setitem__(name, desc) or 0)
for name in (IMG, SPARSE, CLIENT):
    if name not in listed:
        fail(f"NBD_OPT_LIST: {name!r} missing from {sorted(listed)}")
ok(f"NBD_OPT_LIST: {sorted(listed)}")

# --- NBD_OPT_INFO -----------------------------------------------------------
h.set_full_info(True)  # ask for NBD_INFO_NAME and NBD_INFO_DESCRIPTION too
h.set_export_name(IMG)
h.opt_info()
if h.get_size() != len(IMG_DATA):
    fail(f"INFO {IMG}: size {h.get_size()}, expected {len(IMG_DATA)}")
if not h.is_read_only():
    fail(f"INFO {IMG}: not read-only")
try:
    desc = h.get_export_description()
except nbd.Error:  # noqa: F821
    fail(f"INFO {IMG}: the server sent no NBD_INFO_DESCRIPTION")
if desc != IMG_DESC:
    fail(f"INFO {IMG}: description {desc!r}, expected {IMG_DESC!r}")
bmin, bpref, bmax = (h.get_block_size(w) for w in (nbd.SIZE_MINIMUM, nbd.SIZE_PREFERRED, nbd.SIZE_MAXIMUM))  # noqa: F821
if not (1 <= bmin <= bpref <= bmax) or bmin & (bmin - 1) or bpref & (bpref - 1):
    fail(f"INFO {IMG}: block sizes min {bmin} preferred {bpref} max {bmax} (0 = not sent)")
if bmax < 1 << 20:
    fail(f"INFO {IMG}: maximum block size {bmax} is below 1 MiB")
ok(f"NBD_OPT_INFO {IMG}: size {h.get_size()}, read-only, description {desc!r}, "
   f"block sizes {bmin}/{bpref}/{bmax}, name {h.get_canonical_export_name()!r}")

# Unknown export: an error, and the negotiation goes on.
h.set_export_name("no-such-export")
expect_error("NBD_OPT_INFO of an unknown export", h.opt_info)
h.set_export_name(CLIENT)
h.opt_info()
if h.get_size() != len(IMG_DATA):
    fail(f"INFO {CLIENT}: size {h.get_size()}, expected {len(IMG_DATA)} (its image's)")
ok(f"NBD_OPT_INFO {CLIENT} after the error: size {h.get_size()}")

# --- NBD_OPT_LIST_META_CONTEXT -------------------------------------------------
h.set_export_name(SPARSE)
ctxs = []
n = h.opt_list_meta_context(lambda name: ctxs.append(name) or 0)
if "base:allocation" not in ctxs:
    fail(f"LIST_META_CONTEXT (all): base:allocation missing from {ctxs}")
ok(f"LIST_META_CONTEXT (all): {ctxs}")
h.add_meta_context("base:")
ctxs = []
h.opt_list_meta_context(lambda name: ctxs.append(name) or 0)
if "base:allocation" not in ctxs:
    fail(f"LIST_META_CONTEXT 'base:': base:allocation missing from {ctxs}")
h.clear_meta_contexts()
h.add_meta_context("nosuch:context")
ctxs = []
h.opt_list_meta_context(lambda name: ctxs.append(name) or 0)
if ctxs:
    fail(f"LIST_META_CONTEXT 'nosuch:context': got {ctxs}, expected none")
ok("LIST_META_CONTEXT 'base:' finds base:allocation, an unknown namespace finds nothing")
h.clear_meta_contexts()

# --- NBD_OPT_GO ---------------------------------------------------------------
h.set_export_name("no-such-export")
expect_error("NBD_OPT_GO of an unknown export", h.opt_go)
h.set_export_name(SPARSE)
h.add_meta_context("base:allocation")
h.opt_go()
if not h.can_meta_context("base:allocation"):
    fail("GO with base:allocation requested: context not negotiated (SET_META_CONTEXT)")
if h.get_size() != SPARSE_SIZE:
    fail(f"GO {SPARSE}: size {h.get_size()}, expected {SPARSE_SIZE}")
ok(f"NBD_OPT_GO {SPARSE} after an unknown export: base:allocation set")

# --- block status ---------------------------------------------------------------


def extents_of(h, size):
    """The whole export's base:allocation map as (offset, length, flags)."""
    out = []
    off = 0
    while off < size:
        got = []

        def cb(meta, start, entries, err):
            if meta == "base:allocation":
                pos = start
                for i in range(0, len(entries), 2):
                    got.append((pos, entries[i], entries[i + 1]))
                    pos += entries[i]
            return 0
        h.block_status(min(size - off, 1 << 30), off, cb)
        if not got or got[0][0] != off or got[0][1] == 0:
            fail(f"block status at {off}: bad reply {got[:3]}")
        for o, ln, fl in got:
            ln = min(ln, size - o)
            if ln > 0:
                out.append((o, ln, fl))
        off = out[-1][0] + out[-1][1]
    return out


ext = extents_of(h, SPARSE_SIZE)
hole_bytes = sum(ln for o, ln, fl in ext if fl & HOLE)
for o, ln, fl in ext:
    if fl & HOLE and fl != HOLE | ZERO:
        fail(f"block status: hole at {o}+{ln} has flags {fl}, expected hole+zero (3)")
    for d, dl in DATA_BLOCKS:
        if o < d + dl and d < o + ln and fl & (HOLE | ZERO):
            fail(f"block status: {o}+{ln} flags {fl}, but the image has data at {d}+{dl}")
# Far from any data block, every byte must be reported as a hole (a server
# may round its map to a coarser granularity near data).
slack = 1 << 20
for o, ln, fl in ext:
    if fl & HOLE:
        continue
    for start in range(o, o + ln, 4096):
        if all(abs(start - d) > slack for d, dl in DATA_BLOCKS):
            fail(f"block status: {o}+{ln} reported as data (flags {fl}) but the image has a hole at {start}")
ok(f"block status {SPARSE}: {len(ext)} extents, {hole_bytes} of {SPARSE_SIZE} bytes hole+zero, "
   f"all {len(DATA_BLOCKS)} data blocks data")
sparse_read(h)
ok(f"{SPARSE}: data blocks read back, holes read as zeros")
h.shutdown()

# A fully written image is all data.
h = opt_handle()
h.set_export_name(IMG)
h.add_meta_context("base:allocation")
h.opt_go()
ext = extents_of(h, len(IMG_DATA))
for o, ln, fl in ext:
    if fl & HOLE:
        fail(f"block status {IMG}: hole reported at {o}+{ln} in a fully written image")
ok(f"block status {IMG}: all data ({len(ext)} extents)")
if h.can_cache():
    h.cache(65536, 0)
if h.can_flush():
    h.flush()
ok(f"CACHE ({h.can_cache()}) and FLUSH ({h.can_flush()}) accepted")
h.shutdown()

# --- structured replies on and off ----------------------------------------
for structured in (True, False):
    h = nbd.NBD()  # noqa: F821
    h.set_request_structured_replies(structured)
    h.set_export_name(IMG)
    h.connect_tcp(HOST, PORT)
    if h.get_structured_replies_negotiated() != structured:
        fail(f"structured replies requested={structured}, negotiated={h.get_structured_replies_negotiated()}")
    random_reads(h)
    h.shutdown()
    h = nbd.NBD()  # noqa: F821
    h.set_request_structured_replies(structured)
    h.set_export_name(SPARSE)
    h.connect_tcp(HOST, PORT)
    sparse_read(h)
    h.shutdown()
    ok(f"reads correct with structured replies {'on' if structured else 'off'}")

# --- NBD_OPT_ABORT --------------------------------------------------------
h = opt_handle()
h.opt_abort()
ok("NBD_OPT_ABORT: clean close")

# --- extended headers -------------------------------------------------------
h = nbd.NBD()  # noqa: F821
if hasattr(h, "set_request_extended_headers"):
    h.set_request_extended_headers(True)
    h.set_export_name(IMG)
    h.connect_tcp(HOST, PORT)
    ok(f"extended headers requested: negotiated={h.get_extended_headers_negotiated()}")
    random_reads(h, 16)
    h.shutdown()
    ok("reads correct after requesting extended headers")
else:
    print(f"note: libnbd {h.get_version()} cannot request extended headers; "
          "checking the server's answer to NBD_OPT_EXTENDED_HEADERS with a raw socket instead")
    c = R.Raw(HOST, PORT)
    c.handshake()
    _, ext_reply = c.option(R.OPT_EXTENDED_HEADERS)
    if not ext_reply & R.REP_ERR_BIT:
        fail(f"NBD_OPT_EXTENDED_HEADERS: reply {ext_reply:#x}, expected an error (not supported)")
    if IMG not in c.list_exports():
        fail("NBD_OPT_LIST after EXTENDED_HEADERS: image missing")
    final, info = c.go(IMG)
    if final != R.REP_ACK or info.get("size") != len(IMG_DATA):
        fail(f"GO after EXTENDED_HEADERS: {final:#x} {info}")
    c.close()
    ok(f"NBD_OPT_EXTENDED_HEADERS -> error {ext_reply:#x}; negotiation continued")
print("options.py: all checks passed")
