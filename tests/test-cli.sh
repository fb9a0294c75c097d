#!/bin/bash
# test-cli.sh — bootlinkctl end to end on a fresh config tree and database.
#
# Uses $BUILD/bootlinkctl (BUILD defaults to build/, relative to the source
# root); builds nothing. A temporary directory holds the config tree (only
# paths/db at first, a relative path resolved against the tree), the
# database and the image files; it is removed at exit (KEEP_TMP=1 keeps it).
#
# Covers: image add/list (--json parsed with python3), client add/link/
# list, rename keeping links, a moved file (MISSING, repair --search and
# repair from the parent directories, verify ok), a corrupted byte
# (verify fails), repair passing over a look-alike file (same first MiB), rm refused while linked and --force, the error messages
# for an invalid MAC, an unknown image, a duplicate name and an unknown
# client, usage errors (exit 2), JSON string escaping, one JSON document
# on errors, status, events, and the schema in the database file.
#
# Exit 0 pass, 1 fail, 77 skipped (the last line says why).
set -eu

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$SRCDIR/$BUILD
CTL=$BUILD/bootlinkctl
export LC_ALL=C
unset JOURNAL_STREAM

for cmd in python3 timeout; do
	command -v "$cmd" >/dev/null || { echo "skipped: $cmd is not installed"; exit 77; }
done
[[ -x $CTL ]] || { echo "skipped: $CTL is not built (run: make $BUILD/bootlinkctl)"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/bootlink-test-cli.XXXXXX")
cleanup() {
	if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

mkdir -p "$T/conf/paths" "$T/images" "$T/moved"
echo "../state/bootlink.db" >"$T/conf/paths/db"
DB=$T/state/bootlink.db

n=0
ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
fail() {
	echo "FAIL: $*"
	exit 1
}

# run ARGS...: bootlinkctl -c $T/conf ARGS; sets OUT, ERR, RC.
run() {
	set +e
	OUT=$(timeout 60 "$CTL" -c "$T/conf" "$@" 2>"$T/stderr")
	RC=$?
	set -e
	ERR=$(cat "$T/stderr")
}

# expect STATUS TEXT ARGS...: run; the exit status must be STATUS and stderr
# must contain TEXT (if not empty). Success means silent stderr; an error
# (1) exactly one line starting "bootlinkctl: ".
expect() {
	local want=$1 text=$2
	shift 2
	run "$@"
	[[ $RC == "$want" ]] || fail "bootlinkctl $*: exit $RC, expected $want; stdout: $OUT; stderr: $ERR"
	[[ -z $text || $ERR == *"$text"* ]] || fail "bootlinkctl $*: stderr lacks \"$text\": $ERR"
	case $want in
	0) [[ -z $ERR ]] || fail "bootlinkctl $*: succeeded but wrote to stderr: $ERR" ;;
	1) [[ $(wc -l <"$T/stderr") == 1 && $ERR == "bootlinkctl: "* ]] ||
		fail "bootlinkctl $*: error is not one 'bootlinkctl: ' line: $ERR" ;;
	esac
}

# jcheck DESC EXPR: EXPR (python, d = the JSON document in OUT) must be true.
jcheck() {
	printf '%s' "$OUT" | timeout 10 python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$2" || fail "$1: ($2) is false for: $OUT"
	ok "$1"
}

# flip FILE OFFSET: invert one byte in place.
flip() {
	timeout 10 python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xff]))' "$1" "$2"
}

timeout 10 head -c 1048576 /dev/urandom >"$T/images/win10.img"
timeout 10 head -c 2097152 /dev/urandom >"$T/images/ubuntu24.img"

# ---- images ----
expect 0 "" image add win10 "$T/images/win10.img" --description "Windows 10 golden"
[[ $OUT == *"added image 'win10' (id 1)"* ]] || fail "image add: unexpected output: $OUT"
ok "image add win10 (1 MiB; creates the database and its directory)"
expect 0 "" --json image add ubuntu24 "$T/images/../images/ubuntu24.img"
jcheck "image add --json reports the image" \
	"d['image']['name'] == 'ubuntu24' and d['image']['id'] == 2 and d['image']['path'] == '$T/images/ubuntu24.img' and len(d['image']['full_sum']) == 64"

