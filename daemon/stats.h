/* stats.h — counters and the runtime tree (default /run/bootlink).
 *
 * Workers bump counters in their own objects (connections, images) with
 * plain or relaxed-atomic increments; nothing on the data path locks. The
 * registry of live connections takes a mutex only on connect/disconnect.
 * The main thread snapshots everything every runtime/interval_ms and writes
 * the runtime tree, one value per file, sysfs-style:
 *
 *   <run>/pid, <run>/ready, <run>/listen/nbd
 *   <run>/connections/<id>/{peer,export,protocol,requests,bytes_read,bytes_written,errors,since}
 *   <run>/images/<name>/{id,path,size,connections,requests,bytes_read,disk_reads,disk_bytes,errors,
 *                        version,bootset_blocks}
 *   <run>/clients/<mac>/{mode,connections,boots,overlay_dir,overlay_ram_bytes,overlay_file_bytes,overlay_block_bytes,
 *                        writes,bytes_written,write_errors,enospc,flushes,reads,bytes_read,
 *                        boot_pending (0/1), boot_started, last_close (unix times, 0 = never)}
 *   <run>/overlay_dirs/<n>/{path,state (ok|nearly-full|failed|missing),clients,free_bytes,total_bytes}
 *   <run>/totals/{connections,connections_listed,exports}
 *                        (connections/ lists at most 1024 connections; totals count all)
 *   <run>/cache/{capacity_bytes,used_bytes,block_size,hits,misses,waits,disk_reads,disk_bytes,
 *                evictions,promotions,errors,blocks,probation_blocks,protected_blocks}
 *
 * Files are replaced atomically (write + rename); directories of gone
 * connections and images are removed.
 */
#ifndef BL_STATS_H
#define BL_STATS_H

struct conn;

void stats_conn_add(struct conn *c);
void stats_conn_remove(struct conn *c);
/* Record which export a connection uses (for the runtime tree). */
void stats_conn_set_export(struct conn *c, const char *export_name);

/* Open connections speaking proto ("nbd", "iscsi", "http"); takes the
 * registry lock (not for the data path). */
unsigned stats_conn_count(const char *proto);

/* Write the runtime tree under run_dir. Main thread only. */
void stats_dump(const char *run_dir);
/* Remove everything stats_dump wrote (at exit). */
void stats_clear(const char *run_dir);

#endif
