"""limits_report.py — the "Machine limits" section of the bench report (bench/limits.sh's records).

limits_section(d, seq_mib) reads DIR/limits.tsv (row, run, status, value, note) and
returns markdown lines: bootlinkd's cached 1 MiB sequential reads (seq_mib: the
median from the main table, or None) against TCP over loopback, cold reads against
O_DIRECT reads of the file, instructions per cached 4 KiB read, and RSS per idle
connection. Standard library only.
"""
import os
import statistics


def _read(d):
    rows = {}
    notes = {}
    path = os.path.join(d, "limits.tsv")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
            row, _run, st, value, note = parts
            if not row:
                continue
            if st == "ok":
                try:
                    rows.setdefault(row, []).append(float(value))
                except ValueError:
                    pass
            notes.setdefault(row, note)
    return rows, notes


def _cell(vals, unit_fmt="%.0f"):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return unit_fmt % med
    return "%s [%s–%s]" % (unit_fmt % med, unit_fmt % min(vals), unit_fmt % max(vals))


def _pct(a, b):
    if a is None or b is None or b <= 0:
        return "n/a"
    return "%.0f %%" % (100.0 * a / b)


def limits_section(d, seq_mib):
    rows, notes = _read(d)
    if rows is None:
        return []
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    md = ["## Machine limits (bench/limits.sh)", ""]
    md.append("| measure | bootlinkd | the machine | bootlinkd / machine | target |")
    md.append("|---|---|---|---|---|")
    md.append("| 1 MiB sequential reads from cache (main table, QD 8) vs one TCP stream over loopback "
              "(iperf3), MiB/s | %s | %s | %s | ≥ 70 %% |" % (
                  "%.0f" % seq_mib if seq_mib is not None else "n/a", _cell(rows.get("tcp")),
                  _pct(seq_mib, med.get("tcp"))))
    md.append("| cold 1 MiB sequential reads through a fresh bootlinkd (empty cache, O_DIRECT) vs fio "
              "io_uring O_DIRECT reads of the image file, QD 8, MiB/s | %s | %s | %s | ≥ 90 %% |" % (
                  _cell(rows.get("cold")), _cell(rows.get("direct")),
                  _pct(med.get("cold"), med.get("direct"))))
    md.append("")
    md.append("| cost figure | value | how |")
    md.append("|---|---|---|")
    md.append("| user-space instructions per 4 KiB read served from the cache | %s | callgrind, %s; "
              "never let it grow unexplained |" % (_cell(rows.get("instr")), notes.get("instr", "")))
    md.append("| bootlinkd RSS per idle NBD connection, bytes | %s | %s |" % (
        _cell(rows.get("rss_idle")), notes.get("rss_idle", "")))
    md.append("")
    fails = [k for k in ("tcp", "direct", "cold", "instr", "rss_idle") if k not in rows]
    for k in fails:
        md.append("- %s: n/a — %s" % (k, notes.get(k) or "not run"))
    if fails:
        md.append("")
    return md