expect 0 "" --json image list
jcheck "image list --json: names, ids, sizes, status" \
	"[(i['name'], i['id'], i['size'], i['status'], i['clients']) for i in d['images']] == [('ubuntu24', 2, 2097152, 'ok', 0), ('win10', 1, 1048576, 'ok', 0)]"
jcheck "image list --json: description and absolute path" \
	"d['images'][1]['description'] == 'Windows 10 golden' and d['images'][1]['path'] == '$T/images/win10.img'"
expect 0 "" image list
[[ $OUT == *NAME*ID*SIZE*CLIENTS*STATUS*PATH* && $OUT == *"1.0 MiB"* && $OUT == *"2.0 MiB"* ]] ||
	fail "image list: unexpected table: $OUT"
ok "image list: human table"

# ---- clients ----
expect 0 "" client add 52:54:00:AA:BB:01 --image win10
[[ $OUT == *"PC001 (52:54:00:aa:bb:01)"* ]] || fail "client add: $OUT"
ok "client add: MAC normalised, default name PC001"
expect 0 "" client add 52-54-00-aa-bb-02 --image win10 --mode persistent
expect 0 "" client add 525400aabb03 --image win10 --name LAB3 --mode maintenance
expect 0 "" client link 52:54:00:aa:bb:03 ubuntu24
[[ $OUT == *"to image ubuntu24 (was: win10)"* ]] || fail "client link: $OUT"
ok "client link"
expect 0 "" --json client list
jcheck "client list --json: names, MACs, images, modes" \
	"[(c['name'], c['mac'], c['image'], c['image_id'], c['mode']) for c in d['clients']] == [('LAB3', '52:54:00:aa:bb:03', 'ubuntu24', 2, 'maintenance'), ('PC001', '52:54:00:aa:bb:01', 'win10', 1, 'ephemeral'), ('PC002', '52:54:00:aa:bb:02', 'win10', 1, 'persistent')]"
expect 0 "" client set 52:54:00:aa:bb:02 --mode ephemeral
expect 0 "" --json client list
jcheck "client set --mode" "d['clients'][2]['mode'] == 'ephemeral'"

# ---- rename keeps links ----
expect 0 "" image rename win10 win11
expect 0 "" --json client list
jcheck "image rename: clients show the new name, same image id" \
	"[(c['image'], c['image_id']) for c in d['clients'] if c['name'] != 'LAB3'] == [('win11', 1), ('win11', 1)]"
expect 1 "image 'win10' not found; images: ubuntu24, win11" image verify win10
ok "old name is gone, error lists the images"

# ---- moved file: MISSING, repair, verify ----
mv "$T/images/win10.img" "$T/moved/"
expect 0 "" --json image list
jcheck "image list: moved file is MISSING" "[i['status'] for i in d['images']] == ['ok', 'MISSING']"
expect 0 "" image list
[[ $OUT == *MISSING* ]] || fail "image list (human) lacks MISSING: $OUT"
expect 1 "is missing; if it was moved, run: bootlinkctl image repair win11 --search DIR" image verify win11
ok "verify of a missing file fails and says what to do"
expect 0 "" image repair win11 --search "$T/moved"
[[ $OUT == *"$T/images/win10.img -> $T/moved/win10.img"* ]] || fail "image repair: $OUT"
ok "image repair --search finds the moved file"
expect 0 "" --json image list
jcheck "after repair: path re-pointed, status ok, links intact" \
	"d['images'][1]['path'] == '$T/moved/win10.img' and d['images'][1]['status'] == 'ok' and d['images'][1]['clients'] == 2 and d['images'][1]['id'] == 1"
expect 0 "" image verify win11
[[ $OUT == *"ok"* ]] || fail "image verify: $OUT"
ok "image verify after repair: ok"
expect 0 "" image repair win11
[[ $OUT == *"is fine; nothing to repair"* ]] || fail "image repair of a fine path: $OUT"
ok "image repair of a fine path says so"

mkdir -p "$T/deep/a/b"
mv "$T/moved/win10.img" "$T/deep/a/b/w.img"
expect 0 "" image repair win11
[[ $OUT == *"-> $T/deep/a/b/w.img"* ]] || fail "image repair (parents): $OUT"
ok "image repair without --search looks in the old path's parents"
mv "$T/deep/a/b/w.img" "$T/moved/win10.img"
expect 0 "" image repair win11 --search "$T/moved"

