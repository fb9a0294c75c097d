/* fuzz_scsi.c — libFuzzer harness for the SCSI command set an initiator
 * reaches after login (daemon/scsi.c, scsi_block.c, scsi_spc.c, scsi_pr*.c):
 * CDB decoding and validation, parameter lists, the streamed write path.
 *
 * Input: byte 0 = flags (bit 0 read-only disk, bit 1 LUN missing, bits 4-7
 * data-out piece size), bytes 1..16 the CDB, the rest the data-out bytes the
 * initiator sends. The disk is a small in-memory vdisk (this file provides
 * vdisk_submit, vd_req_release, vdisk_extents), completing inline.
 * Asserts: done() runs exactly once; the status is GOOD, CHECK CONDITION or
 * RESERVATION CONFLICT; sense only with CHECK CONDITION and within its
 * buffer; the data-in pieces add up to in_len; every disk request the
 * command made stays inside the disk. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scsi.h"
#include "util.h"

#define DISK_BYTES (64u * SCSI_BLOCK_SIZE)
static uint8_t disk[DISK_BYTES];
static struct vdisk vd;
static struct scsi_lu lu;
static int dones;

int vdisk_submit(struct vd_req *r)
{
	r->iov = r->iov_inline;
	r->niov = 0;
	if (r->off > r->vd->size || r->len > r->vd->size - r->off)
		return -EINVAL;
	if (r->vd->read_only && (r->op == VD_WRITE || r->op == VD_TRIM || r->op == VD_ZERO))
		return -EPERM;
	assert(r->off + r->len <= DISK_BYTES);
	switch (r->op) {
	case VD_READ:
		r->iov[0].iov_base = disk + r->off;
		r->iov[0].iov_len = r->len;
		r->niov = 1;
		break;
	case VD_WRITE:
		memcpy(disk + r->off, r->wdata, r->len);
		break;
	case VD_TRIM:
	case VD_ZERO:
		memset(disk + r->off, 0, r->len);
		break;
	default:
		break;
	}
	r->done(r, 0);
	return 0;
}

void vd_req_release(struct vd_req *r)
{
	r->niov = 0;
}

int vdisk_extents(struct vdisk *v, uint64_t off, uint64_t len, struct vd_extent *out, int max)
{
	(void)v, (void)off;
	out[0] = (struct vd_extent){ .len = len, .flags = 0 };
	return max >= 1 ? 1 : -EINVAL;
}

static void on_done(struct scsi_cmd *sc)
{
	(void)sc;
	dones++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scsi_cmd sc;
	if (size < 1 + SCSI_CDB_MAX)
		return 0;
	uint8_t flags = data[0];
	memset(&vd, 0, sizeof vd);
	vd.size = DISK_BYTES;
	vd.read_only = flags & 1;
	scsi_lu_init(&lu, &vd, "client/52:54:00:aa:bb:01", "iqn.2026-11.org.bootlink:client.525400aabb01");
	scsi_lu_set_port(&lu, 5, "iqn.fuzz,i,0x1");
	memset(&sc, 0, sizeof sc);
	sc.lu = flags & 2 ? NULL : &lu;
	memcpy(sc.cdb, data + 1, SCSI_CDB_MAX);
	const uint8_t *out = data + 1 + SCSI_CDB_MAX;
	uint32_t out_len = (uint32_t)(size - 1 - SCSI_CDB_MAX);
	uint32_t piece = 1u + (flags >> 4) * 37u;
	sc.out_expected = out_len;
	sc.done = on_done;
	dones = 0;
	scsi_cmd_start(&sc);
	if (!sc.finished && sc.dir == SCSI_DIR_OUT && sc.out_len) {
		for (uint32_t o = 0; o < out_len && !sc.finished; o += piece)
			scsi_cmd_data(&sc, out + o, MIN(piece, out_len - o));
		if (!sc.finished)
			scsi_cmd_data_end(&sc);
	}
	assert(dones == 1);
	assert(sc.status == SCSI_GOOD || sc.status == SCSI_CHECK_CONDITION ||
	       sc.status == SCSI_RESERVATION_CONFLICT);
	assert(sc.sense_len <= sizeof sc.sense);
	assert(sc.sense_len == 0 || sc.status == SCSI_CHECK_CONDITION);
	uint64_t total = 0;
	for (int i = 0; i < sc.in_niov; i++)
		total += sc.in_iov[i].iov_len;
	assert(total == sc.in_len);
	scsi_cmd_release(&sc);
	scsi_lu_nexus_loss(&lu);
	scsi_lu_fini(&lu);
	return 0;
}
