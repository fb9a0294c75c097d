/* ctl.h — bootlinkctl's commands and the context they run in.
 *
 * main.c holds the command table (struct ctl_cmd) and dispatches; each
 * command group lives in its own file (cmd_image.c, cmd_client.c,
 * cmd_status.c, cmd_version.c for image versions, cmd_overlay.c; their
 * file work in vfile.c). A command gets the arguments after its words, parses
 * them with args_parse(), opens the config and database with
 * store_open(), and returns an exit status (CTL_OK, CTL_ERR, CTL_USAGE,
 * CTL_HELP from out.h). main closes the database and finishes output.
 */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include "conf.h"
#include "db.h"

#include <stdbool.h>
#include <stdint.h>

struct ctl_cmd;

struct ctl {
	const char *conf_dir;            /* -c DIR, default CONF_DEFAULT_DIR */
	struct bl_conf conf;             /* loaded by store_open() */
	struct db *db;                   /* opened by store_open(), closed by main */
	const struct ctl_cmd *cmd;       /* the command running (for its usage text) */
};

struct ctl_cmd {
	const char *group;               /* first word: "image" */
	const char *verb;                /* second word: "add"; NULL for "status" */
	const char *args;                /* synopsis of the rest: "NAME FILE [--description TEXT]" */
	const char *help;                /* one line */
	int (*run)(struct ctl *c, int argc, char **argv);
};

/* cmd_image.c */
int cmd_image_add(struct ctl *c, int argc, char **argv);
int cmd_image_list(struct ctl *c, int argc, char **argv);
int cmd_image_rename(struct ctl *c, int argc, char **argv);
int cmd_image_rm(struct ctl *c, int argc, char **argv);
int cmd_image_verify(struct ctl *c, int argc, char **argv);
int cmd_image_repair(struct ctl *c, int argc, char **argv);

/* cmd_client.c */
int cmd_client_add(struct ctl *c, int argc, char **argv);
int cmd_client_link(struct ctl *c, int argc, char **argv);
int cmd_client_set(struct ctl *c, int argc, char **argv);
int cmd_client_list(struct ctl *c, int argc, char **argv);
int cmd_client_rm(struct ctl *c, int argc, char **argv);

/* cmd_boot.c: image boot files; clients' menus and kernel options */
struct db_menu;
int cmd_image_set(struct ctl *c, int argc, char **argv);
/* client set's boot options, as given (NULL = not given). */
struct client_boot_opts {
	const char *menu, *timeout, *cmdline;
	const char *keep_san, *drive;       /* sanboot --keep (0|1), --drive (0x80..0xff) */
};
/* Validate them into cl and *m (m->n = -1: menu unchanged), appending the
 * change to what. */
int client_boot_prepare(struct ctl *c, struct db_client *cl, const struct client_boot_opts *o, struct db_menu *m,
			char *what, size_t len);
/* Store them (inside the command's transaction). */
int client_boot_store(struct ctl *c, const struct db_client *cl, const struct db_menu *m);
/* menu_timeout, cmdline, keep_san, san_drive and menu as JSON members of the open object. */
void client_boot_json(struct ctl *c, const struct db_client *cl);

/* cmd_status.c */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_events(struct ctl *c, int argc, char **argv);

/* cmd_backup.c */
int cmd_backup(struct ctl *c, int argc, char **argv);
int cmd_restore(struct ctl *c, int argc, char **argv);

/* cmd_version.c */
int cmd_image_versions(struct ctl *c, int argc, char **argv);
int cmd_image_commit(struct ctl *c, int argc, char **argv);
int cmd_image_rollback(struct ctl *c, int argc, char **argv);
int cmd_image_flatten(struct ctl *c, int argc, char **argv);

/* jobs.c */
int cmd_jobs(struct ctl *c, int argc, char **argv);

/* cmd_overlay.c */
int cmd_overlay_list(struct ctl *c, int argc, char **argv);
int cmd_overlay_reset(struct ctl *c, int argc, char **argv);

/* cmd_pxe.c */
int cmd_pxe_config(struct ctl *c, int argc, char **argv);

/* What bootlinkd's runtime tree shows of one client (cmd_overlay.c). The
 * tree is refreshed every runtime/interval_ms, so it may lag that much. */
struct ctl_live {
	bool running;                    /* <paths/run>/ready exists */
	bool known;                      /* <paths/run>/clients/<mac>/ exists */
	unsigned conns;                  /* open connections */
	uint64_t ram_bytes, file_bytes;  /* overlay_ram_bytes, overlay_file_bytes */
	uint32_t block_bytes;            /* overlay_block_bytes: the overlay's granularity (0 = no disk open) */
	char dir[CONF_PATH_MAX];         /* overlay_dir */
};
void ctl_client_live(const struct ctl *c, const char *mac, struct ctl_live *out);

#endif
