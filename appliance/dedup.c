/*
 * dedup.c — open-addressing hash table (linear probing, backward-shift deletion) with a FIFO
 * of insertion order for eviction. See dedup.h.
 */
#include "appliance/dedup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/log.h"
#include "uplink/segment.h"

typedef struct entry {
	uint64_t seq;
	uint64_t t; /* detector time: with the sequence, what identifies an event */
	uint64_t gen;
	uint32_t stream;
	uint32_t used;
} entry;

typedef struct key {
	uint64_t seq, t;
	uint32_t stream;
	uint64_t gen; /* the FIFO's copy: a key forgotten and taken again has a newer one */
} key;

struct op_dedup {
	entry *tab;
	size_t mask;
	key *fifo; /* insertion order; ring of capacity */
	size_t capacity, head, count;
};

static size_t hash(uint32_t stream, uint64_t seq, uint64_t t)
{
	uint64_t h = seq * 0x9E3779B97F4A7C15ull ^ ((uint64_t)stream * 0xC2B2AE3D27D4EB4Full) ^
		     (t * 0x165667B19E3779F9ull);
	h ^= h >> 31;
	return (size_t)h;
}

int op_dedup_open(size_t capacity, op_dedup **ret)
{
	op_dedup *d = calloc(1, sizeof(*d));
	size_t slots = 16;

	if (!d || capacity == 0)
		goto fail;
	while (slots < capacity * 2)
		slots *= 2;
	d->tab = calloc(slots, sizeof(entry));
	d->fifo = calloc(capacity, sizeof(key));
	if (!d->tab || !d->fifo)
		goto fail;
	d->mask = slots - 1;
	d->capacity = capacity;
	*ret = d;
	return 0;
fail:
	op_dedup_close(d);
	return capacity ? -ENOMEM : -EINVAL;
}

void op_dedup_close(op_dedup *d)
{
	if (!d)
		return;
	free(d->tab);
	free(d->fifo);
	free(d);
}

static entry *lookup(const op_dedup *d, uint32_t stream, uint64_t seq, uint64_t t)
{
	for (size_t i = hash(stream, seq, t) & d->mask;; i = (i + 1) & d->mask) {
		entry *e = &d->tab[i];
		if (!e->used)
			return NULL;
		if (e->stream == stream && e->seq == seq && e->t == t)
			return e;
	}
}

int op_dedup_find(const op_dedup *d, uint32_t stream, uint64_t seq, uint64_t t, uint64_t *gen)
{
	entry *e = lookup(d, stream, seq, t);
	if (!e)
		return 0;
	*gen = e->gen;
	return 1;
}

static void erase(op_dedup *d, entry *e)
{
	size_t i = (size_t)(e - d->tab), j = i;

	e->used = 0;
	for (;;) {
		j = (j + 1) & d->mask;
		if (!d->tab[j].used)
			return;
		size_t home = hash(d->tab[j].stream, d->tab[j].seq, d->tab[j].t) & d->mask;
		/* Move j back to i if its home is not cyclically within (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			d->tab[i] = d->tab[j];
			d->tab[j].used = 0;
			i = j;
		}
	}
}

void op_dedup_insert(op_dedup *d, uint32_t stream, uint64_t seq, uint64_t t, uint64_t gen)
{
	if (d->count == d->capacity) {
		key *old = &d->fifo[d->head];
		entry *e = lookup(d, old->stream, old->seq, old->t);
		if (e && e->gen == old->gen) /* else forgotten, and held now by a later insertion */
			erase(d, e);
		d->head = (d->head + 1) % d->capacity;
		d->count--;
	}
	size_t i = hash(stream, seq, t) & d->mask;
	while (d->tab[i].used)
		i = (i + 1) & d->mask;
	d->tab[i] = (entry){.seq = seq, .t = t, .gen = gen, .stream = stream, .used = 1};
	d->fifo[(d->head + d->count) % d->capacity] = (key){.seq = seq, .t = t, .stream = stream, .gen = gen};
	d->count++;
}

/* Forgotten keys keep their place in the FIFO until it reaches them: eviction of a key that is
 * no longer in the table, or is there again from a later insertion (another generation), is a
 * no-op. Used when a segment cannot be sealed (a full disk: the store pauses and tries again). */
void op_dedup_forget_gen(op_dedup *d, uint64_t gen)
{
	for (size_t i = 0; i <= d->mask; i++) {
		if (d->tab[i].used && d->tab[i].gen == gen) {
			erase(d, &d->tab[i]);
			i--; /* backward shift may have moved another entry into i */
		}
	}
}

size_t op_dedup_size(const op_dedup *d)
{
	size_t n = 0;
	for (size_t i = 0; i <= d->mask; i++)
		n += d->tab[i].used;
	return n;
}

/* ---- what sealed segments hold, after a restart --------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static int cmp_desc(const void *a, const void *b)
{
	return strcmp(*(char *const *)b, *(char *const *)a);
}

/* The .h5 files of dir, newest first (names sort by time); removes sidecars whose segment never
 * arrived (a crash between the two renames of a seal). */
