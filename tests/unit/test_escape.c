/*
 * test_escape.c — op_json_escape and op_prom_escape (uplink/escape.h): what every JSON document
 * and Prometheus file outpost writes does with text it did not write. Written by hand from RFC
 * 8259, Prometheus' text exposition format and Unicode's table of well-formed UTF-8;
 * tests/integration/test_e2e.py reads the documents back with Python's json (badmodel) and
 * promtool (metrics).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uplink/escape.h"
#include "unit/check.h"

static int same_as(size_t (*esc)(char *, size_t, const char *), const char *in, size_t cap, const char *want)
{
	char out[256];
	memset(out, 'X', sizeof(out));
	size_t n = esc(out, cap, in);
	if (n != strlen(want) || strcmp(out, want) != 0 || out[n + 1] != 'X') {
		fprintf(stderr, "escape of \"%s\" (cap %zu): got \"%s\" (%zu), want \"%s\"\n", in, cap, out, n, want);
		return 0;
	}
	return 1;
}

static int same(const char *in, size_t cap, const char *want)
{
	return same_as(op_json_escape, in, cap, want);
}

static int prom(const char *in, size_t cap, const char *want)
{
	return same_as(op_prom_escape, in, cap, want);
}

/* The inverse for what the escaper writes: \" \\ \u00XX \ufffd; -1 on anything else. */
static int unescape(const char *s, char *out)
{
	size_t o = 0;
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f)
			return -1;
		if (*s != '\\') {
			out[o++] = *s;
			continue;
		}
		s++;
		if (*s == '"' || *s == '\\') {
			out[o++] = *s;
		} else if (*s == 'u' && !strncmp(s + 1, "fffd", 4)) {
			memcpy(out + o, "\xef\xbf\xbd", 3), o += 3, s += 4;
		} else if (*s == 'u' && !strncmp(s + 1, "00", 2)) {
			char hex[3] = {s[3], s[4], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			s += 4;
		} else {
			return -1;
		}
	}
	out[o] = 0;
	return (int)o;
}

