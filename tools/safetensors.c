/*
 * safetensors.c — a strict reader for the safetensors header (safetensors.h). The JSON it
 * accepts is the subset the format uses: objects, strings without escapes beyond \" \\ \/,
 * arrays of non-negative integers.
 */
#include "tools/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct px {
	const char *s, *end, *base;
	char *err;
	size_t errlen;
	const char *path;
} px;

static int perr(px *p, const char *what)
{
	snprintf(p->err, p->errlen, "%s: header byte %ld: %s", p->path, (long)(p->s - p->base) + 8, what);
	return -1;
}

static void ws(px *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t'))
		p->s++;
}

static int lit(px *p, char c)
{
	ws(p);
	if (p->s >= p->end || *p->s != c) {
		char m[32];
		snprintf(m, sizeof(m), "expected '%c'", c);
		return perr(p, m);
	}
	p->s++;
	return 0;
}

static int str(px *p, char *out, size_t cap)
{
	size_t n = 0;
	if (lit(p, '"'))
		return -1;
	while (p->s < p->end && *p->s != '"') {
		char c = *p->s++;
		if (c == '\\') {
			if (p->s >= p->end)
				break;
			c = *p->s++;
			if (c != '"' && c != '\\' && c != '/')
				return perr(p, "unsupported escape in a string");
		}
		if (n + 1 >= cap)
			return perr(p, "string too long");
		out[n++] = c;
	}
	if (p->s >= p->end)
		return perr(p, "unterminated string");
	p->s++;
	out[n] = 0;
	return 0;
}

static int uint_list(px *p, uint64_t *v, uint32_t max, uint32_t *n)
{
	*n = 0;
	if (lit(p, '['))
		return -1;
	ws(p);
	if (p->s < p->end && *p->s == ']') {
		p->s++;
		return 0;
	}
	for (;;) {
		ws(p);
		if (p->s >= p->end || *p->s < '0' || *p->s > '9')
			return perr(p, "expected a non-negative integer");
		uint64_t x = 0;
		while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
			if (x > (UINT64_MAX - 9) / 10)
				return perr(p, "integer too large");
			x = x * 10 + (uint64_t)(*p->s++ - '0');
		}
		if (*n >= max)
			return perr(p, "too many dimensions (rank ≤ 2 supported)");
		v[(*n)++] = x;
		ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		return lit(p, ']');
	}
}

static int tensor_entry(px *p, op_st_tensor *t)
{
	char key[32];
	int have = 0;
	if (lit(p, '{'))
		return -1;
	for (;;) {
		if (str(p, key, sizeof(key)) || lit(p, ':'))
			return -1;
		if (!strcmp(key, "dtype")) {
			if (str(p, t->dtype, sizeof(t->dtype)))
				return -1;
			have |= 1;
		} else if (!strcmp(key, "shape")) {
			if (uint_list(p, t->shape, 2, &t->rank))
				return -1;
			have |= 2;
		} else if (!strcmp(key, "data_offsets")) {
			uint64_t o[2];
			uint32_t n;
			if (uint_list(p, o, 2, &n))
				return -1;
			if (n != 2 || o[1] < o[0])
				return perr(p, "data_offsets must be [begin, end] with end ≥ begin");
			t->begin = o[0], t->end = o[1];
			have |= 4;
		} else {
			return perr(p, "unknown key in a tensor entry");
		}
		ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (lit(p, '}'))
			return -1;
		return have == 7 ? 0 : perr(p, "tensor entry lacks dtype, shape or data_offsets");
	}
}

