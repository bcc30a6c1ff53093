/*
 * geometry.c — see geometry.h. The parser checks every field of every line; a table with a
 * bad line is refused whole (a wrong position would silently bias every reconstruction).
 */
#include "ingest/geometry.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEO_MAX_ID (1u << 20)

extern const unsigned char op_geometry_icecube86_csv[];
extern const size_t op_geometry_icecube86_csv_len;

struct op_geometry {
	float *xyz;     /* 3 per id */
	uint8_t *known; /* 1 per id */
	uint32_t limit, count;
};

static int parse_line(const char *s, const char *end, uint32_t *id, float xyz[3])
{
	char buf[256], *p, *q;
	size_t n = (size_t)(end - s);
	double v[3];
	unsigned long u[3];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (n && buf[n - 1] == '\r')
		buf[n - 1] = 0;
	p = buf;
	for (int i = 0; i < 3; i++) {
		errno = 0;
		u[i] = strtoul(p, &q, 10);
		if (q == p || *q != ',' || errno)
			return -1;
		p = q + 1;
	}
	for (int i = 0; i < 3; i++) {
		errno = 0;
		v[i] = strtod(p, &q);
		if (q == p || errno || !isfinite(v[i]) || (i < 2 ? *q != ',' : *q != 0))
			return -1;
		p = q + 1;
	}
	if (u[0] >= GEO_MAX_ID)
		return -1;
	*id = (uint32_t)u[0];
	for (int i = 0; i < 3; i++)
		xyz[i] = (float)v[i];
	return 0;
}

int op_geometry_load_csv(const char *text, size_t len, op_geometry **ret, int *bad_line)
{
	const char *s = text, *end = text + len;
	op_geometry *g = calloc(1, sizeof(*g));
	int line = 0, rc = -EINVAL;
	uint32_t cap = 0;

	if (!g)
		return -ENOMEM;
	while (s < end) {
		const char *e = memchr(s, '\n', (size_t)(end - s));
		if (!e)
			e = end;
		line++;
		if (line == 1) {
			if (e - s < 32 || memcmp(s, "sensor_id,string,dom,x_m,y_m,z_m", 32) != 0) /* within the text */
				goto fail;
		} else if (e > s && !(e == s + 1 && *s == '\r')) {
			uint32_t id;
			float xyz[3];
			if (parse_line(s, e, &id, xyz) < 0)
				goto fail;
			if (id >= cap) {
				uint32_t ncap = cap ? cap : 8192;
				while (ncap <= id)
					ncap *= 2;
				float *nx = realloc(g->xyz, (size_t)ncap * 3 * sizeof(float));
				if (!nx) {
					rc = -ENOMEM;
					goto fail;
				}
				g->xyz = nx;
				uint8_t *nk = realloc(g->known, ncap);
				if (!nk) {
					rc = -ENOMEM;
					goto fail;
				}
				memset(nk + cap, 0, ncap - cap);
				g->known = nk;
				cap = ncap;
			}
			if (g->known[id])
				goto fail; /* the same sensor twice */
			memcpy(g->xyz + 3 * (size_t)id, xyz, sizeof(xyz[0]) * 3);
			g->known[id] = 1;
			g->count++;
			if (id + 1 > g->limit)
				g->limit = id + 1;
		}
		s = e + 1;
	}
	if (g->count == 0)
		goto fail;
	*ret = g;
	return 0;
fail:
	if (bad_line)
		*bad_line = line;
	op_geometry_close(g);
	return rc;
}

int op_geometry_default(op_geometry **ret)
{
	return op_geometry_load_csv((const char *)op_geometry_icecube86_csv, op_geometry_icecube86_csv_len, ret,
				    NULL);
}

void op_geometry_close(op_geometry *g)
{
	if (!g)
		return;
	free(g->xyz);
	free(g->known);
	free(g);
}

int op_geometry_position(const op_geometry *g, uint32_t id, float xyz[3])
{
	if (id >= g->limit || !g->known[id])
		return -ENOENT;
	memcpy(xyz, g->xyz + 3 * (size_t)id, 3 * sizeof(float));
	return 0;
}

uint32_t op_geometry_place(const op_geometry *g, const op_pulse *p, uint32_t n, const op_placed_pulses *dst,
			   size_t at)
{
	size_t k = at;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = p[i].sensor_id;
		if (id >= g->limit || !g->known[id])
			continue;
		const float *xyz = g->xyz + 3 * (size_t)id;
		dst->x[k] = xyz[0], dst->y[k] = xyz[1], dst->z[k] = xyz[2];
		dst->t[k] = p[i].time_ns, dst->q[k] = p[i].charge_pe;
		if (dst->flags)
			dst->flags[k] = p[i].flags;
		k++;
	}
	return (uint32_t)(k - at);
}

uint32_t op_geometry_count(const op_geometry *g)
{
	return g->count;
}

uint32_t op_geometry_id_limit(const op_geometry *g)
{
	return g->limit;
}