static size_t list_segments(const char *dir, char ***out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0;

	*out = NULL;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (ends_with(de->d_name, ".h5.sha256")) {
			struct stat sb;
			snprintf(path, sizeof(path), "%s/%.*s", dir, (int)(strlen(de->d_name) - 7), de->d_name);
			if (stat(path, &sb) != 0) {
				snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
				op_warn("removing orphan sidecar %s (its segment was never published)", path);
				unlink(path);
			}
			continue;
		}
		if (!ends_with(de->d_name, ".h5"))
			continue;
		if (n == cap) {
			size_t c2 = cap ? cap * 2 : 64;
			char **p = realloc(names, c2 * sizeof(char *));
			if (!p)
				break;
			names = p, cap = c2;
		}
		if ((names[n] = strdup(de->d_name)))
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_desc);
	*out = names;
	return n;
}

typedef struct chunk {
	key *k;
	size_t n;
} chunk;

typedef struct named {
	const char *name;
	int dir;
} named;

static int cmp_named_desc(const void *a, const void *b)
{
	const named *x = a, *y = b;
	int c = strcmp(y->name, x->name);
	return c ? c : x->dir - y->dir;
}

size_t op_dedup_recover(op_dedup *d, const char *const *dirs, int ndirs, size_t capacity)
{
	chunk *ch = NULL;
	size_t nch = 0, cap_ch = 0, total = 0;
	char path[4096];

	/* every directory's files in one list, newest first by name: which directory a file is in
	 * says nothing of its age (a file north refused stays in outbox/ while newer ones go on to
	 * sent/), and reading one directory whole before the other could spend the capacity on
	 * older files and miss the newest, the ones ingest resends */
	named *all = NULL;
	size_t nall = 0;
	char **lists[8] = {0};
	size_t counts[8] = {0};
	if (ndirs > 8)
		ndirs = 8;
	for (int di = 0; di < ndirs; di++)
		counts[di] = list_segments(dirs[di], &lists[di]), nall += counts[di];
	if (nall && !(all = malloc(nall * sizeof(*all))))
		op_warn("cannot list the sealed segments: out of memory; the store remembers none of their rows");
	nall = 0;
	for (int di = 0; all && di < ndirs; di++)
		for (size_t i = 0; i < counts[di]; i++)
			all[nall++] = (named){lists[di][i], di};
	if (nall > 1)
		qsort(all, nall, sizeof(*all), cmp_named_desc);
	const char *done = NULL;
	for (size_t i = 0; i < nall && total < capacity; i++) {
		op_result_row *rows = NULL;
		size_t nr = 0;
		if (done && !strcmp(done, all[i].name))
			continue; /* listed in two directories (moved between the listings), read once */
		snprintf(path, sizeof(path), "%s/%s", dirs[all[i].dir], all[i].name);
		int rc = op_segment_read(path, &rows, &nr);
		/* the uplink runs meanwhile: a file confirmed north since the listing moved from
		 * outbox/ to sent/ */
		for (int di = 0; rc == -ENOENT && di < ndirs; di++) {
			if (di == all[i].dir)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirs[di], all[i].name);
			rc = op_segment_read(path, &rows, &nr);
		}
		if (rc == 0)
			done = all[i].name;
		if (rc < 0 && rc != -ENOENT)
			op_warn("cannot read %s to remember its rows (%s): its events, if sent again, are stored again",
				path, strerror(-rc));
		if (rc == 0 && nr) {
			if (nch == cap_ch) {
				size_t c2 = cap_ch ? cap_ch * 2 : 64;
				chunk *p = realloc(ch, c2 * sizeof(*p));
				if (p)
					ch = p, cap_ch = c2;
			}
			key *k = nch < cap_ch ? malloc(nr * sizeof(*k)) : NULL;
			if (k) {
				for (size_t j = 0; j < nr; j++)
					k[j] = (key){rows[j].sequence, rows[j].detector_time_ns, rows[j].stream_id, 0};
				ch[nch++] = (chunk){k, nr};
				total += nr;
			} else {
				op_warn("cannot remember the rows of %s: out of memory", path);
			}
		}
		free(rows);
	}
	free(all);
	for (int di = 0; di < ndirs; di++) {
		for (size_t i = 0; i < counts[di]; i++)
			free(lists[di][i]);
		free(lists[di]);
	}
	/* Then inserted oldest first, without the oldest rows past capacity: the table forgets the
	 * keys it took first, so keys taken newest first would have lost the newest segment's —
	 * exactly the ones ingest resends when the store died before acknowledging them. */
	size_t skip = total > capacity ? total - capacity : 0, kept = 0;
	for (size_t c = nch; c-- > 0;) {
		for (size_t j = 0; j < ch[c].n; j++) {
			const key *k = &ch[c].k[j];
			uint64_t g;
			if (skip) {
				skip--;
				continue;
			}
			if (!op_dedup_find(d, k->stream, k->seq, k->t, &g))
				op_dedup_insert(d, k->stream, k->seq, k->t, 0);
			kept++;
		}
		free(ch[c].k);
	}
	free(ch);
	return kept;
}
