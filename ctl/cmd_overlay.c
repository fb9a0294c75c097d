/* cmd_overlay.c — `bootlinkctl overlay ...`: list, reset; and the reader
 * of bootlinkd's runtime tree for one client (ctl_client_live, ctl.h).
 *
 * Design: an overlay holds a client's writes; the golden image is never
 * written. While bootlinkd runs, its runtime tree (<paths/run>/clients/
 * <mac>/..., refreshed every runtime/interval_ms) is the truth about an
 * overlay: RAM and file bytes, connections. Without the daemon (or for a
 * client it has not seen since it started) the files in overlay/dirs are
 * all there is. A reset never pulls files from under a running client: it
 * bumps the client's overlay epoch, which bootlinkd compares at the
 * client's next boot, and deletes the files at once only when the client
 * is not connected.
 *
 * `overlay list` shows, per client, what the issue asks of it: the mode,
 * the overlay's size and its RAM/file split, its granularity, and where it
 * lives: the directory and the physical disk(s) behind it (common/stage.c,
 * the same walk bootlinkd places overlays with).
 */
#include "args.h"
#include "ctl.h"
#include "out.h"
#include "stage.h"
#include "store.h"
#include "util.h"
#include "vfile.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- runtime tree ---- */

/* One number from <dir>/<name>; 0 if missing. */
static uint64_t run_u64(const char *dir, const char *name)
{
	char p[CONF_PATH_MAX + 128], buf[32];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return read_small_file(p, buf, sizeof buf) > 0 ? strtoull(buf, NULL, 10) : 0;
}

/* What <paths/run> says about client mac (ctl.h). */
void ctl_client_live(const struct ctl *c, const char *mac, struct ctl_live *out)
{
	char p[CONF_PATH_MAX + 128], dir[CONF_PATH_MAX + 64];
	memset(out, 0, sizeof *out);
	snprintf(p, sizeof p, "%s/ready", c->conf.run_dir);
	out->running = access(p, F_OK) == 0;
	snprintf(dir, sizeof dir, "%s/clients/%s", c->conf.run_dir, mac);
	out->known = out->running && access(dir, F_OK) == 0;
	if (!out->known)
		return;
	out->conns = (unsigned)run_u64(dir, "connections");
	out->ram_bytes = run_u64(dir, "overlay_ram_bytes");
	out->file_bytes = run_u64(dir, "overlay_file_bytes");
	out->block_bytes = (uint32_t)run_u64(dir, "overlay_block_bytes");
	snprintf(p, sizeof p, "%s/overlay_dir", dir);
	if (read_small_file(p, out->dir, sizeof out->dir) > 0)
		str_rstrip(out->dir);
}

/* ---- overlay list ---- */

static const struct out_col list_cols[] = {
	{ "name", "NAME", 0 },
	{ "mac", "MAC", 0 },
	{ "mode", "MODE", 0 },
	{ "image", "IMAGE", 0 },
	{ NULL, "SIZE", COL_NUM | COL_HUMAN },
	{ "bytes", NULL, COL_NUM | COL_JSON },
	{ NULL, "RAM", COL_NUM | COL_HUMAN },
	{ "ram_bytes", NULL, COL_NUM | COL_JSON },
	{ NULL, "FILE", COL_NUM | COL_HUMAN },
	{ "file_bytes", NULL, COL_NUM | COL_JSON },
	{ NULL, "BLOCK", COL_NUM | COL_HUMAN },
	{ "block_bytes", NULL, COL_NUM | COL_JSON },
	{ "connections", "CONN", COL_NUM },
	{ "disk", "DISK", 0 },
	{ NULL, "OVERLAY DIR", COL_HUMAN },
	{ "dir", NULL, COL_JSON },
	{ "source", NULL, COL_JSON },
	{ "epoch", NULL, COL_NUM | COL_JSON },
};

struct list_ctx {
	struct ctl *c;
	struct out_table *t;
	bool running;
};

/* The physical disk(s) holding dir, "sda" or "sdb+sdc" ("-" if unknown). */
static void disk_of(const char *dir, char *out, size_t len)
{
	struct stage_disk d;
	snprintf(out, len, "-");
	if (dir[0] && stage_disk_of_path(dir, &d) == 0)
		stage_disks_str(&d, out, len);
}

