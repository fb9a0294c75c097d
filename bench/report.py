#!/usr/bin/env python3
"""report.py — turn the records bench/run.sh wrote into the results table.

    report.py DIR OUT.md

DIR holds four tab-separated files written by run.sh:

  meta.tsv     key, value                 (date, machine, mode, cache notes ...)
  servers.tsv  server, status, detail, cache, command
                 status "ok" or "na"; detail is the version (ok) or the reason (na),
                 written "short: details" (the table shows the short part)
  rows.tsv     row id, title, unit, fio command line (port shown as PORT)
  results.tsv  row id, server, run, status, value, io_bytes, cpu_ticks, p99_us, note
                 status "ok" or "fail"; value is MiB/s or IOPS (the row's unit);
                 cpu_ticks is the server's utime+stime over the run (clock ticks)

Writes the full markdown report to OUT.md and prints the tables (aligned
markdown, readable as plain text) to stdout. Standard library only.

Every cell is "median [min–max]" over the runs; the ratio column is
bootlinkd's median divided by the best peer's median (higher is better for
throughput, and for CPU per GiB the best peer is the lowest; lower is better).
"""
import os
import statistics
import sys

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


def main(argv):
    if len(argv) != 3:
        print("usage: report.py DIR OUT.md", file=sys.stderr)
        return 2
    d, out_path = argv[1], argv[2]
    meta = dict((k, v) for k, v in read_tsv(os.path.join(d, "meta.tsv"), 2))
    servers = read_tsv(os.path.join(d, "servers.tsv"), 5)
    rowdefs = read_tsv(os.path.join(d, "rows.tsv"), 4)
    results = read_tsv(os.path.join(d, "results.tsv"), 9)
    clk = float(meta.get("clk_tck", "100") or 100)

    names = [s[0] for s in servers]
    status = {s[0]: s for s in servers}
    peers = [n for n in names if n != "bootlinkd"]

    # (row, server) -> lists
    val, cpu, p99, fails, notes = {}, {}, {}, {}, {}
    for row, srv, _run, st, value, io_bytes, ticks, p99_us, note in results:
        key = (row, srv)
        val.setdefault(key, [])
        cpu.setdefault(key, [])
        p99.setdefault(key, [])
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
    perf_rows, cpu_rows, lat_rows = [], [], []
    for rid, title, unit, _cmd in rowdefs:
        perf_rows.append([title, unit] + [server_cell(rid, s, val) for s in names]
                         + [ratio(rid, val, True)])
        cpu_rows.append([title, "s/GiB"] + [server_cell(rid, s, cpu) for s in names]
                        + [ratio(rid, cpu, False)])
        lat_rows.append([title, "µs"] + [server_cell(rid, s, p99, False) for s in names]
                        + [ratio(rid, p99, False)])

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
                       ("kernel", "Kernel"), ("disk", "Disk (df -hT of the image directory)"),
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

    md = "\n".join(head + tables + notes_md + machine)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(md)
    os.replace(tmp, out_path)

    print("\n".join(head + tables + notes_md))
    print("Full report (machine, versions, server and fio command lines): %s" % out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
