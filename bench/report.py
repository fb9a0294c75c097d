#!/usr/bin/env python3
"""report.py — turn the records bench/run.sh wrote into the results table.

    report.py DIR OUT.md
    report.py --storm DIR OUT.md     (bench/storm.sh run by itself: the boot-storm section only)
    report.py --iscsi DIR OUT.md     (bench/iscsi.sh run by itself: the iSCSI section only)

DIR holds four tab-separated files written by run.sh:

  meta.tsv     key, value                 (date, machine, mode, cache notes ...)
  servers.tsv  server, status, detail, cache, command
                 status "ok" or "na"; detail is the version (ok) or the reason (na),
                 written "short: details" (the table shows the short part)
  rows.tsv     row id, title, unit, fio command line (port shown as PORT)
  results.tsv  row id, server, run, status, value, io_bytes, cpu_ticks, p99_us, note,
               client_cores (fio's CPU in cores)
                 status "ok" or "fail"; value is MiB/s or IOPS (the row's unit);
                 cpu_ticks is the server's utime+stime over the run (clock ticks)

If DIR also holds storm.tsv (bench/storm.sh, called by run.sh), the report gets
a "Boot storm" section; see storm_section(). If it holds iscsi.tsv
(bench/iscsi.sh), an "iSCSI" section; see iscsi_section().

Writes the full markdown report to OUT.md and prints the tables (aligned
markdown, readable as plain text) to stdout. Standard library only.

Every cell is "median [min–max]" over the runs; the ratio column is
bootlinkd's median divided by the best peer's median (higher is better for
throughput, and for CPU per GiB the best peer is the lowest; lower is better).
"""
import os
import statistics
import sys

from limits_report import limits_section

NOISY = 0.15  # (max - min) / median above this gets a dagger


def read_tsv(path, ncols):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            parts += [""] * (ncols - len(parts))
            rows.append(parts[:ncols])
    return rows


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return "{:,.0f}".format(v).replace(",", " ")
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(values, fails, show_range=True):
    if not values:
        return None
    med = statistics.median(values)
    s = fmt(med)
    if show_range and len(values) > 1:
        lo, hi = min(values), max(values)
        s += " [%s–%s]" % (fmt(lo), fmt(hi))
        if med > 0 and (hi - lo) / med > NOISY:
            s += " †"
    if fails:
        s += " (%d/%d runs failed)" % (fails, fails + len(values))
    return s