/* db_client_list callback: one row, from the runtime tree or the files. */
static int list_cb(const struct db_client *cl, void *arg)
{
	struct list_ctx *l = arg;
	struct ctl_live live;
	struct vfile_overlay ov;
	char ram_h[32], file_h[32], size_h[32], block_h[32], ram[24], file[24], size[24], block[16],
		conns[16], epoch[24], disk[STAGE_MAX_DISKS * (STAGE_NAME_LEN + 1)];
	const char *dir = "", *source = "none";
	uint64_t ram_b = 0, file_b = 0;
	uint32_t block_b = 0;
	ctl_client_live(l->c, cl->mac, &live);
	if (live.known) {
		source = "daemon";
		dir = live.dir;
		ram_b = live.ram_bytes;
		file_b = live.file_bytes;
		block_b = live.block_bytes;
	} else if (vfile_find_overlay(&l->c->conf, cl->mac, &ov) > 0) {
		source = "files";
		dir = ov.dir;
		file_b = ov.data_bytes;
		block_b = ov.info_block;
	}
	disk_of(dir, disk, sizeof disk);
	snprintf(ram, sizeof ram, "%llu", (unsigned long long)ram_b);
	snprintf(file, sizeof file, "%llu", (unsigned long long)file_b);
	snprintf(size, sizeof size, "%llu", (unsigned long long)(ram_b + file_b));
	snprintf(block, sizeof block, "%u", block_b);
	snprintf(conns, sizeof conns, "%u", live.conns);
	snprintf(epoch, sizeof epoch, "%lld", (long long)cl->overlay_epoch);
	const char *cells[] = { cl->name, cl->mac, db_mode_name(cl->mode),
				cl->image_name[0] ? cl->image_name : "-", out_size(ram_b + file_b, size_h), size,
				out_size(ram_b, ram_h), ram, out_size(file_b, file_h), file,
				block_b ? out_size(block_b, block_h) : "-", block, conns, disk,
				dir[0] ? dir : "-", dir, source, epoch };
	return out_table_row(l->t, cells);
}

/* overlay list */
int cmd_overlay_list(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	char ready[CONF_PATH_MAX + 16];
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_open(c, true)))
		return ret;
	snprintf(ready, sizeof ready, "%s/ready", c->conf.run_dir);
	struct list_ctx l = { c, out_table_new(list_cols, ARRAY_SIZE(list_cols)),
			      access(ready, F_OK) == 0 };
	if (!l.t)
		return out_fail("out of memory");
	if ((ret = db_client_list(c->db, list_cb, &l)) < 0) {
		out_table_free(l.t);
		return store_fail(ret, "listing clients");
	}
	out_bool("daemon_running", l.running);
	bool any = out_table_rows(l.t) > 0;
	out_table_print(l.t, "overlays", "no clients; add one with: bootlinkctl client add MAC --image NAME");
	if (any && !l.running)
		out_text("(bootlinkd is not running: FILE is the allocated size of the overlay files)\n");
	return CTL_OK;
}

/* ---- overlay reset ---- */

/* Delete the client's overlay files now (it is not connected); report. */
static int reset_files(struct ctl *c, const struct db_client *cl)
{
	struct vfile_overlay ov;
	char size[32];
	int found = vfile_find_overlay(&c->conf, cl->mac, &ov);
	out_bool("deleted", found > 0);
	if (found <= 0) {
		out_text("client %s (%s): overlay reset; no overlay files to delete; it starts with an "
			 "empty overlay at its next boot\n", cl->name, cl->mac);
		return CTL_OK;
	}
	out_str("dir", ov.dir);
	out_int("bytes", (int64_t)ov.bytes);
	int ret = vfile_remove_overlay(&ov);
	if (ret < 0)
		return out_fail("client %s: the overlay was reset, but its files in %s could not be "
				"deleted: %s; bootlinkd discards them at the client's next boot, or delete "
				"them by hand", cl->mac, ov.dir, strerror(-ret));
	out_text("client %s (%s): overlay reset; deleted its overlay files in %s (%s); it starts "
		 "with an empty overlay at its next boot\n", cl->name, cl->mac, ov.dir,
		 out_size(ov.bytes, size));
	return CTL_OK;
}

/* overlay reset MAC */
int cmd_overlay_reset(struct ctl *c, int argc, char **argv)
{
	const char *pos[ARGS_MAX_POS];
	char mac[MAC_STR_LEN];
	struct db_client cl;
	struct ctl_live live;
	int ret = args_parse(c, argc, argv, NULL, pos);
	if (ret || (ret = store_mac(pos[0], mac)) || (ret = store_open(c, false)) ||
	    (ret = store_client(c, mac, &cl)))
		return ret;
	ctl_client_live(c, cl.mac, &live);
	bool connected = live.running && live.conns > 0;
	if ((ret = store_begin(c)))
		return ret;
	if ((ret = db_client_bump_epoch(c->db, cl.mac)) < 0)
		return store_abort(c, store_fail(ret, "resetting the overlay of client %s", cl.mac));
	if ((ret = store_commit(c, cl.mac, "overlay", "overlay reset (epoch %lld -> %lld)%s",
				(long long)cl.overlay_epoch, (long long)cl.overlay_epoch + 1,
				connected ? "; connected: applies at its next boot" : "")))
		return ret;
	out_obj("client");
	out_str("name", cl.name);
	out_str("mac", cl.mac);
	out_str("mode", db_mode_name(cl.mode));
	out_end();
	out_int("epoch", cl.overlay_epoch + 1);
	out_bool("connected", connected);
	if (!connected)
		return reset_files(c, &cl);
	out_bool("deleted", false);
	out_text("client %s (%s) is connected (%u connection%s): it keeps its overlay until it "
		 "boots again, then starts with an empty one\n", cl.name, cl.mac, live.conns,
		 live.conns == 1 ? "" : "s");
	return CTL_OK;
}
