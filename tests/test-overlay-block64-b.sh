#!/bin/bash
# test-overlay-block64-b — the overlay tests (zero, reset, enospc, versions, versions-flatten) again with
# 64 KiB overlay blocks (overlay/block_kb=64 through OVERLAY_BLOCK_KB): each
# must pass, or skip for the reason it skips at 4 KiB. (Split in two so
# each half stays well inside the runner's time limit.)
. "$(dirname "$0")/lib/common.sh"
need_bootlink
rerun_at_block_kb 64 overlay-zero overlay-reset overlay-enospc versions versions-flatten
ok "done"