int op_st_open(const char *path, op_safetensors *st, char *err, size_t errlen)
{
	memset(st, 0, sizeof(*st));
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (sz < 8 || !(st->file = malloc((size_t)sz)) || fread(st->file, 1, (size_t)sz, f) != (size_t)sz) {
		snprintf(err, errlen, "%s: cannot read (%ld bytes; a safetensors file has at least 8)", path, sz);
		fclose(f);
		op_st_close(st);
		return -1;
	}
	fclose(f);
	st->size = (size_t)sz;
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | st->file[i];
	if (hl > st->size - 8) {
		snprintf(err, errlen, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)", path,
			 (unsigned long long)hl, st->size);
		op_st_close(st);
		return -1;
	}
	st->data_off = 8 + (size_t)hl;
	px p = {.s = (const char *)st->file + 8, .end = (const char *)st->file + 8 + hl, .base = (const char *)st->file + 8,
		.err = err, .errlen = errlen, .path = path};
	char key[64];
	if (lit(&p, '{'))
		goto bad;
	for (;;) {
		if (str(&p, key, sizeof(key)) || lit(&p, ':'))
			goto bad;
		if (!strcmp(key, "__metadata__")) {
			if (lit(&p, '{'))
				goto bad;
			ws(&p);
			if (p.s < p.end && *p.s == '}') {
				p.s++;
			} else {
				for (;;) {
					if (st->n_meta >= OP_ST_MAX) {
						perr(&p, "too many metadata entries");
						goto bad;
					}
					if (str(&p, st->meta_key[st->n_meta], 64) || lit(&p, ':') ||
					    str(&p, st->meta_val[st->n_meta], 512))
						goto bad;
					st->n_meta++;
					ws(&p);
					if (p.s < p.end && *p.s == ',') {
						p.s++;
						continue;
					}
					if (lit(&p, '}'))
						goto bad;
					break;
				}
			}
		} else {
			if (st->n >= OP_ST_MAX) {
				perr(&p, "too many tensors");
				goto bad;
			}
			op_st_tensor *t = &st->t[st->n];
			snprintf(t->name, sizeof(t->name), "%s", key);
			if (tensor_entry(&p, t))
				goto bad;
			if (t->end > st->size - st->data_off) {
				snprintf(err, errlen, "%s: tensor '%s' data [%llu, %llu) runs past the end of the file (truncated?)",
					 path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
				op_st_close(st);
				return -1;
			}
			st->n++;
		}
		ws(&p);
		if (p.s < p.end && *p.s == ',') {
			p.s++;
			continue;
		}
		if (lit(&p, '}'))
			goto bad;
		break;
	}
	return 0;
bad:
	op_st_close(st);
	return -1;
}

void op_st_close(op_safetensors *st)
{
	free(st->file);
	st->file = NULL;
}

float *op_st_f32(const op_safetensors *st, const char *name, uint64_t *rows, uint64_t *cols, char *err, size_t errlen)
{
	for (int i = 0; i < st->n; i++) {
		const op_st_tensor *t = &st->t[i];
		if (strcmp(t->name, name) != 0)
			continue;
		if (strcmp(t->dtype, "F32") != 0) {
			snprintf(err, errlen, "tensor '%s' is %s; outpost-quantize reads F32", name, t->dtype);
			return NULL;
		}
		*rows = t->rank == 2 ? t->shape[0] : 1;
		*cols = t->rank == 2 ? t->shape[1] : t->rank == 1 ? t->shape[0] : 1;
		if (*cols && *rows > UINT64_MAX / 4 / *cols) { /* the product would wrap and match a small buffer */
			snprintf(err, errlen, "tensor '%s': shape %llu×%llu too large", name, (unsigned long long)*rows,
				 (unsigned long long)*cols);
			return NULL;
		}
		if (*rows * *cols * 4 != t->end - t->begin || *rows * *cols == 0) {
			snprintf(err, errlen, "tensor '%s': shape and data_offsets disagree", name);
			return NULL;
		}
		float *v = malloc((size_t)(t->end - t->begin));
		if (!v) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(v, st->file + st->data_off + t->begin, (size_t)(t->end - t->begin)); /* little-endian host */
		return v;
	}
	snprintf(err, errlen, "tensor '%s' is missing", name);
	return NULL;
}

const char *op_st_meta(const op_safetensors *st, const char *key)
{
	for (int i = 0; i < st->n_meta; i++)
		if (!strcmp(st->meta_key[i], key))
			return st->meta_val[i];
	return NULL;
}