int main(void)
{
	char big[256];
	/* what needs no escape stays as it is */
	CHECK(same("south-pole 1", 64, "south-pole 1"));
	CHECK(same("", 64, ""));
	/* the two characters a JSON string cannot hold as they are */
	CHECK(same("pole \"south\" C:\\x", 64, "pole \\\"south\\\" C:\\\\x"));
	/* control characters and DEL: a tab from a YAML "\t", a newline from an error message */
	CHECK(same("a\tb\nc\x01\x1f\x7f", 64, "a\\u0009b\\u000ac\\u0001\\u001f\\u007f"));
	/* UTF-8 (a site named in its own language), 2, 3 and 4 bytes long, kept */
	CHECK(same("Am\xc3\xa9ry \xe2\x82\xac \xf0\x9d\x84\x9e", 64, "Am\xc3\xa9ry \xe2\x82\xac \xf0\x9d\x84\x9e"));
	/* bytes that are not UTF-8: a stray continuation, an overlong '/', a surrogate, a byte
	 * never used, a sequence cut by the end or by another character */
	CHECK(same("\x80", 64, "\\ufffd"));
	CHECK(same("\xc0\xaf", 64, "\\ufffd\\ufffd"));
	CHECK(same("\xed\xa0\x80", 64, "\\ufffd\\ufffd\\ufffd"));
	CHECK(same("\xf5\x80\x80\x80", 64, "\\ufffd\\ufffd\\ufffd\\ufffd"));
	CHECK(same("x\xe2\x82", 64, "x\\ufffd\\ufffd"));
	CHECK(same("\xe2\x82" "A", 64, "\\ufffd\\ufffdA"));
	CHECK(same("\xf4\x90\x80\x80", 64, "\\ufffd\\ufffd\\ufffd\\ufffd")); /* above U+10FFFF */
	/* cut to fit: at a whole character or escape, never inside one */
	CHECK(same("abc", 4, "abc"));
	CHECK(same("abcd", 4, "abc"));
	CHECK(same("ab\"", 4, "ab"));
	CHECK(same("ab\"", 5, "ab\\\""));
	CHECK(same("a\x01", 7, "a"));
	CHECK(same("a\x01", 8, "a\\u0001"));
	CHECK(same("a\xc3\xa9", 3, "a"));
	CHECK(same("a\xe2\x82\xac", 4, "a"));
	CHECK(same("a\xe2\x82\xac", 5, "a\xe2\x82\xac"));
	CHECK(same("abc", 1, ""));
	CHECK(op_json_escape(big, 0, "abc") == 0);

	/* Prometheus label values: backslash, quote and line feed escaped, other bytes as they are
	 * when they are UTF-8 (a tab too: the format allows it), U+FFFD for the others */
	CHECK(prom("pole \"south\" C:\\x", 64, "pole \\\"south\\\" C:\\\\x"));
	CHECK(prom("a\nb\tc", 64, "a\\nb\tc"));
	CHECK(prom("Am\xc3\xa9ry", 64, "Am\xc3\xa9ry"));
	CHECK(prom("x\xff\xc3", 64, "x\xef\xbf\xbd\xef\xbf\xbd"));
	CHECK(prom("ab\n", 4, "ab"));
	CHECK(prom("a\xff", 4, "a"));
	CHECK(prom("a\xff", 5, "a\xef\xbf\xbd"));

	/* where text stops being UTF-8 */
	CHECK(op_utf8_invalid_at("Am\xc3\xa9ry \xe2\x82\xac \xf0\x9d\x84\x9e") == SIZE_MAX);
	CHECK(op_utf8_invalid_at("") == SIZE_MAX);
	CHECK(op_utf8_invalid_at("mod\xe9le") == 3); /* Latin-1 */
	CHECK(op_utf8_invalid_at("ab\xe2\x82") == 2);
	CHECK(op_utf8_invalid_at("\xed\xa0\x80") == 0);

	/* a line of its own: control characters, DEL and stray bytes as '?', UTF-8 kept */
	{
		char t[] = "gelu\noutpostd: ok\x7f mod\xe9le \xc3\xa9t\xc3\xa9 \xe2\x82";
		op_text_printable(t);
		CHECK(!strcmp(t, "gelu?outpostd: ok? mod?le \xc3\xa9t\xc3\xa9 ??"));
	}

	/* Any bytes at all: the result is a valid JSON string's inside (no raw control character
	 * or quote, only the escapes above) and reads back as the input, with U+FFFD for each byte
	 * that was not UTF-8 — checked exactly for the printable and UTF-8 ones. */
	srand(7);
	int bad = 0;
	for (int t = 0; t < 20000; t++) {
		unsigned char in[40];
		size_t n = (size_t)(rand() % 39);
		const int kind = t % 3; /* 0: any byte, 1: printable ASCII, 2: ASCII and valid UTF-8 */
		for (size_t i = 0; i < n; i++) {
			in[i] = kind == 0 ? (unsigned char)(1 + rand() % 255) : (unsigned char)(0x20 + rand() % 95);
			if (kind == 2 && i + 3 < n && rand() % 4 == 0) {
				static const char *u[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xd0\x96"};
				const char *p = u[rand() % 4];
				size_t l = strlen(p);
				if (i + l <= n)
					memcpy(in + i, p, l), i += l - 1;
			}
		}
		in[n] = 0;
		char back[256];
		size_t w = op_json_escape(big, sizeof(big), (const char *)in);
		int r = unescape(big, back);
		if (w != strlen(big) || r < 0 || op_utf8_invalid_at(big) != SIZE_MAX ||
		    (kind != 0 && strcmp(back, (const char *)in) != 0)) {
			if (bad++ < 5)
				fprintf(stderr, "random input %d (kind %d): \"%s\" read back as %d bytes\n", t, kind, big, r);
		}
	}
	CHECK(bad == 0);
	return check_finish("test_escape");
}
