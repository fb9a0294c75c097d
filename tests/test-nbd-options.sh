#!/bin/bash
# test-nbd-options — negotiation through libnbd in opt mode (tests/nbd/options.py
# run by nbdsh): LIST, INFO (size, block sizes, description), GO, unknown
# exports in INFO/GO with the negotiation going on, LIST/SET_META_CONTEXT
# with base:allocation, block status of a sparse image (holes as hole+zero,
# data as data), reads with structured replies on and off, ABORT, and the
# answer to extended headers.
. "$(dirname "$0")/lib/common.sh"
need nbdsh python3
need_python_module nbd
need_bootlink

MAC=52:54:00:aa:bb:01
DESC="Debian 12 golden image (test)"
mkimage "$T/img" 3M+5
mkimage_sparse "$T/sparse" 256M
ctl image add img "$T/img" --description "$DESC"
ctl image add sparse "$T/sparse"
ctl client add "$MAC" --image img
start_daemon

export TESTS NBD_HOST NBD_PORT IMG=img IMG_FILE=$T/img IMG_DESC=$DESC SPARSE=sparse SPARSE_FILE=$T/sparse CLIENT=client/$MAC
NBDSH_SCRIPT=$TESTS/nbd/options.py timeout 120 "${NBDSH[@]}" || fail "options.py"

assert_daemon_alive
stop_daemon
ok "done"
