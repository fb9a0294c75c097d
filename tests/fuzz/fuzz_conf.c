/* fuzz_conf.c — libFuzzer harness for the values of the config tree
 * (common/conf.c): what an admin (or a broken editor) leaves in a setting
 * file goes through clean_value() (whitespace, one line, no control
 * characters, length) and store() (the key's type: numbers and their
 * ranges and powers of two, log levels, addresses, paths, strings, enums).
 *
 * conf.c is included so its static parsers are reached as they are. Input:
 * byte 0 picks the key (modulo the schema), the rest is the file's bytes.
 * Asserts: an error message is a NUL-terminated line naming the file; a
 * value that was accepted is stored NUL-terminated within its field, and an
 * unsigned one within the key's range (and a power of two where required). */
#include "../../common/conf.c"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bl_conf c;
	char raw[VALUE_MAX + 2], err[1024], *v = raw;
	const char *why;
	if (size < 1 || size - 1 > VALUE_MAX + 1)
		return 0;
	const struct conf_key *k = &schema[data[0] % ARRAY_SIZE(schema)];
	size_t n = size - 1;
	memcpy(raw, data + 1, n);
	raw[n] = 0;
	conf_defaults(&c);
	err[0] = 0;
	if (clean_value(raw, n, "/etc/bootlink/fuzz", k, &v, err, sizeof err) < 0) {
		assert(memchr(err, 0, sizeof err) && strstr(err, "fuzz"));
		return 0;
	}
	assert(v >= raw && v < raw + sizeof raw && memchr(v, 0, raw + sizeof raw - v));
	if (store(&c, k, v, &why) < 0)
		return 0;
	const char *f = (const char *)&c + k->offset;
	switch (k->type) {
	case CONF_UINT: {
		unsigned x = *(const unsigned *)f;
		assert(x >= k->min && x <= k->max);
		assert(!k->pow2 || (x & (x - 1)) == 0);
		break;
	}
	case CONF_ADDR:
	case CONF_PATH:
	case CONF_STR:
		assert(memchr(f, 0, k->size));
		break;
	case CONF_LOGLEVEL:
		break;
	case CONF_ENUM: {
		/* the index of one of the key's words */
		unsigned x = *(const unsigned *)f, i = 0;
		while (k->choices[i])
			i++;
		assert(x < i);
		break;
	}
	}
	return 0;
}
