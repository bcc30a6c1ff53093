/*
 * windows.c — parsing uplink.windows (sender.h); apart from the sender so that the configuration
 * loader (and its fuzz target) can check the text without ZeroMQ.
 */
#include <stdio.h>

#include "uplink/sender.h"

int op_uplink_windows_parse(const char *text, uint16_t ranges[][2], int max, char *err, size_t cap)
{
	int n = 0, idx = 0;
	const char *p = text ? text : "";
	while (*p) {
		while (*p == ' ' || *p == ';' || *p == ',')
			p++;
		if (!*p)
			break;
		idx++;
		int h1, m1, h2, m2, used = 0;
		if (sscanf(p, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &used) != 4 || used != 11 || h1 > 24 || h2 > 24 ||
		    m1 > 59 || m2 > 59 || (h1 == 24 && m1) || (h2 == 24 && m2) || h1 < 0 || h2 < 0 || m1 < 0 || m2 < 0) {
			snprintf(err, cap, "window %d: expected HH:MM-HH:MM (UTC), e.g. 02:00-06:30, at '%.20s'", idx, p);
			return -1;
		}
		if (n == max) {
			snprintf(err, cap, "more than %d windows", max);
			return -1;
		}
		ranges[n][0] = (uint16_t)(h1 * 60 + m1);
		ranges[n][1] = (uint16_t)(h2 * 60 + m2);
		n++;
		p += used;
		if (*p && *p != ' ' && *p != ';' && *p != ',') {
			snprintf(err, cap, "window %d: unexpected '%.20s' after it (separate windows with ';')", idx, p);
			return -1;
		}
	}
	return n;
}