def table(header, rows):
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    out = ["| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(header)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------- boot storm
# bench/storm.sh writes storm.tsv, storm-meta.tsv and storm-servers.tsv (into
# run.sh's DIR when run.sh calls it, else into its own); storm_section() turns
# them into the report's "Boot storm" section.

STORM_COLS = ("row", "server", "run", "status", "total_s", "p50_s", "p99_s", "disk_bytes",
              "proc_read_bytes", "cpu_ticks", "bytes_read", "bytes_written", "verified", "reconnects", "note")


def storm_section(d, clk=100.0):
    """Markdown lines of the boot-storm section, or [] if storm.sh left no records."""
    import json
    path = os.path.join(d, "storm.tsv")
    if not os.path.exists(path):
        return []
    recs = [dict(zip(STORM_COLS, r)) for r in read_tsv(path, len(STORM_COLS))]
    meta = dict((k, v) for k, v in read_tsv(os.path.join(d, "storm-meta.tsv"), 2))
    servers = read_tsv(os.path.join(d, "storm-servers.tsv"), 4)
    names = [s[0] for s in servers] or sorted({r["server"] for r in recs})
    status = {s[0]: s for s in servers}
    peers = [n for n in names if n != "bootlinkd"]
    rows = []
    for nc in meta.get("clients", "").split():
        for cache in ("cold", "warm"):
            rows.append(("c%s-%s" % (nc, cache), "%s clients, %s" % (nc, cache)))

    def series(row, srv, col, scale=1.0):
        out = []
        for r in recs:
            if r["row"] == row and r["server"] == srv and r["status"] in ("ok", "wrong"):
                try:
                    out.append(float(r[col]) / scale)
                except ValueError:
                    pass
        return out

    def fails(row, srv):
        return [r for r in recs if r["row"] == row and r["server"] == srv and r["status"] == "fail"]

    def wrong(row, srv):
        return any(r["row"] == row and r["server"] == srv and r["status"] == "wrong" for r in recs)

    def scell(row, srv, col, scale=1.0, show_range=True):
        st = status.get(srv)
        if st and st[1] != "ok" and not series(row, srv, col, scale):
            return "n/a (%s)" % st[2].split(": ", 1)[0].split("; ")[-1][:60]
        f = fails(row, srv)
        c = cell(series(row, srv, col, scale), len(f), show_range)
        if c is not None and wrong(row, srv):
            c += " ‡"
        if c is None:
            if f:
                return "n/a (%s)" % (f[-1]["note"][:60] or "failed")
            return "n/a" if col in ("disk_bytes", "proc_read_bytes", "cpu_ticks") else "n/a (not run)"
        return c

    def sratio(row, col, scale=1.0):
        m = {s: statistics.median(series(row, s, col, scale)) for s in names if series(row, s, col, scale)}
        if "bootlinkd" not in m:
            return "n/a (no bootlinkd figure)"
        pm = {p: m[p] for p in peers if p in m}
        if not pm:
            return "n/a (no peer figure)"
        best = min(pm, key=pm.get)
        if pm[best] <= 0:
            return "n/a"
        return "%.2f× vs %s" % (m["bootlinkd"] / pm[best], best)

    hdr = ["storm"] + names + ["bootlinkd / best peer"]
    t_total, t_lat, t_disk, t_cpu = [], [], [], []
    for rid, title in rows:
        t_total.append([title] + [scell(rid, s, "total_s") for s in names] + [sratio(rid, "total_s")])
        lat = []
        for s in names:
            a, b = series(rid, s, "p50_s"), series(rid, s, "p99_s")
            lat.append("%s / %s%s" % (fmt(statistics.median(a)), fmt(statistics.median(b)),
                                      " ‡" if wrong(rid, s) else "") if a and b else scell(rid, s, "p50_s"))
        t_lat.append([title] + lat + [sratio(rid, "p99_s") + " (p99)"])
        t_disk.append([title] + [scell(rid, s, "disk_bytes", 1048576.0) for s in names]
                      + [sratio(rid, "disk_bytes", 1048576.0)])
        t_cpu.append([title] + [scell(rid, s, "cpu_ticks", clk) for s in names] + [sratio(rid, "cpu_ticks", clk)])

    try:
        tr = json.loads(meta.get("trace", "{}"))
    except ValueError:
        tr = {}
    mib = lambda b: float(b) / 1048576
    md = ["## Boot storm: many clients boot at once (bench/storm.sh)", ""]
    if tr:
        n = tr["reads_per_client"]
        md.append("Every client replays the same synthetic Windows-like boot trace (seed %s): %.0f MiB in %d reads "
                  "(mean %.1f KiB; %d %% 4 KiB, %d %% 8–12 KiB, %d %% 16–64 KiB, %d %% 128 KiB–1 MiB), %d of them "
                  "re-reads, over %d files scattered on a %.0f MiB image; each client in its own order (shuffled "
                  "within windows of %d) plus %d writes (4–64 KiB) of its own into write zones the reads never "
                  "touch. The read set is %.0f MiB (%.0f MiB in 64 KiB blocks): the least a server can read from "
                  "disk. Queue depth %s per client; %s run(s) per row and server." % (
                      tr.get("seed"), mib(tr["read_bytes_per_client"]), n, tr["mean_read_kib"],
                      100 * tr["reads_4k"] // max(n, 1), 100 * tr["reads_8_12k"] // max(n, 1),
                      100 * tr["reads_16_64k"] // max(n, 1), 100 * tr["reads_128k_1m"] // max(n, 1),
                      tr["rereads"], tr["files"], mib(tr["image_bytes"]), tr["window"], tr["writes_per_client"],
                      mib(tr["unique_read_bytes"]), mib(tr["unique_64k_blocks_bytes"]), meta.get("qd", "?"),
                      meta.get("runs", "?")))
        md.append("")
    md.append("**cold** = the server started afresh (empty cache; bootlinkd with `cache/prefetch`=0), page cache "
              "dropped; **warm** = the same storm again at once on the same server. Each client's time runs from "
              "its connect to its last reply. Cells: median [min–max] over the runs; † = spread over %d %% of "
              "the median; ‡ = the server returned wrong data in at least one of those storms (see the notes)."
              % int(NOISY * 100))
    md.append("")
    md.append("### Total time, s (lower is better)")
    md.append("")
    md.append(table(hdr, t_total))
    md.append("")
    md.append("### Per-client completion time p50 / p99, s (medians over runs; lower is better)")
    md.append("")
    md.append(table(hdr, t_lat))
    md.append("")
    md.append("### Bytes read from disk per storm, MiB")
    md.append("")
    md.append(table(hdr, t_disk))
    md.append("")
    md.append("bootlinkd: `images/storm/disk_bytes` in its runtime tree, before and after the storm. Peers: "
              "`read_bytes` of `/proc/PID/io` of the server process, which includes its per-connection child "
              "processes once they have exited. These count reads that reached the block device; a page-cache "
              "hit is not a disk read.")
    md.append("")
    md.append("### Server CPU per storm, s (lower is better)")
    md.append("")
    md.append(table(hdr, t_cpu))
    md.append("")
    md.append("### Storm notes")
    md.append("")
    md.append("- Page cache: %s." % meta.get("drop_caches", "?"))
    md.append("- nbdkit's cow filter keeps **one** overlay for all connections (every client sees the others' "
              "writes); it is the closest nbdkit gets to a per-client copy-on-write view. bootlinkd (an ephemeral "
              "overlay per client) and nbd-server (`copyonwrite`, a diff file per connection) isolate clients. "
              "Its cache filter runs with `cache-on-read=true`: by default it caches only writes, and with cow "
              "above it none reach it.")
    checked = []
    for s in names:
        per = set()
        for r in recs:
            if r["server"] == s and r["status"] in ("ok", "wrong"):
                try:
                    nc = int(r["row"][1:].split("-")[0])
                    rd, rb = [int(x.split()[0]) for x in r["verified"].split(", ")]
                    per.add("%d reads and %d read-backs" % (rd // nc, rb // nc))
                except (ValueError, IndexError):
                    pass
        if per:
            checked.append("%s %s" % (s, " or ".join(sorted(per))))
    md.append("- Data checks: every 16th read of the base sequence is compared with the image file (read with "
              "O_DIRECT after the storm), and where the server isolates clients each client reads back up to 8 of "
              "its own writes; every check matched except in the storms listed below as failed or wrong data (checks per client and storm: %s)."
              % ("; ".join(checked) if checked else "none"))
    last = {}
    for k in meta:
        if k.startswith("bootlinkd_cache:"):
            last[k.split(":", 1)[1]] = meta[k]
    for rid, title in rows:
        if rid in last:
            md.append("- bootlinkd after the last %s storm: %s." % (title, last[rid]))
    for r in recs:
        if r["status"] == "fail":
            md.append("- **failed**: %s, %s, run %s: %s" % (r["server"], r["row"], r["run"], r["note"] or "?"))
        elif r["status"] == "wrong":
            md.append("- ‡ **wrong data**: %s, %s, run %s: %s" % (r["server"], r["row"], r["run"], r["note"] or "?"))
    if any(r["status"] == "wrong" and r["server"] == "nbd-server" for r in recs):
        md.append("- nbd-server's `copyonwrite` with its worker threads (`max_threads`, default 4) can put a "
                  "write at the wrong place in the diff file when a connection has several writes in flight "
                  "(upstream NetworkBlockDevice/nbd issue #43; a copy-on-write fix was merged in 2025, after "
                  "Debian 12's 3.24). `STORM_NBD_THREADS=1` is the upstream workaround.")
    recon = {}
    for r in recs:
        if r["status"] in ("ok", "wrong") and r["reconnects"] not in ("", "0"):
            recon.setdefault(r["server"], []).append("%s run %s: %s" % (r["row"], r["run"], r["reconnects"]))
    for srv in names:
        if srv in recon:
            md.append("- %s: NBD handshakes retried: %s. All clients connect at once; when a server's listen "
                      "backlog overflows (nbd-server's is 10), the kernel completes some TCP handshakes with SYN "
                      "cookies and then drops them, the server never sees them, and since an NBD server speaks "
                      "first nothing happens until the client gives up (after 5 s, then 5–10 s) and reconnects; "
                      "those clients' times include the wait." % (srv, ", ".join(recon[srv])))
    md.append("- Load average (1/5/15 min): at start %s, at end %s." % (meta.get("load_start", "?"),
                                                                       meta.get("load_end", "?")))
    md.append("- Replayer: `%s`" % meta.get("storm_cmd", "?"))
    md.append("")
    md.append("Storm servers:")
    md.append("")
    for srv, st, detail, cmd in servers:
        md.append("- **%s** (%s)%s" % (srv, detail if detail else st, ("  \n  `%s`" % cmd) if cmd else ""))
    md.append("")
    return md


# ---------------------------------------------------------------- iSCSI
# bench/iscsi.sh writes iscsi.tsv, iscsi-cu.tsv, iscsi-meta.tsv and
# iscsi-servers.tsv (into run.sh's DIR when run.sh calls it, else into its
# own); iscsi_section() turns them into the report's "iSCSI" section.

ISCSI_COLS = ("row", "server", "run", "status", "value", "io_bytes", "cpu_ticks", "note")


def iscsi_section(d, clk=100.0):
    """Markdown lines of the iSCSI section, or [] if iscsi.sh left no records."""
    path = os.path.join(d, "iscsi.tsv")
    if not os.path.exists(path):
        return []
    recs = [dict(zip(ISCSI_COLS, r)) for r in read_tsv(path, len(ISCSI_COLS))]
    cu = read_tsv(os.path.join(d, "iscsi-cu.tsv"), 3)
    meta_rows = read_tsv(os.path.join(d, "iscsi-meta.tsv"), 4)
    meta = dict((r[0], r[1]) for r in meta_rows)
    rowdefs = [(r[0][4:], r[1], r[2], r[3]) for r in meta_rows if r[0].startswith("row:")]
    servers = read_tsv(os.path.join(d, "iscsi-servers.tsv"), 4)
    names = [s[0] for s in servers] or sorted({r["server"] for r in recs})
    status = {s[0]: s for s in servers}
    peer = "tgtd"

    def series(row, srv, kind):
        out = []
        for r in recs:
            if r["row"] != row or r["server"] != srv or r["status"] != "ok":
                continue
            try:
                if kind == "value":
                    out.append(float(r["value"]))
                elif r["cpu_ticks"] not in ("", "-") and int(r["io_bytes"]) > 0:
                    out.append(int(r["cpu_ticks"]) / clk / (int(r["io_bytes"]) / float(1 << 30)))
            except ValueError:
                pass
        return out

    def icell(row, srv, kind):
        st = status.get(srv)
        if st and st[1] != "ok":
            return "n/a (%s)" % st[2].split(": ", 1)[0][:60]
        f = [r for r in recs if r["row"] == row and r["server"] == srv and r["status"] == "fail"]
        c = cell(series(row, srv, kind), len(f))
        if c is None:
            return "n/a (%s)" % (f[-1]["note"][:60] if f else "not run")
        return c

    def iratio(row, kind):
        a, b = series(row, "bootlinkd", kind), series(row, peer, kind)
        if not a or not b:
            return "n/a"
        mb = statistics.median(b)
        return "%.2f×" % (statistics.median(a) / mb) if mb > 0 else "n/a"

    hdr = ["row", "unit"] + names + ["bootlinkd / tgtd"]
    t_perf, t_cpu = [], []
    for rid, title, unit, _cmd in rowdefs:
        t_perf.append([title, unit] + [icell(rid, s, "value") for s in names] + [iratio(rid, "value")])
        t_cpu.append([title, "s/GiB"] + [icell(rid, s, "cpu") for s in names] + [iratio(rid, "cpu")])

    res = {}
    for srv, test, st in cu:
        res.setdefault(srv, {})[test] = st
    cu_rows = []
    for srv in names:
        r = res.get(srv, {})
        cnt = lambda k: sum(1 for v in r.values() if v == k)
        if not r:
            st = status.get(srv)
            cu_rows.append([srv] + ["n/a"] * 5 + [("n/a (%s)" % st[2].split(": ", 1)[0][:60]) if st and st[1] != "ok" else "not run"])
            continue
        cu_rows.append([srv, str(len(r)), str(cnt("PASS")), str(cnt("SKIP")), str(cnt("FAIL")),
                        str(cnt("CRASH") + cnt("HANG")), ""])

    md = ["## iSCSI: bootlinkd vs tgtd (bench/iscsi.sh)", ""]
    md.append("Both targets on loopback, on the same image file (%s), in the same run. Rows: libiscsi's "
              "`iscsi-perf` (one session, the same settings for both), %s run(s) of %s s per row and server, "
              "interleaved; cells median [min–max]; † = spread over %d %% of the median. Target: "
              "bootlinkd ≥ 2× tgtd." % (meta.get("image", "?"), meta.get("runs", "?"), meta.get("seconds", "?"),
                                       int(NOISY * 100)))
    md.append("")
    md.append("### Throughput (higher is better)")
    md.append("")
    md.append(table(hdr, t_perf))
    md.append("")
    md.append("### Server CPU per GiB served (lower is better)")
    md.append("")
    md.append(table(hdr, t_cpu))
    md.append("")
    md.append("utime+stime of the target process (all threads) over the run, divided by the bytes "
              "iscsi-perf read (its average IOPS × request size × seconds).")
    md.append("")
    md.append("### iscsi-test-cu (libiscsi's conformance suite), %s suite(s)" % meta.get("suites", "?"))
    md.append("")
    md.append(table(["target", "tests", "passed", "skipped", "failed", "crashed/hung", "note"], cu_rows))
    md.append("")
    md.append("`%s`, against a scratch disk of each target: bootlinkd's client target (its overlay over a 64 MiB "
              "image), tgtd's LUN 1 on a copy of the same image. **skipped** = counted as passed by CUnit "
              "but printed `[SKIPPED]` (the target reports it lacks the feature, or a -S test)." % meta.get("cu_cmd", "?"))
    md.append("")
    bl, tg = res.get("bootlinkd", {}), res.get(peer, {})
    for title, lst in (
            ("Failing on bootlinkd", sorted(t for t, v in bl.items() if v not in ("PASS", "SKIP"))),
            ("Failing on tgtd", sorted(t for t, v in tg.items() if v not in ("PASS", "SKIP"))),
            ("Passed on tgtd, not on bootlinkd", sorted(t for t, v in tg.items() if v == "PASS" and bl.get(t) not in (None, "PASS"))),
            ("Passed on bootlinkd, not on tgtd", sorted(t for t, v in bl.items() if v == "PASS" and tg.get(t) not in (None, "PASS")))):
        if bl and tg or lst:
            md.append("- %s (%d): %s" % (title, len(lst), ", ".join(lst) if lst else "none"))
    md.append("")
    md.append("### iSCSI notes")
    md.append("")
    md.append("- Warm-up (untimed): %s. Image page-cache residency after it: %s." % (
        meta.get("warmup", "?"), meta.get("residency", "?")))
    if meta.get("bootlinkd_stats"):
        md.append("- bootlinkd after the rows (warm-up included): %s." % meta["bootlinkd_stats"])
    md.append("- Load average (1/5/15 min): at start %s, at end %s. The machine is shared: absolute figures "
              "move with the load, the ratio taken in one run is what to compare." % (
                  meta.get("load_start", "?"), meta.get("load_end", "?")))
    for rid, title, _unit, cmd in rowdefs:
        md.append("- %s: `%s`" % (title, cmd))
    md.append("")
    md.append("iSCSI targets:")
    md.append("")
    for srv, st, detail, cmd in servers:
        md.append("- **%s** (%s)%s" % (srv, detail if detail else st, ("  \n  `%s`" % cmd) if cmd else ""))
    md.append("")
    return md


def iscsi_main(d, out_path):
    """report.py --iscsi DIR OUT.md: the iSCSI section alone (bench/iscsi.sh run by itself)."""
    meta = dict((r[0], r[1]) for r in read_tsv(os.path.join(d, "iscsi-meta.tsv"), 2))
    clk = float(meta.get("clk_tck", "100") or 100)
    head = ["# iSCSI: bootlinkd vs tgtd — %s" % meta.get("date", "?"), "",
            "Mode: **%s**." % meta.get("mode", "?"), ""]
    body = iscsi_section(d, clk)
    machine = ["## Machine", ""]
    for key, label in (("nproc", "CPUs (nproc)"), ("cpu", "CPU model"), ("mem", "Memory"),
                       ("kernel", "Kernel"), ("disk", "Disk (df -hT of the image directory)"),
                       ("commit", "bootlink commit")):
        machine.append("- %s: %s" % (label, meta.get(key, "?")))
    for k in sorted(meta):
        if k.startswith("pkg:"):
            machine.append("- %s %s" % (k[4:], meta[k]))
    machine.append("")
    md = "\n".join(head + body + machine)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(md)
    os.replace(out_path + ".tmp", out_path)
    print("\n".join(head + body))
    print("Full report: %s" % out_path)
    return 0


def storm_main(d, out_path):
    """report.py --storm DIR OUT.md: the storm section alone (bench/storm.sh run by itself)."""
    meta = dict((k, v) for k, v in read_tsv(os.path.join(d, "storm-meta.tsv"), 2))
    clk = float(os.sysconf("SC_CLK_TCK"))
    head = ["# Boot storm — %s" % meta.get("date", "?"), "",
            "Mode: **%s**; image %s." % (meta.get("mode", "?"), meta.get("image", "?")), ""]
    body = storm_section(d, clk)
    machine = ["## Machine", ""]
    for key, label in (("nproc", "CPUs (nproc)"), ("cpu", "CPU model"), ("mem", "Memory"),
                       ("kernel", "Kernel"), ("disk", "Disk (df -hT of the image directory)"),
                       ("commit", "bootlink commit")):
        machine.append("- %s: %s" % (label, meta.get(key, "?")))
    for k in sorted(meta):
        if k.startswith("pkg:"):
            machine.append("- %s %s" % (k[4:], meta[k]))
    machine.append("")
    md = "\n".join(head + body + machine)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path + ".tmp", "w", encoding="utf-8") as f:
        f.write(md)
    os.replace(out_path + ".tmp", out_path)
    print("\n".join(head + body))
    print("Full report: %s" % out_path)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "--storm":
        return storm_main(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "--iscsi":
        return iscsi_main(argv[2], argv[3])
    if len(argv) != 3:
        print("usage: report.py DIR OUT.md", file=sys.stderr)
        return 2
    d, out_path = argv[1], argv[2]
    meta = dict((k, v) for k, v in read_tsv(os.path.join(d, "meta.tsv"), 2))
    servers = read_tsv(os.path.join(d, "servers.tsv"), 5)
    rowdefs = read_tsv(os.path.join(d, "rows.tsv"), 4)
    results = read_tsv(os.path.join(d, "results.tsv"), 10)
    clk = float(meta.get("clk_tck", "100") or 100)

    names = [s[0] for s in servers]
    status = {s[0]: s for s in servers}
    peers = [n for n in names if n != "bootlinkd"]

    # (row, server) -> lists
    val, cpu, p99, fails, notes, ccpu = {}, {}, {}, {}, {}, {}
    for row, srv, _run, st, value, io_bytes, ticks, p99_us, note, ccores in results:
        key = (row, srv)
        val.setdefault(key, [])
        cpu.setdefault(key, [])
        p99.setdefault(key, [])
        ccpu.setdefault(key, [])
        if st == "ok" and ccores not in ("", "-"):
            ccpu[key].append(float(ccores))
        if st != "ok":
            fails[key] = fails.get(key, 0) + 1
            notes[key] = note
            continue
        val[key].append(float(value))
        try:
            gib = int(io_bytes) / float(1 << 30)
            if gib > 0 and ticks not in ("", "-"):
                cpu[key].append(int(ticks) / clk / gib)
        except ValueError:
            pass
        if p99_us not in ("", "-"):
            p99[key].append(float(p99_us))

    def server_cell(row, srv, series, show_range=True):
        st = status[srv]
        if st[1] != "ok":
            # run.sh writes reasons as "short: details"; the table gets the short part
            return "n/a (%s)" % st[2].split(": ", 1)[0]
        key = (row, srv)
        c = cell(series.get(key, []), fails.get(key, 0), show_range)
        if c is None:
            if fails.get(key):
                return "n/a (%s)" % (notes.get(key) or "fio failed")
            return "n/a (not run)"
        return c

    def medians(row, series):
        m = {}
        for srv in names:
            if status[srv][1] == "ok" and series.get((row, srv)):
                m[srv] = statistics.median(series[(row, srv)])
        return m

    def ratio(row, series, higher_better):
        m = medians(row, series)
        if "bootlinkd" not in m:
            return "n/a (no bootlinkd figure)"
        pm = {p: m[p] for p in peers if p in m}
        if not pm:
            return "n/a (no peer figure)"
        best = (max if higher_better else min)(pm, key=pm.get)
        if pm[best] <= 0:
            return "n/a"
        return "%.2f× vs %s" % (m["bootlinkd"] / pm[best], best)

    hdr = ["row", "unit"] + names + ["bootlinkd / best peer"]
    perf_rows, cpu_rows, lat_rows, ccpu_rows = [], [], [], []
    for rid, title, unit, _cmd in rowdefs:
        perf_rows.append([title, unit] + [server_cell(rid, s, val) for s in names]
                         + [ratio(rid, val, True)])
        cpu_rows.append([title, "s/GiB"] + [server_cell(rid, s, cpu) for s in names]
                        + [ratio(rid, cpu, False)])
        lat_rows.append([title, "µs"] + [server_cell(rid, s, p99, False) for s in names]
                        + [ratio(rid, p99, False)])
        ccpu_rows.append([title, "cores"] + [server_cell(rid, s, ccpu) for s in names])

    runs = meta.get("runs", "?")
    head = []
    head.append("# bootlinkd vs peer NBD servers — %s" % meta.get("date", "?"))
    head.append("")
    head.append("Mode: **%s** — %s run(s) per server and row, %s s each after a %s s ramp, "
                "runs interleaved across servers; image %s." % (
                    meta.get("mode", "?"), runs, meta.get("seconds", "?"),
                    meta.get("ramp", "?"), meta.get("image", "?")))
    if meta.get("peers_only"):
        head.append("")
        head.append("**Peers only: %s**" % meta["peers_only"])
    head.append("")

    tables = []
    tables.append("## Throughput (higher is better)")
    tables.append("")
    tables.append(table(hdr, perf_rows))
    tables.append("")
    tables.append("Cells: median [min–max] over %s run(s); † = spread over %d %% of the median "
                  "(noisy). Ratio: bootlinkd median / best peer median — above 1.00× "
                  "bootlinkd is faster." % (runs, int(NOISY * 100)))
    tables.append("")
    tables.append("## Server CPU per GiB served (lower is better)")
    tables.append("")
    tables.append(table(hdr, cpu_rows))
    tables.append("")
    tables.append("utime+stime of the server process (all threads, plus reaped child processes) "
                  "over the measured window, divided by the bytes fio read in it. Ratio below "
                  "1.00× = bootlinkd spends less CPU per GiB than the leanest peer.")
    tables.append("")
    tables.append("## p99 completion latency, median over runs (lower is better)")
    tables.append("")
    tables.append(table(hdr, lat_rows))
    tables.append("")
    if any(ccpu.values()):
        tables.append("## The client's CPU: fio (usr + sys of its jobs), in cores")
        tables.append("")
        tables.append(table(hdr[:-1], ccpu_rows))
        tables.append("")
        tables.append("The machine has %s cores, shared by fio and the server. A row where fio is near "
                      "1.00 core per job is bound by the client (libnbd's own syscalls per request): "
                      "no server can raise its throughput much further, and the ratio of throughputs "
                      "there mostly compares how much CPU each server leaves to fio." % meta.get("nproc", "?"))
        tables.append("")

    notes_md = []
    notes_md.append("## Cache state")
    notes_md.append("")
    notes_md.append("- %s" % meta.get("cache_note", ""))
    notes_md.append("- Image page-cache residency (fincore): before warm-up %s, after the last run %s." % (
        meta.get("residency_start", "?"), meta.get("residency_end", "?")))
    if meta.get("bootlinkd_stats"):
        notes_md.append("- bootlinkd's runtime tree after the last run (whole run, warm-up included): %s." % meta["bootlinkd_stats"])
    notes_md.append("- Load average (1/5/15 min): at start %s, at end %s." % (
        meta.get("load_start", "?"), meta.get("load_end", "?")))
    notes_md.append("")
    notes_md.append("## Servers")
    notes_md.append("")
    for srv, st, detail, cache, cmd in servers:
        if st == "ok":
            notes_md.append("- **%s** (%s) — reads: %s  \n  `%s`" % (srv, detail, cache, cmd))
        else:
            notes_md.append("- **%s** — n/a: %s%s" % (srv, detail, ("  \n  `%s`" % cmd) if cmd else ""))
    notes_md.append("")

    machine = []
    machine.append("## Machine")
    machine.append("")
    for key, label in (("nproc", "CPUs (nproc)"), ("cpu", "CPU model"), ("mem", "Memory"),
                       ("kernel", "Kernel"), ("tcp", "TCP over loopback"),
                       ("disk", "Disk (df -hT of the image directory)"),
                       ("blockdev", "Block device"), ("commit", "bootlink commit")):
        machine.append("- %s: %s" % (label, meta.get(key, "?")))
    machine.append("")
    machine.append("## Package versions")
    machine.append("")
    for k in sorted(meta):
        if k.startswith("pkg:"):
            machine.append("- %s %s" % (k[4:], meta[k]))
    machine.append("")
    machine.append("## fio command lines")
    machine.append("")
    machine.append("`PORT` is each server's port (see Servers); `RESULT.json` a file in the run's temp dir. "
                   "Warm-up (untimed, once per server): `%s`" % meta.get("warmup_cmd", "?"))
    machine.append("")
    for rid, title, _unit, cmd in rowdefs:
        machine.append("- %s (`%s`):  \n  `%s`" % (title, rid, cmd))
    machine.append("")

    storm_md = storm_section(d, clk)  # boot-storm rows (bench/storm.sh), if it ran
    storm_md += iscsi_section(d, clk)  # iSCSI rows (bench/iscsi.sh), if it ran
    seq = medians("seq1m", val).get("bootlinkd")
    storm_md += limits_section(d, seq)  # bench/limits.sh, if it ran
    md = "\n".join(head + tables + notes_md + storm_md + machine)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(md)
    os.replace(tmp, out_path)

    print("\n".join(head + tables + notes_md + storm_md))
    print("Full report (machine, versions, server and fio command lines): %s" % out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
