#!/usr/bin/env python3
"""fio_summary.py — the figures bench/run.sh needs from one fio JSON result.

    fio_summary.py FILE.json

FILE.json is what `fio --output-format=json --output=FILE.json` wrote for one
job group (run.sh always passes --group_reporting, so there is one entry in
"jobs"; several entries are summed anyway). Prints one tab-separated line:

    io_bytes  iops  mib_per_s  runtime_ms  p50_us  p99_us  client_cores

io_bytes is what was read in the measured window (after ramp_time); MiB/s is
io_bytes over the measured runtime; p50/p99 are completion-latency
percentiles ("-" when fio did not report them); client_cores is fio's own CPU
(usr + sys of every job, in cores: 1.00 = one core busy all the time). Exit status 1 with a
one-line reason on stderr when fio reported an error, read nothing, or the
file is not fio JSON. Standard library only.
"""
import json
import sys


def load(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # fio may put warnings ("fio: ...") in front of the JSON object.
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in fio output")
    obj, _ = json.JSONDecoder().raw_decode(text[start:])
    return obj


def percentile_us(read, key):
    pct = (read.get("clat_ns") or {}).get("percentile") or {}
    v = pct.get(key)
    return "-" if v is None else "%.1f" % (v / 1000.0)


def summarise(obj):
    jobs = obj.get("jobs") or []
    if not jobs:
        raise ValueError("fio JSON has no jobs")
    io_bytes = 0
    iops = 0.0
    runtime_ms = 0
    cores = 0.0
    for job in jobs:
        if job.get("error"):
            raise ValueError("fio job %r: error %s" % (job.get("jobname"), job["error"]))
        read = job.get("read") or {}
        io_bytes += int(read.get("io_bytes", 0))
        iops += float(read.get("iops", 0.0))
        runtime_ms = max(runtime_ms, int(read.get("runtime", 0)))
        cores += (float(job.get("usr_cpu", 0.0)) + float(job.get("sys_cpu", 0.0))) / 100.0
    if io_bytes <= 0 or runtime_ms <= 0:
        raise ValueError("fio read nothing (io_bytes=%d, runtime=%d ms)" % (io_bytes, runtime_ms))
    mib_s = io_bytes / 1048576.0 / (runtime_ms / 1000.0)
    read0 = jobs[0].get("read") or {}
    return [str(io_bytes), "%.1f" % iops, "%.1f" % mib_s, str(runtime_ms),
            percentile_us(read0, "50.000000"), percentile_us(read0, "99.000000"), "%.2f" % cores]


def main(argv):
    if len(argv) != 2:
        print("usage: fio_summary.py FILE.json", file=sys.stderr)
        return 2
    try:
        fields = summarise(load(argv[1]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("fio_summary: %s: %s" % (argv[1], e), file=sys.stderr)
        return 1
    print("\t".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
