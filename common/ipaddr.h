/* ipaddr.h — a peer's IP address without its port.
 *
 * Used to bind a client's disk to the address it booted from
 * (nbd/bind_client_address, docs/hardening.md). An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports) is folded to IPv4, so
 * the same PC compares equal whichever socket it came in on.
 */
#ifndef BL_IPADDR_H
#define BL_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define IPADDR_STR_MAX 46 /* INET6_ADDRSTRLEN */

struct ipaddr {
	int family;        /* AF_INET, AF_INET6, or 0 = none */
	uint8_t a[16];     /* 4 or 16 bytes in network order */
};

/* The IP of sa (AF_INET or AF_INET6); false (and family 0) for anything else. */
bool ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out);
/* Parse "a.b.c.d" or an IPv6 address (no brackets, no port). 0 or -EINVAL. */
int ipaddr_parse(const char *s, struct ipaddr *out);
/* Same family and bytes (two "none" addresses are not equal). */
bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b);
/* Printable form; "none" for family 0. */
void ipaddr_format(const struct ipaddr *a, char *buf, size_t len);

#endif