# ---- corruption ----
flip "$T/moved/win10.img" 524288
expect 1 "checksum mismatch" image verify win11
ok "one corrupted byte: verify fails (exit 1)"
expect 1 "" --json image verify win11
jcheck "verify --json on mismatch: result and error in one document" \
	"d['result'] == 'mismatch' and 'checksum mismatch' in d['error'] and d['expected'] != d['actual']"
flip "$T/moved/win10.img" 524288
expect 0 "" image verify win11
ok "restored byte: verify ok again"

# ---- a look-alike (same size and first MiB, other checksum) is not taken ----
mkdir -p "$T/decoy" "$T/real" "$T/parts"
cp "$T/images/ubuntu24.img" "$T/decoy/u.img"
flip "$T/decoy/u.img" 1572864
# Keep the real bytes as two 1 MiB halves, which no search can mistake for it.
split -b 1048576 "$T/images/ubuntu24.img" "$T/parts/p."
rm "$T/images/ubuntu24.img"
expect 1 "$T/decoy/u.img has the same size and first MiB but a different checksum" image repair ubuntu24
ok "repair refuses a look-alike and says how to accept it"
cat "$T/parts/p.aa" "$T/parts/p.ab" >"$T/real/u.img"
expect 0 "" image repair ubuntu24 --search "$T/decoy" --search "$T/real"
[[ $OUT == *"-> $T/real/u.img (checksum verified"* ]] || fail "image repair past a look-alike: $OUT"
ok "repair looks past the look-alike and finds the real file"
expect 0 "" image verify ubuntu24
expect 0 "" --json client list
jcheck "links intact after repair" "[c['image'] for c in d['clients'] if c['name'] == 'LAB3'] == ['ubuntu24']"
rm "$T/real/u.img"
expect 0 "" image repair ubuntu24 --search "$T/decoy" --force
[[ $OUT == *"-> $T/decoy/u.img (new checksum accepted"* ]] || fail "image repair --force: $OUT"
expect 0 "" image verify ubuntu24
ok "repair --force accepts the look-alike and records its checksum"

# ---- errors ----
expect 1 "invalid MAC address 'zz:zz:zz'" client add zz:zz:zz --image win11
ok "invalid MAC: exit 1 with message"
expect 1 "image 'win12' not found; images: ubuntu24, win11" client add 52:54:00:aa:bb:09 --image win12
ok "unknown image: exit 1, lists the images"
expect 1 "image 'ubuntu24' already exists; images: ubuntu24, win11" image add ubuntu24 "$T/moved/win10.img"
ok "duplicate image name: exit 1, lists the images"
expect 1 "client 52:54:00:aa:bb:77 not found; add it with: bootlinkctl client add 52:54:00:aa:bb:77 --image NAME" \
	client rm 52:54:00:aa:bb:77
ok "unknown client: exit 1, says how to add it"
expect 1 "already exists (PC001, image win11)" client add 52:54:00:aa:bb:01 --image ubuntu24
expect 1 "client name 'LAB3' is already used by 52:54:00:aa:bb:03" client set 52:54:00:aa:bb:01 --name LAB3
ok "duplicate MAC and client name: exit 1"
expect 1 "is a directory" image add dir "$T/images"
expect 1 "No such file or directory" image add nofile "$T/nonexistent.img"
expect 1 "invalid image name" image add "bad name" "$T/moved/win10.img"
expect 1 "unknown mode 'fast'" client set 52:54:00:aa:bb:01 --mode fast
ok "bad file, bad name, bad mode: exit 1"
expect 1 "" --json client link 52:54:00:aa:bb:01 nope
jcheck "--json error: one document with the message" "list(d) == ['error'] and \"image 'nope' not found\" in d['error']"

expect 2 "image add: missing FILE" image add onlyname
[[ $ERR == *"usage: bootlinkctl"* ]] || fail "usage error without usage: $ERR"
expect 2 "unknown command 'frobnicate'" frobnicate
expect 2 "unknown option '--colour'" image list --colour
expect 2 "--image NAME is required" client add 52:54:00:aa:bb:09
expect 2 "unexpected argument" image list extra
ok "usage errors: exit 2 with usage text"
expect 0 "" image add --help
[[ $OUT == "usage: bootlinkctl"* ]] || fail "image add --help: $OUT"
ok "command --help: usage on stdout, exit 0"

