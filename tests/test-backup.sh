#!/bin/bash
# test-backup — `bootlinkctl backup` online under NBD write load, `restore`
# onto an empty appliance, and a damaged backup refused.
#
# Image "base" (sparse, 8 MiB + 1000 B) gets four versions: two commits of a
# maintenance client's writes (deltas), a flatten (a new base file), and a
# rollback to 3, so the backup holds every kind of version file; image
# "other" has only its file. Clients: maintenance, persistent, ephemeral,
# and one without an image. While a persistent client writes and flushes
# without pause, `bootlinkctl backup` copies the database and the files;
# the client's write counter keeps moving through it. `sha256sum -c` accepts
# the backup's SHA256SUMS, manifest.json parses and lists every file.
# Then a fresh database (new paths/db, versions, overlay dirs), with the
# original version files and image files moved away: `restore --to DIR`
# brings back the images, versions, current versions and client links
# (compared with the original `client list --json`), and a daemon on the
# restored database serves every version with the same sha256 (nbdcopy)
# as the original daemon did. Restore refuses while bootlinkd runs and
# onto a database that has images; a backup with one flipped byte in an
# image file, or with a truncated delta, is refused with "damaged" and
# leaves neither a database nor files behind.
. "$(dirname "$0")/lib/common.sh"
need nbdcopy sha256sum python3
need_python_module nbd
need_bootlink

M=52:54:00:0c:00:01 # maintenance on base
P=52:54:00:0c:00:02 # persistent on base: the write load
E=52:54:00:0c:00:03 # ephemeral on other
U=52:54:00:0c:00:04 # no image
SIZE=$(to_bytes 8M+1000)
mkimage_sparse "$T/img" "$SIZE"
mkimage "$T/other" 4M
ctl image add base "$T/img" --description "sparse test image" >/dev/null
ctl image add other "$T/other" >/dev/null
ctl client add "$M" --image base --mode maintenance --name MAINT >/dev/null
ctl client add "$P" --image base --mode persistent >/dev/null
ctl client add "$E" --image other >/dev/null
ctl client add "$U" --image other --name LOOSE >/dev/null
ctl image rm other --force >/dev/null 2>&1 || true # unlinks E and U: a client without an image
ctl image add other "$T/other" >/dev/null
ctl client link "$E" other >/dev/null
# "other" boots Linux: its kernel and initrd are files of the backup too.
head -c 300000 /dev/urandom >"$T/vmlinuz"
head -c 700000 /dev/urandom >"$T/initrd"
ctl image set other --kernel "$T/vmlinuz" --initrd "$T/initrd" >/dev/null
start_daemon overlay/dirs=overlays paths/versions=vstore overlay/boot_gap_s=0 runtime/interval_ms=100

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
sum_of() { # sum_of EXPORT: sha256 of what a fresh connection reads
	rm -f "$T/got"
	timeout 60 nbdcopy "$(nbd_uri "$1")" "$T/got" && sha256sum <"$T/got" | cut -d' ' -f1
}
sum_is() { [[ $(sum_of "$1" 2>/dev/null) == "$2" ]]; }
write_m() { # write_m SEED: the maintenance client writes and flushes
	timeout 60 python3 "$TESTS/overlay/nbdtool.py" "$(nbd_uri "$M")" \
		"w:0:8192:$1" "w:$((3 << 20)):65536:$1" "w:-1000:1000:$1" flush >/dev/null
}
conns_are() { [[ $(cat "$RUN/clients/$1/connections" 2>/dev/null || echo 0) == "$2" ]]; }

# ---- versions: 1 (file), 2 and 3 (deltas), 4 (flattened); current 3
declare -A S
S[1]=$(sha256sum <"$T/img" | cut -d' ' -f1)
S[other]=$(sha256sum <"$T/other" | cut -d' ' -f1)
for v in 2 3; do
	write_m "$v"
	wait_for 5 conns_are "$M" 0 || fail "maintenance client still connected"
	ctl image commit base --force >/dev/null
	want=$(timeout 60 python3 - "$T/img" "$v" <<'EOF'
import hashlib, sys
sys.path.insert(0, __import__("os").environ["SRCDIR"] + "/tests/overlay")
from nbdtool import pattern
d = bytearray(open(sys.argv[1], "rb").read())
for seed in range(2, int(sys.argv[2]) + 1):
    for off, n in ((0, 8192), (3 << 20, 65536), (len(d) - 1000, 1000)):
        d[off:off + n] = pattern(seed, off, n)
print(hashlib.sha256(d).hexdigest())
EOF
)
	wait_for 10 sum_is base "$want" || fail "version $v: the export is not the committed writes"
	S[$v]=$want
