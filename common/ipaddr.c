/* ipaddr.c — IP addresses without ports; see ipaddr.h. */
#include "ipaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Store an IPv6 address, folding the IPv4-mapped form to IPv4. */
static void set_v6(struct ipaddr *out, const struct in6_addr *a6)
{
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		out->family = AF_INET;
		memcpy(out->a, a6->s6_addr + 12, 4);
	} else {
		out->family = AF_INET6;
		memcpy(out->a, a6->s6_addr, 16);
	}
}

bool ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out)
{
	memset(out, 0, sizeof *out);
	if (sa->sa_family == AF_INET) {
		out->family = AF_INET;
		memcpy(out->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		set_v6(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
		return true;
	}
	return false;
}

int ipaddr_parse(const char *s, struct ipaddr *out)
{
	struct in6_addr a6;
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, s, out->a) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		set_v6(out, &a6);
		return 0;
	}
	return -EINVAL;
}

bool ipaddr_equal(const struct ipaddr *a, const struct ipaddr *b)
{
	if (!a->family || a->family != b->family)
		return false;
	return memcmp(a->a, b->a, a->family == AF_INET ? 4 : 16) == 0;
}

void ipaddr_format(const struct ipaddr *a, char *buf, size_t len)
{
	char h[IPADDR_STR_MAX] = "none";
	if (a->family)
		inet_ntop(a->family, a->a, h, sizeof h);
	snprintf(buf, len, "%s", h);
}
