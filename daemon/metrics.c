/* metrics.c — the /metrics exposition (see metrics.h, docs/metrics.md).
 *
 * Design: the text is printed into an open_memstream buffer by one pass
 * over each source, grouped by metric family as the text format wants
 * (one HELP/TYPE header, then every sample of the family). Families with
 * several sources (images, clients) are printed by walking the source once
 * per family: a few hundred clients times a dozen families is still far
 * less work than one scrape interval. Label values are escaped (\\, \", \n).
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "bootset.h"
#include "cache.h"
#include "clients.h"
#include "db.h"
#include "exports.h"
#include "image.h"
#include "stats.h"
#include "util.h"

struct met_worker g_met[MET_MAX_WORKERS];

/* Bucket upper bounds: 100 µs .. 10 s. */
const uint64_t met_bounds_ns[MET_BUCKETS] = {
	100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000,
	50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000ull, 5000000000ull, 10000000000ull,
};

/* Family header. */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped per the text format. */
static void label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f), fputc(*v, f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* name{key="value"} value */
static void sample1(FILE *f, const char *name, const char *key, const char *v, uint64_t value)
{
	fprintf(f, "%s{%s=\"", name, key);
	label_value(f, v);
	fprintf(f, "\"} %" PRIu64 "\n", value);
}

/* ---- images ---- */

enum img_field { I_SIZE, I_CONNS, I_REQS, I_READ, I_DISK_READS, I_DISK_BYTES, I_ERRORS, I_VERSION, I_BOOTSET,
		 I_COUNT };
static const struct { const char *name, *type, *help; } img_fam[I_COUNT] = {
	[I_SIZE] = { "bootlink_image_size_bytes", "gauge", "Size of the image's current version" },
	[I_CONNS] = { "bootlink_image_connections", "gauge", "Open connections reading the image (its export and its clients)" },
	[I_REQS] = { "bootlink_image_requests_total", "counter", "Requests that reached the image layer" },
	[I_READ] = { "bootlink_image_read_bytes_total", "counter", "Bytes read from the image (cache or disk)" },
	[I_DISK_READS] = { "bootlink_image_disk_reads_total", "counter", "Reads of the image files on disk (cache misses)" },
	[I_DISK_BYTES] = { "bootlink_image_disk_read_bytes_total", "counter", "Bytes read from the image files on disk" },
	[I_ERRORS] = { "bootlink_image_errors_total", "counter", "I/O errors reading the image files" },
	[I_VERSION] = { "bootlink_image_version", "gauge", "Version number being served (1 = the file as added)" },
	[I_BOOTSET] = { "bootlink_image_bootset_blocks", "gauge", "Cache blocks in the image's learned boot set" },
};

struct img_walk {
	FILE *f;
	enum img_field field;
};

/* exports_foreach_image callback: one sample of the current family. */
static void image_sample(struct image *img, void *arg)
{
	struct img_walk *w = arg;
	uint64_t v = 0;
	switch (w->field) {
	case I_SIZE: v = img->size; break;
	case I_CONNS: v = __atomic_load_n(&img->stat_connections, __ATOMIC_RELAXED); break;
	case I_REQS: v = __atomic_load_n(&img->stat_requests, __ATOMIC_RELAXED); break;
	case I_READ: v = __atomic_load_n(&img->stat_bytes_read, __ATOMIC_RELAXED); break;
	case I_DISK_READS: v = __atomic_load_n(&img->stat_disk_reads, __ATOMIC_RELAXED); break;
	case I_DISK_BYTES: v = __atomic_load_n(&img->stat_disk_bytes, __ATOMIC_RELAXED); break;
	case I_ERRORS: v = __atomic_load_n(&img->stat_errors, __ATOMIC_RELAXED); break;
	case I_VERSION: v = (uint64_t)img->version; break;
	case I_BOOTSET: v = bootset_count(img); break;
	case I_COUNT: break;
	}
	sample1(w->f, img_fam[w->field].name, "image", img->name, v);
}

/* Every image family. */
static void images(FILE *f)
{
	for (int i = 0; i < I_COUNT; i++) {
		struct img_walk w = { f, (enum img_field)i };
		family(f, img_fam[i].name, img_fam[i].type, img_fam[i].help);
		exports_foreach_image(image_sample, &w);
	}
}

/* ---- clients ---- */

enum cl_field { C_CONNS, C_BOOTS, C_RAM, C_FILE, C_READS, C_READ_BYTES, C_WRITES, C_WRITE_BYTES, C_WERR,
		C_ENOSPC, C_FLUSHES, C_BOOT_TIME, C_COUNT };
static const struct { const char *name, *type, *help; } cl_fam[C_COUNT] = {
	[C_CONNS] = { "bootlink_client_connections", "gauge", "Open connections of the client" },
	[C_BOOTS] = { "bootlink_client_boots_total", "counter", "Boots of the client since bootlinkd started" },
	[C_RAM] = { "bootlink_client_overlay_ram_bytes", "gauge", "Overlay bytes the client holds in RAM" },
	[C_FILE] = { "bootlink_client_overlay_file_bytes", "gauge", "Overlay bytes the client holds in its overlay file" },
	[C_READS] = { "bootlink_client_reads_total", "counter", "Read requests of the client's current boot" },
	[C_READ_BYTES] = { "bootlink_client_read_bytes_total", "counter", "Bytes read by the client's current boot" },
	[C_WRITES] = { "bootlink_client_writes_total", "counter", "Write requests of the client's current boot" },
	[C_WRITE_BYTES] = { "bootlink_client_written_bytes_total", "counter", "Bytes written by the client's current boot" },
	[C_WERR] = { "bootlink_client_write_errors_total", "counter", "Overlay write errors of the client's current boot" },
	[C_ENOSPC] = { "bootlink_client_enospc_total", "counter", "Writes refused because the overlay disk was full" },
	[C_FLUSHES] = { "bootlink_client_flushes_total", "counter", "Flushes of the client's overlay" },
	[C_BOOT_TIME] = { "bootlink_client_boot_time_seconds", "gauge", "Unix time the client's current boot started (0 = none yet)" },
};

struct cl_walk {
	FILE *f;
	enum cl_field field;
};

/* clients_foreach callback: one sample of the current family. */
static void client_sample(const struct client_info *ci, void *arg)
{
	struct cl_walk *w = arg;
	uint64_t v = 0;
	switch (w->field) {
	case C_CONNS: v = ci->conns; break;
	case C_BOOTS: v = ci->boots; break;
	case C_RAM: v = ci->ram_bytes; break;
	case C_FILE: v = ci->file_bytes; break;
	case C_READS: v = ci->reads; break;
	case C_READ_BYTES: v = ci->bytes_read; break;
	case C_WRITES: v = ci->writes; break;
	case C_WRITE_BYTES: v = ci->bytes_written; break;
	case C_WERR: v = ci->errors; break;
	case C_ENOSPC: v = ci->enospc; break;
	case C_FLUSHES: v = ci->flushes; break;
	case C_BOOT_TIME: v = (uint64_t)ci->boot_time; break;
	case C_COUNT: break;
	}
	fprintf(w->f, "%s{mac=\"%s\",mode=\"%s\"} %" PRIu64 "\n", cl_fam[w->field].name, ci->mac,
		db_mode_name(ci->mode), v);
}

/* Every client family. */
static void clients(FILE *f)
{
	for (int i = 0; i < C_COUNT; i++) {
		struct cl_walk w = { f, (enum cl_field)i };
		family(f, cl_fam[i].name, cl_fam[i].type, cl_fam[i].help);
		clients_foreach(client_sample, &w);
	}
}

/* ---- overlay directories ---- */

struct dir_walk {
	FILE *f;
	int field;                        /* 0 free, 1 size, 2 clients, 3 up */
};

/* clients_foreach_dir callback: one sample of the current family. */
static void dir_sample(int i, const char *path, bool failed, unsigned nclients, void *arg)
{
	static const char *const names[] = { "bootlink_overlay_dir_free_bytes", "bootlink_overlay_dir_size_bytes",
					     "bootlink_overlay_dir_clients", "bootlink_overlay_dir_healthy" };
	struct dir_walk *w = arg;
	struct statvfs st;
	bool ok = statvfs(path, &st) == 0;
	uint64_t v = w->field == 0 ? (ok ? (uint64_t)st.f_bavail * st.f_frsize : 0)
		   : w->field == 1 ? (ok ? (uint64_t)st.f_blocks * st.f_frsize : 0)
		   : w->field == 2 ? nclients : (ok && !failed);
	(void)i;
	sample1(w->f, names[w->field], "dir", path, v);
}

/* Every overlay directory family. */
static void overlay_dirs(FILE *f)
{
	static const char *const fam[][3] = {
		{ "bootlink_overlay_dir_free_bytes", "gauge", "Bytes free for overlays in the directory's filesystem" },
		{ "bootlink_overlay_dir_size_bytes", "gauge", "Size of the directory's filesystem" },
		{ "bootlink_overlay_dir_clients", "gauge", "Client overlays placed in the directory" },
		{ "bootlink_overlay_dir_healthy", "gauge", "1 if the directory is reachable and has had no I/O error" },
	};
	for (int i = 0; i < 4; i++) {
		struct dir_walk w = { f, i };
		family(f, fam[i][0], fam[i][1], fam[i][2]);
		clients_foreach_dir(dir_sample, &w);
	}
}

/* ---- cache, connections ---- */

/* The shared block cache. */
static void cache(FILE *f)
{
	struct cache_stats cs;
	cache_get_stats(&cs);
	const struct { const char *name, *type, *help; uint64_t v; } m[] = {
		{ "bootlink_cache_capacity_bytes", "gauge", "Size of the RAM block cache (cache/size_mb)", cs.capacity_bytes },
		{ "bootlink_cache_used_bytes", "gauge", "Bytes of the cache holding blocks", cs.used_bytes },
		{ "bootlink_cache_hits_total", "counter", "Block lookups answered from RAM", cs.hits },
		{ "bootlink_cache_misses_total", "counter", "Block lookups that had to read the disk", cs.misses },
		{ "bootlink_cache_waits_total", "counter", "Lookups that waited for another reader's load", cs.waits },
		{ "bootlink_cache_disk_read_bytes_total", "counter", "Bytes the cache read from image files", cs.disk_bytes },
		{ "bootlink_cache_evictions_total", "counter", "Blocks evicted", cs.evictions },
		{ "bootlink_cache_errors_total", "counter", "Block loads that failed", cs.errors },
	};
	for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
		family(f, m[i].name, m[i].type, m[i].help);
		fprintf(f, "%s %" PRIu64 "\n", m[i].name, m[i].v);
	}
}