done
ctl image flatten base --wait >/dev/null
S[4]=${S[3]}
ctl image rollback base 3 >/dev/null
wait_for 10 sum_is base "${S[3]}" || fail "rollback to 3"
ctl --json image versions base | json '[(v["number"], v["kind"]) for v in d["versions"]]' >"$T/kinds"
[[ $(<"$T/kinds") == "[(1, 'file'), (2, 'delta'), (3, 'delta'), (4, 'flattened')]" ]] ||
	fail "versions of base: $(<"$T/kinds")"
ctl --json client list | json 'sorted((c["mac"], c["name"], c["image"], c["mode"]) for c in d["clients"])' >"$T/clients.before"
ok "base has versions 1..4 (file, delta, delta, flattened), current 3; other has its file; 4 clients"

# ---- backup under write load from the persistent client
cat >"$T/load.py" <<'EOF'
import os, sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
buf, n = os.urandom(65536), 0
while not os.path.exists(sys.argv[2]):
    h.pwrite(buf, (n * 65536) % (8 << 20))
    if n % 4 == 0:
        h.flush()
    n += 1
h.flush()
h.shutdown()
print(f"load: {n} writes of 64 KiB")
EOF
spawn timeout 300 python3 "$T/load.py" "$(nbd_uri "$P")" "$T/load.stop"
loader=$!
writes() { cat "$RUN/clients/$P/writes" 2>/dev/null || echo 0; }
writes_above() { (($(writes) > $1)); }
wait_for 20 writes_above 50 || fail "the write load did not start"
w0=$(writes)
t0=${EPOCHREALTIME/./}
ctl backup "$T/bk" >"$T/backup.out"
t1=${EPOCHREALTIME/./}
wait_for 10 writes_above $((w0 + 50)) || fail "the write load stalled during the backup"
w1=$(writes)
touch "$T/load.stop"
wait "$loader" || fail "the write load failed"
cat "$T/backup.out"
grep -q "backed up 2 images (9 files" "$T/backup.out" || fail "backup summary: $(<"$T/backup.out")"
(cd "$T/bk" && sha256sum --quiet -c SHA256SUMS) || fail "sha256sum -c rejects the backup's SHA256SUMS"
json '[f["file"] for i in d["images"] for f in i["files"]]' <"$T/bk/manifest.json" >"$T/mfiles"
for f in files/base-1-v1.raw files/base-1-v2.data files/base-1-v2.map files/base-1-v3.data files/base-1-v4.raw \
	files/other-3-v1.raw files/other-3.vmlinuz files/other-3.initrd; do
	grep -q "'$f'" "$T/mfiles" || fail "manifest.json does not list $f: $(<"$T/mfiles")"
	[[ -f $T/bk/$f ]] || fail "the backup has no $f"
done
[[ $(json 'len(d["clients"]), d["format"], d["database"]["file"]' <"$T/bk/manifest.json") == "4 bootlink-backup bootlink.db" ]] ||
	fail "manifest.json: $(head -c 600 "$T/bk/manifest.json")"
alloc=$(($(stat -c %b "$T/bk/files/base-1-v2.data") * 512))
((alloc < SIZE / 2)) || fail "the backup of a delta is not sparse: $alloc bytes allocated"
ok "backup in $(((t1 - t0) / 1000)) ms while $P wrote $((w1 - w0)) times; sha256sum -c ok; manifest lists 9 files (with other's kernel and initrd), 4 clients"

# ---- restore refuses while bootlinkd runs, and onto a database with images
if ctl restore "$T/bk" --force >"$T/out" 2>&1; then fail "restore ran while bootlinkd was running"; fi
grep -q "bootlinkd is running" "$T/out" || fail "restore with the daemon up: $(<"$T/out")"
stop_daemon
if ctl restore "$T/bk" >"$T/out" 2>&1; then fail "restore overwrote a database with images"; fi
grep -q "already holds .* --force" "$T/out" || fail "restore onto a full database: $(<"$T/out")"
ok "restore refused while bootlinkd runs and onto a database with images"

