#!/bin/bash
# test-iscsi-chap — CHAP authentication of iSCSI logins (iscsi/chap_* keys).
#   - libiscsi's iscsi-ls: no credentials or a wrong password is refused
#     with status 0x0201 (authentication failure), the right one works;
#     mutual CHAP (the initiator checks the target) works, and an initiator
#     expecting another target secret refuses the target;
#   - at the byte level (tests/iscsi/chap.py): the exact login status, no
#     skipping of the security stage, no CHAP without MD5, a reflected
#     challenge refused, discovery sessions authenticated too;
#   - without mutual secrets configured, a mutual CHAP request is refused.
. "$(dirname "$0")/lib/common.sh"
need iscsi-ls iscsi-inq python3
need_bootlink

mkimage "$T/img" 1M
ctl image add img "$T/img"
ctl client add 52:54:00:aa:bb:04 --image img
export TARGET=iqn.2026-11.org.bootlink:client.525400aabb04 CHAP_USER=alice CHAP_SECRET=alice-secret-12
export MUTUAL_USER=bootlink MUTUAL_SECRET=target-secret-34
start_daemon iscsi/chap_user=$CHAP_USER iscsi/chap_secret=$CHAP_SECRET \
	iscsi/chap_mutual_user=$MUTUAL_USER iscsi/chap_mutual_secret=$MUTUAL_SECRET
export ISCSI_HOST ISCSI_PORT

# --- a real initiator ------------------------------------------------------
st=0
out=$(timeout 20 iscsi-ls "iscsi://$ISCSI_ADDR" 2>&1) || st=$?
((st != 0)) || fail "iscsi-ls without credentials listed targets: $out"
grep -q "(513)" <<<"$out" || fail "no authentication failure (0x0201 = 513) without credentials: $out"
st=0
out=$(timeout 20 iscsi-ls "iscsi://$CHAP_USER%wrong@$ISCSI_ADDR" 2>&1) || st=$?
((st != 0)) && grep -q "Authentication failure(513)" <<<"$out" || fail "wrong password: $out"
ok "iscsi-ls: no credentials / wrong password refused with 0x0201"
out=$(timeout 20 iscsi-ls "iscsi://$CHAP_USER%$CHAP_SECRET@$ISCSI_ADDR")
grep -qF "Target:$TARGET" <<<"$out" || fail "iscsi-ls with the right password: $out"
ok "iscsi-ls with the right password lists the targets"
LIBISCSI_CHAP_TARGET_USERNAME=$MUTUAL_USER LIBISCSI_CHAP_TARGET_PASSWORD=$MUTUAL_SECRET \
	timeout 20 iscsi-inq "iscsi://$CHAP_USER%$CHAP_SECRET@$ISCSI_ADDR/$TARGET/0" | grep -q "Vendor:BOOTLINK" ||
	fail "mutual CHAP with iscsi-inq"
if LIBISCSI_CHAP_TARGET_USERNAME=$MUTUAL_USER LIBISCSI_CHAP_TARGET_PASSWORD=other \
	timeout 20 iscsi-inq "iscsi://$CHAP_USER%$CHAP_SECRET@$ISCSI_ADDR/$TARGET/0" >"$T/m.out" 2>&1; then
	fail "the initiator accepted the target's answer to a different mutual secret"
fi
ok "mutual CHAP: the initiator verifies the target"

# --- byte level --------------------------------------------------------------
for c in wrong-secret wrong-user no-chap-offered skip-security no-md5 reflection one-way mutual discovery-needs-chap ipxe; do
	echo "--- $c"
	timeout 30 python3 "$TESTS/iscsi/chap.py" "$c" || fail "case $c"
	assert_daemon_alive "after $c"
done
grep -q "login refused (status 0x0201): CHAP authentication failed for user 'alice'" "$T/daemon.log" ||
	fail "the daemon log does not say why CHAP failed"
grep -q "session started (auth=CHAP+mutual " "$T/daemon.log" && grep -q "session started (auth=CHAP " "$T/daemon.log" ||
	fail "the daemon log does not say which sessions logged in with one-way and with mutual CHAP"
ok "CHAP at the byte level: status 0x0201 for every failure, one-way and mutual logins work"

# --- no mutual secret configured ------------------------------------------------
stop_daemon
rm -f "$T/conf/iscsi/chap_mutual_user" "$T/conf/iscsi/chap_mutual_secret"
start_daemon
export ISCSI_HOST ISCSI_PORT
timeout 30 python3 "$TESTS/iscsi/chap.py" mutual-refused || fail "case mutual-refused"
timeout 30 python3 "$TESTS/iscsi/chap.py" one-way || fail "case one-way without mutual secrets"
ok "without iscsi/chap_mutual_*, mutual CHAP is refused and one-way CHAP still works"
stop_daemon
ok "done"