/* Open connections per protocol and the export count. */
static void connections(FILE *f)
{
	static const char *const protos[] = { "nbd", "iscsi", "http" };
	family(f, "bootlink_connections", "gauge", "Open connections by protocol");
	for (size_t i = 0; i < ARRAY_SIZE(protos); i++)
		sample1(f, "bootlink_connections", "protocol", protos[i], stats_conn_count(protos[i]));
	family(f, "bootlink_exports", "gauge", "Exports in the table (images and clients)");
	fprintf(f, "bootlink_exports %zu\n", exports_count());
}

/* ---- latency ---- */

/* The request latency histograms, summed over the workers. */
static void latency(FILE *f)
{
	static const char *const pname[] = { "nbd", "iscsi" }, *const oname[] = { "read", "write" };
	family(f, "bootlink_request_duration_seconds", "histogram",
	       "Time from a read or write request's arrival to its reply being queued");
	for (int p = 0; p < MET_NPROTO; p++)
		for (int o = 0; o < MET_NOP; o++) {
			uint64_t b[MET_BUCKETS + 1] = { 0 }, sum = 0, cum = 0;
			for (int w = 0; w < MET_MAX_WORKERS; w++) {
				const struct met_hist *h = &g_met[w].h[p][o];
				for (int i = 0; i <= MET_BUCKETS; i++)
					b[i] += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
				sum += __atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED);
			}
			for (int i = 0; i <= MET_BUCKETS; i++) {
				cum += b[i];
				fprintf(f, "bootlink_request_duration_seconds_bucket{protocol=\"%s\",op=\"%s\",le=\"",
					pname[p], oname[o]);
				if (i < MET_BUCKETS)
					fprintf(f, "%g", (double)met_bounds_ns[i] / 1e9);
				else
					fputs("+Inf", f);
				fprintf(f, "\"} %" PRIu64 "\n", cum);
			}
			fprintf(f, "bootlink_request_duration_seconds_sum{protocol=\"%s\",op=\"%s\"} %.9f\n",
				pname[p], oname[o], (double)sum / 1e9);
			fprintf(f, "bootlink_request_duration_seconds_count{protocol=\"%s\",op=\"%s\"} %" PRIu64 "\n",
				pname[p], oname[o], cum);
		}
}

/* The whole exposition. */
int metrics_render(char **text, size_t *len)
{
	FILE *f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	family(f, "bootlink_info", "gauge", "Always 1; the version as a label");
	fprintf(f, "bootlink_info{version=\"%s\"} 1\n", BL_VERSION);
	connections(f);
	images(f);
	clients(f);
	overlay_dirs(f);
	cache(f);
	latency(f);
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}