# ---- rm ----
expect 1 "PC001 (52:54:00:aa:bb:01)" image rm win11
[[ $ERR == *"PC002 (52:54:00:aa:bb:02)"* && $ERR == *"--force"* ]] || fail "image rm refusal: $ERR"
ok "image rm refused while linked, names the clients"
expect 0 "" --json image list
jcheck "refused rm left the image" "len(d['images']) == 2"
expect 0 "" image rm win11 --force
[[ $OUT == *"unlinked 2 clients"* ]] || fail "image rm --force: $OUT"
expect 0 "" --json image list
jcheck "image rm --force removed the image" "[i['name'] for i in d['images']] == ['ubuntu24']"
expect 0 "" --json client list
jcheck "image rm --force unlinked its clients" \
	"[(c['name'], c['image_id'], c['image']) for c in d['clients']] == [('LAB3', 2, 'ubuntu24'), ('PC001', 0, ''), ('PC002', 0, '')]"
[[ -f $T/moved/win10.img ]] || fail "image rm deleted the file"
ok "image rm leaves the file in place"
expect 0 "" image add win11 "$T/moved/win10.img"
expect 0 "" --json image list
jcheck "ids are never reused" "[i['id'] for i in d['images']] == [2, 3]"
expect 0 "" client rm 52:54:00:aa:bb:02
expect 0 "" --json client list
jcheck "client rm" "[c['name'] for c in d['clients']] == ['LAB3', 'PC001']"

# ---- JSON escaping ----
desc=$'quote" backslash\\ newline\n tab\t ctl\x01 utf8 \xc3\xa9 bad \xff end'
expect 0 "" image rename win11 esc
expect 0 "" image rm esc
expect 0 "" image add esc "$T/moved/win10.img" --description "$desc"
expect 0 "" --json image list
jcheck "JSON string escaping (quotes, control bytes, UTF-8, invalid bytes)" \
	"d['images'][0]['description'] == 'quote\" backslash\\\\ newline\\n tab\\t ctl\\x01 utf8 \\u00e9 bad \\ufffd end'"

# ---- status and events ----
expect 0 "" status
[[ $OUT == *"bootlinkd: not running"* && $OUT == *"2 images, 2 clients (1 without an image)"* ]] ||
	fail "status: $OUT"
ok "status: not running, counts"
[[ $OUT == *"! bootlinkd is not running: no PC can boot; start it with: systemctl start bootlinkd"* &&
	$OUT == *"! client PC001 (52:54:00:aa:bb:01) has no image and cannot boot: link it with: bootlinkctl client link 52:54:00:aa:bb:01 IMAGE"* ]] ||
	fail "status warnings: $OUT"
ok "status: warnings say what to do (daemon down, client without an image)"
expect 0 "" --json status
jcheck "status --json: clients (state off without a daemon), warnings" \
	"sorted((c['name'], c['state'], c['image']) for c in d['clients']) == [('LAB3', 'off', 'ubuntu24'), ('PC001', 'off', '')] and len(d['warnings']) == 2 and d['overlay_dirs'] == []"
expect 2 "--watch is for people" --json status --watch
expect 2 "use 1..60 seconds" status --watch --every 0
expect 2 "use 1..60 seconds" status --watch --every 61
ok "status: --watch refuses --json, --every outside 1..60"
echo ../run >"$T/conf/paths/run"
mkdir -p "$T/run"
touch "$T/run/ready"
expect 0 "" --json status
jcheck "status --json: running (ready file), images with their clients" \
	"d['daemon']['running'] and d['counts'] == {'images': 2, 'clients': 2, 'unlinked': 1} and [c['name'] for c in d['images'][1]['clients']] == ['LAB3'] and [c['name'] for c in d['unlinked']] == ['PC001']"
expect 0 "" --json events --limit 0
jcheck "events: every change recorded" \
	"all(any(e['text'].startswith(w) for e in d['events']) for w in ['image add win10', 'image rename win10 -> win11', 'image repair win11', 'image rm win11', 'client add PC001', 'linked to image ubuntu24', 'client set', 'client rm PC002'])"
