/* util.h — small helpers shared by the daemon and the CLI.
 *
 * Pure functions (no I/O) unless noted; all are unit-tested in
 * tests/unit/test_util.c.
 */
#ifndef BL_UTIL_H
#define BL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define ALIGN_UP(x, a)   (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

/* Big-endian load/store (wire formats). */
static inline uint16_t get_be16(const void *p) { const uint8_t *b = p; return (uint16_t)(b[0] << 8 | b[1]); }
static inline uint32_t get_be32(const void *p) { const uint8_t *b = p; return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static inline uint64_t get_be64(const void *p) { return (uint64_t)get_be32(p) << 32 | get_be32((const uint8_t *)p + 4); }
static inline void put_be16(void *p, uint16_t v) { uint8_t *b = p; b[0] = v >> 8; b[1] = v; }
static inline void put_be32(void *p, uint32_t v) { uint8_t *b = p; b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v; }
static inline void put_be64(void *p, uint64_t v) { put_be32(p, v >> 32); put_be32((uint8_t *)p + 4, (uint32_t)v); }

/* MAC addresses. Accepts "52:54:00:AA:bb:01", "52-54-00-aa-bb-01" and
 * "525400aabb01"; writes the canonical lower-case colon form (18 bytes
 * with NUL) to out. Returns 0 or -EINVAL. */
#define MAC_STR_LEN 18
int mac_normalize(const char *in, char out[MAC_STR_LEN]);

/* Canonical MAC → its 12 hex digits ("525400aabb01"): overlay file names, IQNs. */
void mac_hex(const char *mac, char out[13]);

/* Split a space-separated list of directories (overlay/dirs); relative ones
 * are taken inside base. Returns how many (at most max) went to out. */
int split_dirs(const char *base, const char *list, char (*out)[1024], int max);

/* "HOST:PORT", "[V6]:PORT" or "PORT" into a sockaddr. Returns 0 or -EINVAL. */
int addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Printable "ip:port" of a sockaddr. */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Strict decimal parse of a whole string into [min, max]. 0 or -EINVAL / -ERANGE. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A name that may be used as a database key (image name): 1..63 chars of
 * [A-Za-z0-9._-], not starting with '.' or '-'. */
bool name_valid(const char *s);

/* Extra kernel command-line words stored in the database and put into iPXE
 * `kernel` lines: at most 255 bytes of [A-Za-z0-9 ._,:/=+@%-] (nothing
 * iPXE expands or parses: no '$', '|', '&', '#', quotes, newlines). */
bool cmdline_valid(const char *s);

/* Strip trailing whitespace/newlines in place. */
void str_rstrip(char *s);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Read a whole small file into buf (NUL-terminated). Returns length or -errno. */
ssize_t read_small_file(const char *path, char *buf, size_t len);
/* Write a whole small file atomically (tmp + rename). 0 or -errno. */
int write_small_file(const char *path, const char *data);
/* mkdir -p. 0 or -errno. */
int mkdir_p(const char *path, int mode);

#endif