# ---- a fresh appliance: empty database, the originals moved away
mv "$T/conf/vstore" "$T/vstore.gone"
mv "$T/img" "$T/img.gone"
mv "$T/other" "$T/other.gone"
mv "$T/vmlinuz" "$T/vmlinuz.gone"
mv "$T/initrd" "$T/initrd.gone"
conf_set paths/db db2/bootlink.db
conf_set paths/versions vstore2
conf_set overlay/dirs overlays2
ctl --json restore "$T/bk" --to "$T/restored" >"$T/restore.json"
[[ $(json 'd["images"], d["versions"], d["clients"]' <"$T/restore.json") == "2 5 4" ]] ||
	fail "restore: $(<"$T/restore.json")"
ctl --json client list | json 'sorted((c["mac"], c["name"], c["image"], c["mode"]) for c in d["clients"])' >"$T/clients.after"
cmp -s "$T/clients.before" "$T/clients.after" ||
	fail "client links differ: before $(<"$T/clients.before") after $(<"$T/clients.after")"
ctl --json image versions base | json 'd["current"], [(v.get("path") or v["data_path"]).startswith("'"$T/restored/"'") for v in d["versions"]]' >"$T/vers"
[[ $(<"$T/vers") == "3 [True, True, True, True]" ]] || fail "restored versions: $(<"$T/vers")"
ctl image list | grep -q "other .*ok" || fail "image other not ok after restore: $(ctl image list)"
ctl events | grep -q "restored from $T/bk" || fail "no restore event"
if command -v sqlite3 >/dev/null; then
	[[ $(timeout 10 sqlite3 "$T/conf/db2/bootlink.db" "SELECT kernel || ' ' || initrd FROM images WHERE name = 'other'") == "$T/restored/other-3.vmlinuz $T/restored/other-3.initrd" ]] ||
		fail "the kernel and initrd of other were not re-pointed"
fi
cmp "$T/restored/other-3.vmlinuz" "$T/vmlinuz.gone" && cmp "$T/restored/other-3.initrd" "$T/initrd.gone" ||
	fail "restored kernel/initrd differ"
ok "restored 2 images, 5 versions (current 3), the same 4 client links, files under restored/"

start_daemon
for v in 3 1 2 4; do
	[[ $v == 3 ]] || ctl image rollback base "$v" --force >/dev/null
	wait_for 10 sum_is base "${S[$v]}" || fail "the restored appliance serves version $v of base wrongly"
done
wait_for 10 sum_is other "${S[other]}" || fail "the restored appliance serves image other wrongly"
sum_is "client/$E" "${S[other]}" || fail "client $E does not boot image other"
if command -v curl >/dev/null && [[ -n ${HTTP_ADDR:-} ]]; then
	timeout 20 curl -sf "http://$HTTP_ADDR/boot/other/vmlinuz" -o "$T/k.http" && cmp "$T/k.http" "$T/vmlinuz.gone" ||
		fail "the restored appliance does not serve other's kernel over HTTP"
fi
stop_daemon
ok "a daemon on the restored database serves versions 3, 1, 2, 4 of base, image other and its kernel with the original sha256"

# ---- damaged backups are refused, leaving nothing behind
conf_set paths/db db3/bootlink.db
for damage in flip truncate; do
	rm -rf "$T/bad" "$T/restored3" "$T/conf/db3"
	cp -a --sparse=always "$T/bk" "$T/bad"
	if [[ $damage == flip ]]; then
		f=$T/bad/files/other-3-v1.raw
		b=$(od -An -tu1 -j 4096 -N1 "$f" | tr -d ' ')
		printf "$(printf '\\%03o' $(((b + 1) % 256)))" | dd of="$f" bs=1 seek=4096 conv=notrunc status=none
	else
		truncate -s -4096 "$T/bad/files/base-1-v3.data"
	fi
	if ctl restore "$T/bad" --to "$T/restored3" >"$T/out" 2>&1; then
		fail "restore accepted a backup with a $damage"
	fi
	grep -q "damaged" "$T/out" || fail "restore of a backup with a $damage: $(<"$T/out")"
	[[ ! -e $T/conf/db3/bootlink.db ]] || fail "a refused restore left a database"
	left=$(find "$T/restored3" -type f 2>/dev/null | wc -l)
	((left == 0)) || fail "a refused restore left $left files in restored3"
	ok "$damage: $(cut -c1-150 "$T/out")"
done
ok "done"