expect 0 "" --json events 52:54:00:aa:bb:01 --limit 2
jcheck "events MAC --limit: newest first, that client only" \
	"len(d['events']) == 2 and all(e['mac'] == '52:54:00:aa:bb:01' for e in d['events']) and d['events'][0]['id'] > d['events'][1]['id']"

# ---- boot: Linux images, menus, kernel options ----
timeout 10 head -c 4096 /dev/urandom >"$T/images/vmlinuz"
timeout 10 head -c 4096 /dev/urandom >"$T/images/initrd.gz"
timeout 10 head -c 1048576 /dev/urandom >"$T/images/lin.img"
expect 0 "" image add lin "$T/images/lin.img"
expect 0 "" image add lin2 "$T/images/lin.img"
expect 0 "" --json image set lin --kernel "$T/images/../images/vmlinuz" --initrd "$T/images/initrd.gz" --cmdline "console=ttyS0 quiet"
jcheck "image set --kernel: boot linux, absolute paths, cmdline" \
	"d['image'] == {'name': 'lin', 'boot': 'linux', 'kernel': '$T/images/vmlinuz', 'initrd': '$T/images/initrd.gz', 'cmdline': 'console=ttyS0 quiet'}"
expect 1 "--cmdline 'a \$x': use at most 255 bytes" image set lin --cmdline 'a $x'
expect 1 "kernel $T/nope: No such file or directory" image set lin --kernel "$T/nope"
expect 1 "initrd $T/images: not a regular file" image set lin --initrd "$T/images"
expect 1 "image lin2: --boot linux needs a kernel" image set lin2 --boot linux
expect 1 "unknown boot 'pxe'" image set lin2 --boot pxe
expect 2 "nothing to change" image set lin2
expect 1 "image 'zz' not found" image set zz --boot sanboot
ok "image set: refuses metacharacters, missing and non-regular files, linux without a kernel, unknown boots"
expect 0 "" --json image set lin --initrd none --cmdline ""
jcheck "image set --initrd none --cmdline '': cleared, still linux" \
	"d['image']['initrd'] == '' and d['image']['cmdline'] == '' and d['image']['boot'] == 'linux'"
expect 0 "" image set lin --boot sanboot
[[ $OUT == "image lin boots with sanboot (iSCSI)" ]] || fail "image set --boot sanboot: $OUT"
expect 0 "" image set lin --boot linux
ok "image set: --boot sanboot and back keeps the kernel"

expect 0 "" client add 52:54:00:cc:00:01 --image lin --name BOOT1
expect 0 "" --json client set 52:54:00:cc:00:01 --menu lin2,lin,lin2 --menu-timeout 5 --cmdline "bootlink.conns=2"
jcheck "client set --menu/--menu-timeout/--cmdline: stored, duplicates dropped, in order" \
	"d['client']['menu'] == ['lin2', 'lin'] and d['client']['menu_timeout'] == 5 and d['client']['cmdline'] == 'bootlink.conns=2'"
expect 1 "image 'nope' not found" client set 52:54:00:cc:00:01 --menu lin,nope
expect 1 "--menu-timeout '3601'" client set 52:54:00:cc:00:01 --menu-timeout 3601
expect 1 "--menu-timeout 'x'" client set 52:54:00:cc:00:01 --menu-timeout x
expect 1 "--cmdline 'a|b'" client set 52:54:00:cc:00:01 --cmdline 'a|b'
run client set 52:54:00:cc:00:01 --menu lin,lin2,lin,lin2,lin,lin2,lin,lin2,lin
[[ $RC == 0 ]] || fail "a menu of 9 names with duplicates (2 images) is refused: $ERR"
expect 0 "" client set 52:54:00:cc:00:01 --menu-timeout 5
[[ $OUT == *"nothing changed"* ]] || fail "client set with the same timeout: $OUT"
expect 0 "" --json events 52:54:00:cc:00:01 --limit 1
jcheck "client set: the event names the menu change" "'menu lin2,lin -> lin,lin2' in d['events'][0]['text']"
expect 0 "" image rm lin2
expect 0 "" --json client set 52:54:00:cc:00:01 --name BOOT1X
jcheck "image rm: the image leaves every menu" "d['client']['menu'] == ['lin']"
expect 0 "" --json client set 52:54:00:cc:00:01 --menu none
jcheck "client set --menu none: no menu" "d['client']['menu'] == []"
jcheck "client set --json: sanboot defaults keep_san 0, drive 0x80" \
	"d['client']['keep_san'] == 0 and d['client']['san_drive'] == 0x80"
