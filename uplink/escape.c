/*
 * escape.c — text into JSON strings and Prometheus label values (escape.h).
 */
#include "uplink/escape.h"

#include <stdint.h>
#include <stdio.h>

/* Length of the well-formed UTF-8 sequence at s (Unicode's table 3-7), 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	const unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (s[1] < lo || s[1] > hi) /* a NUL ends it here too */
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static size_t escape(char *out, size_t cap, const char *in, int prom)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;
	if (!cap)
		return 0;
	while (*s) {
		char e[8];
		size_t n, take = 1;
		if (*s == '"' || *s == '\\') {
			e[0] = '\\', e[1] = (char)*s, n = 2;
		} else if (prom && *s == '\n') {
			e[0] = '\\', e[1] = 'n', n = 2;
		} else if (!prom && (*s < 0x20 || *s == 0x7f)) {
			n = (size_t)snprintf(e, sizeof(e), "\\u%04x", *s);
		} else if (*s < 0x80) {
			e[0] = (char)*s, n = 1;
		} else if ((take = utf8_len(s)) != 0) {
			for (n = 0; n < take; n++)
				e[n] = (char)s[n];
		} else {
			take = 1;
			n = (size_t)snprintf(e, sizeof(e), "%s", prom ? "\xef\xbf\xbd" : "\\ufffd");
		}
		if (o + n >= cap)
			break;
		for (size_t i = 0; i < n; i++)
			out[o++] = e[i];
		s += take;
	}
	out[o] = 0;
	return o;
}

size_t op_json_escape(char *out, size_t cap, const char *in)
{
	return escape(out, cap, in, 0);
}

size_t op_prom_escape(char *out, size_t cap, const char *in)
{
	return escape(out, cap, in, 1);
}

void op_text_printable(char *s)
{
	unsigned char *p = (unsigned char *)s;
	for (size_t i = 0; p[i];) {
		size_t n = p[i] < 0x80 ? 1 : utf8_len(p + i);
		if (!n || p[i] < 0x20 || p[i] == 0x7f)
			p[i] = '?', n = 1;
		i += n;
	}
}

size_t op_utf8_invalid_at(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; p[i];) {
		size_t n = p[i] < 0x80 ? 1 : utf8_len(p + i);
		if (!n)
			return i;
		i += n;
	}
	return SIZE_MAX;
}
