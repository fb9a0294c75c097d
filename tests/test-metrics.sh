#!/bin/bash
# test-metrics — GET /metrics on the HTTP endpoint, parsed by the Prometheus
# project's own parser (python3-prometheus-client).
#
# The exposition parses; every family named in docs/metrics.md is there
# (and nothing undocumented); per-image, per-client and per-overlay-dir
# samples carry the right labels; the four latency histograms (NBD and
# iSCSI, read and write) have cumulative buckets ending in +Inf == _count.
# Then real clients do I/O — nbdcopy reads the image export, nbdtool writes
# to a client disk, qemu-img reads and qemu-io writes over iSCSI — and the
# counters move by at least what was done: image bytes read, the client's
# read/write bytes, each histogram's count. HEAD /metrics has no body; a
# POST is refused.
. "$(dirname "$0")/lib/common.sh"
need curl nbdcopy qemu-img qemu-io python3
need_python_module nbd
need_python_module prometheus_client
need_bootlink

C=52:54:00:0d:00:01
mkimage "$T/img" 8M
ctl image add one "$T/img" >/dev/null
ctl client add "$C" --image one --mode persistent >/dev/null
start_daemon overlay/dirs=overlays runtime/interval_ms=100
[[ -n ${HTTP_ADDR:-} && -n ${ISCSI_ADDR:-} ]] || fail "no HTTP or iSCSI listener"
U="http://$HTTP_ADDR/metrics"

# scrape NAME: fetch /metrics into $T/NAME.txt; the parser checks it.
scrape() {
	timeout 10 curl -sf -D "$T/$1.hdr" "$U" -o "$T/$1.txt" || fail "GET /metrics failed"
	grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/$1.hdr" || fail "content type: $(cat "$T/$1.hdr")"
}
# parse.py FILE DOC: prints "name{labels} value" per sample (sorted),
# after checking the documented families and the histograms.
cat >"$T/parse.py" <<'EOF'
import re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
doc = set(re.findall(r"^\| `(bootlink_[a-z_]+)`", open(sys.argv[2]).read(), re.M))
fams = {f.name: f for f in text_string_to_metric_families(text)}
# prometheus_client strips _total from counter family names
names = set()
for f in fams.values():
    names.add(f.name + ("_total" if f.type == "counter" else ""))
missing, extra = doc - names, names - doc
assert not missing, f"documented but not exposed: {sorted(missing)}"
assert not extra, f"exposed but not in docs/metrics.md: {sorted(extra)}"
h = fams["bootlink_request_duration_seconds"]
assert h.type == "histogram"
series = {}
for s in h.samples:
    key = (s.labels["protocol"], s.labels["op"])
    series.setdefault(key, []).append(s)
assert sorted(series) == [("iscsi", "read"), ("iscsi", "write"), ("nbd", "read"), ("nbd", "write")], sorted(series)
for key, ss in series.items():
    buckets = [s for s in ss if s.name.endswith("_bucket")]
    vals = [s.value for s in buckets]
    assert vals == sorted(vals), f"{key}: buckets not cumulative {vals}"
    assert buckets[-1].labels["le"] == "+Inf", key
    count = [s.value for s in ss if s.name.endswith("_count")][0]
    assert count == vals[-1], f"{key}: +Inf {vals[-1]} != count {count}"
for f in fams.values():
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
        if s.name.endswith("_bucket"):
            continue
        print(f"{s.name}{{{labels}}} {int(s.value) if s.value == int(s.value) else s.value}")
EOF
parse() { python3 "$T/parse.py" "$T/$1.txt" "$SRCDIR/docs/metrics.md" >"$T/$1.samples" || fail "parsing /metrics ($1) failed"; }
val() { # val NAME SAMPLE: the value of the sample (exact name{labels}), or 0
	local v
	v=$(awk -v k="$2" '$1 == k { print $2; exit }' "$T/$1.samples")
	echo "${v:-0}"
}

scrape m0
parse m0
for s in "bootlink_image_size_bytes{image=one} 8388608" \
	"bootlink_overlay_dir_healthy{dir=$T/conf/overlays} 1" "bootlink_info{version=" "bootlink_exports{} 2"; do
	grep -qF "$s" "$T/m0.samples" || fail "no sample '$s' in: $(head -50 "$T/m0.samples")"
done
ok "/metrics parses ($(wc -l <"$T/m0.samples") samples, $(grep -c '^# TYPE' "$T/m0.txt") families, all documented in docs/metrics.md)"

# ---- I/O, then the counters
timeout 60 nbdcopy "$(nbd_uri one)" "$T/copy"
cmp "$T/copy" "$T/img"
timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri "$C")" w:0:1048576:7 flush r:0:1048576:7 >/dev/null
IQN=iqn.2026-11.org.bootlink:client.${C//:/}
timeout 60 qemu-img convert -O raw --image-opts "driver=iscsi,transport=tcp,portal=$ISCSI_ADDR,target=$IQN,lun=0" "$T/iscsi.raw"
timeout 60 qemu-io -c 'write -P 0x5a 2M 256k' --image-opts "driver=iscsi,transport=tcp,portal=$ISCSI_ADDR,target=$IQN,lun=0" >/dev/null
moved() { # moved SAMPLE MIN: scrape until the sample grew by at least MIN over m0
	scrape m1 && parse m1
	(($(val m1 "$1") - $(val m0 "$1") >= $2))
}
for want in "bootlink_image_read_bytes_total{image=one}:8388608" \
	"bootlink_client_read_bytes_total{mac=$C,mode=persistent}:$((1048576 + 8388608))" \
	"bootlink_client_written_bytes_total{mac=$C,mode=persistent}:$((1048576 + 262144))" \
	"bootlink_client_writes_total{mac=$C,mode=persistent}:2" \
	"bootlink_request_duration_seconds_count{op=read,protocol=nbd}:3" \
	"bootlink_request_duration_seconds_count{op=write,protocol=nbd}:1" \
	"bootlink_request_duration_seconds_count{op=read,protocol=iscsi}:1" \
	"bootlink_request_duration_seconds_count{op=write,protocol=iscsi}:1" \
	"bootlink_cache_misses_total{}:1"; do
	wait_for 10 moved "${want%:*}" "${want##*:}" ||
		fail "${want%:*} moved by $(($(val m1 "${want%:*}") - $(val m0 "${want%:*}"))), expected >= ${want##*:}"
done
grep -qE "^bootlink_client_connections\{mac=$C,mode=persistent\} [0-9]+$" "$T/m1.samples" || fail "no client connections sample"
grep -E '^bootlink_request_duration_seconds_(count|sum)' "$T/m1.samples"
ok "after nbdcopy, NBD writes/reads, iSCSI reads/writes: image, client, cache counters and all four histograms moved"

# ---- HEAD and methods
hdr=$(timeout 10 curl -sI "$U")
grep -q "^HTTP/1.1 200" <<<"$hdr" || fail "HEAD /metrics: $hdr"
[[ $(timeout 10 curl -s -o /dev/null -w '%{http_code}' -X POST "$U") == 405 ]] || fail "POST /metrics was not refused with 405"
assert_daemon_alive
stop_daemon
ok "HEAD answered, POST refused; done"