expect 0 "" --json client set 52:54:00:cc:00:01 --keep-san 1 --drive 0x81
jcheck "client set --keep-san 1 --drive 0x81: stored" "d['client']['keep_san'] == 1 and d['client']['san_drive'] == 0x81"
expect 0 "" --json client list
jcheck "client list --json: keep_san and san_drive of each client" \
	"sorted((c['mac'][-2:], c['keep_san'], c['san_drive']) for c in d['clients'] if c['mac'] in ('52:54:00:cc:00:01', '52:54:00:aa:bb:01')) == [('01', 0, 0x80), ('01', 1, 0x81)]"
expect 0 "" client set 52:54:00:cc:00:01 --keep-san 0 --drive 255
[[ $OUT == *"keep-san 1 -> 0, drive 0x81 -> 0xff" ]] || fail "client set --keep-san 0 --drive 255: $OUT"
for bad in 0x7f 0x100 127 256 0x 0xg1 -1 c: ""; do
	expect 1 "--drive '$bad': a BIOS hard disk number, 0x80..0xff" client set 52:54:00:cc:00:01 --drive "$bad"
done
for bad in 2 yes ""; do
	expect 1 "--keep-san '$bad': use 1" client set 52:54:00:cc:00:01 --keep-san "$bad"
done
expect 0 "" --json client list
jcheck "refused --drive/--keep-san values change nothing" \
	"[(c['keep_san'], c['san_drive']) for c in d['clients'] if c['mac'] == '52:54:00:cc:00:01'] == [(0, 0xff)]"
expect 0 "" client rm 52:54:00:cc:00:01
expect 0 "" image rm lin
ok "client set: menus (unknown images refused, image rm cascades, none clears), timeouts 0..3600, kernel options checked, --keep-san 0|1 and --drive 0x80..0xff checked"
expect 0 "" --json events --since 1h --limit 0
jcheck "events --since 1h: every event of this run" "len(d['events']) >= 8"
expect 0 "" --json events --since "2099-01-01 00:00" --limit 0
jcheck "events --since a future date: none" "d['events'] == []"
expect 0 "" --json events --client 52:54:00:aa:bb:01 --since 2d
jcheck "events --client MAC --since 2d: that client only" "d['events'] and all(e['mac'] == '52:54:00:aa:bb:01' for e in d['events'])"
expect 1 "invalid --since 'yesterday': use 2d, 3h, 90m (ago)" events --since yesterday
ok "events --since: rejects what it cannot read"
if command -v sqlite3 >/dev/null; then
	timeout 10 sqlite3 "$DB" "INSERT INTO events (time, mac, kind, text) VALUES (1000, '', 'test', 'ancient')"
	mkdir -p "$T/conf/events" && echo 30 >"$T/conf/events/keep_days"
	expect 0 "" client set 52:54:00:aa:bb:01 --name LAB1
	[[ $(timeout 10 sqlite3 "$DB" "SELECT count(*) FROM events WHERE text = 'ancient'") == 0 ]] ||
		fail "events/keep_days = 30 kept an event from 1970"
	expect 0 "" client set 52:54:00:aa:bb:01 --name PC001
	rm -r "$T/conf/events"
	ok "events/keep_days: the next change drops events older than the limit"
fi

# ---- the database file ----
if command -v sqlite3 >/dev/null; then
	v=$(timeout 10 sqlite3 "$DB" "SELECT value FROM meta WHERE key = 'schema_version'")
	j=$(timeout 10 sqlite3 "$DB" "PRAGMA journal_mode")
	[[ $v == 5 && $j == wal ]] || fail "database: schema_version '$v', journal_mode '$j'"
	ok "database: schema_version 5, WAL mode"
fi

echo "all $n checks passed"
