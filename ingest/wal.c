/*
 * wal.c — ingest's write-ahead log. See wal.h.
 */
#include "ingest/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/crc32c.h"

enum { T_EVENT = 'E', T_ACKED = 'A', T_DROPPED = 'D', T_REPORT = 'R' };

typedef struct file_info {
	uint32_t k;
	uint64_t max_serial; /* of its event records; 0 = none */
	uint64_t bytes;      /* written to it */
	uint32_t reports;    /* report checkpoints ('R') in it */
} file_info;

struct op_wal {
	char dir[512];
	uint64_t inc, rotate;
	int fd;
	uint64_t file_bytes;
	uint8_t *buf;
	size_t len, cap;
	struct freed {
		uint64_t serial;
		uint8_t type;
	} *freed; /* freed since the last flush: one record per type at the flush */
	size_t nfreed, freed_cap;
	file_info *files; /* [nfiles-1] is the one being written */
	size_t nfiles, files_cap;
	uint32_t next_k;
	uint64_t cur_max;
	uint64_t tail; /* the oldest serial still held, at the last flush */
	int broken; /* a write failed: the log was removed and is no longer kept */
};

/* Room for one more element in a growable array. 0 or -ENOMEM (the array is unchanged). */
static int grow(void *arrayp, size_t *cap, size_t n, size_t elem)
{
	void **a = arrayp;
	if (n < *cap)
		return 0;
	size_t c = *cap ? 2 * *cap : 1024;
	void *p = realloc(*a, c * elem);
	if (!p)
		return -ENOMEM;
	*a = p;
	*cap = c;
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void file_name(char *out, size_t cap, const char *dir, uint64_t inc, uint32_t k)
{
	snprintf(out, cap, "%s/wal-%020" PRIu64 "-%010u.log", dir, inc, k); /* sorted as text: every k the same width */
}

static int open_next(op_wal *w)
{
	char path[600];
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1; /* closed: op_wal_close must not close the number again, whoever has it now */
	if (grow(&w->files, &w->files_cap, w->nfiles, sizeof(file_info)) < 0)
		return -ENOMEM;
	file_name(path, sizeof(path), w->dir, w->inc, w->next_k);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0600);
	if (w->fd < 0)
		return -errno;
	w->files[w->nfiles++] = (file_info){w->next_k++, 0, 0, 0};
	w->file_bytes = 0;
	return 0;
}

int op_wal_open(const char *dir, uint64_t incarnation, uint64_t rotate_bytes, op_wal **ret)
{
	op_wal *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	w->inc = incarnation;
	w->rotate = rotate_bytes;
	w->fd = -1;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int e = -errno;
		free(w);
		return e;
	}
	int rc = open_next(w);
	if (rc < 0) {
		free(w->files);
		free(w);
		return rc;
	}
	*ret = w;
	return 0;
}

static void give_up(op_wal *w);

static int reserve(op_wal *w, size_t more)
{
	if (w->len + more <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 65536;
	while (cap < w->len + more)
		cap *= 2;
	uint8_t *p = realloc(w->buf, cap);
	if (!p)
		return -ENOMEM;
	w->buf = p;
	w->cap = cap;
	return 0;
}

/* Appends one record whose payload is the concatenation of a and b. */
static void record(op_wal *w, uint8_t type, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t plen = alen + blen;
	if (w->broken)
		return;
	if (reserve(w, plen + 9) < 0) {
		give_up(w); /* a record that cannot be kept: the log would have a hole */
		return;
	}
	uint8_t *p = w->buf + w->len;
	put32(p, (uint32_t)plen);
	p[4] = type;
	if (alen)
		memcpy(p + 5, a, alen);
	if (blen)
		memcpy(p + 5 + alen, b, blen);
	put32(p + 5 + plen, op_crc32c(0, p + 4, plen + 1));
	w->len += plen + 9;
	if (type == T_REPORT) /* written at the next flush, to the file being written now */
		w->files[w->nfiles - 1].reports++;
}

void op_wal_event(op_wal *w, const uint8_t *buf, size_t len)
{
	if (!w)
		return;
	uint64_t serial = get64(buf);
	if (serial > w->cur_max)
		w->cur_max = serial;
	record(w, T_EVENT, buf, len, NULL, 0);
}

static void freed(op_wal *w, uint8_t type, uint64_t serial)
{
	if (w->broken)
		return;
	if (grow(&w->freed, &w->freed_cap, w->nfreed, sizeof(*w->freed)) < 0) {
		give_up(w); /* a free that cannot be logged: the log would resend a stored event as held */
		return;
	}
	w->freed[w->nfreed++] = (struct freed){serial, type};
}

void op_wal_acked(op_wal *w, uint64_t serial)
{
	if (!w)
		return;
	freed(w, T_ACKED, serial);
}

void op_wal_dropped(op_wal *w, uint64_t serial)
{
	if (!w)
		return;
	freed(w, T_DROPPED, serial);
}

static void emit_freed(op_wal *w)
{
	for (int pass = 0; pass < 2; pass++) {
		uint8_t type = pass ? T_DROPPED : T_ACKED;
		size_t n = 0;
		for (size_t i = 0; i < w->nfreed; i++)
			n += w->freed[i].type == type;
		if (!n)
			continue;
		uint8_t *tmp = malloc(n * 8);
		if (!tmp) {
			give_up(w);
			return;
		}
		size_t j = 0;
		for (size_t i = 0; i < w->nfreed; i++)
			if (w->freed[i].type == type)
				put64(tmp + 8 * j++, w->freed[i].serial);
		record(w, type, tmp, n * 8, NULL, 0);
		free(tmp);
	}
	w->nfreed = 0;
}

void op_wal_report(op_wal *w, uint64_t report_seq)
{
	if (!w)
		return;
	uint8_t p[8];
	emit_freed(w); /* the frees this report counts come before its checkpoint */
	put64(p, report_seq);
	record(w, T_REPORT, p, 8, NULL, 0);
}

/*
 * This incarnation's files, in the order that leaves an exact log should the process be killed
 * halfway. Giving up while events are held: newest first, so what is left lacks the last
 * report's checkpoint and a successor counts what it cannot vouch for (ingest_crash); oldest
 * first left the newest, checkpoint and all, with the events of the deleted files missing and
 * counted nowhere. A clean stop (nothing held): oldest first, so what is left is the newest,
 * which frees every event it holds; newest first would leave older events whose frees were in
 * the newest file, to be sent on again by the next outpostd.
 */
static void remove_files(op_wal *w, int newest_first)
{
	char path[600];
	for (uint32_t j = 0; j < w->nfiles; j++) {
		uint32_t i = newest_first ? w->nfiles - 1 - j : j;
		file_name(path, sizeof(path), w->dir, w->inc, w->files[i].k);
		unlink(path);
	}
	w->nfiles = 0;
}

/* A log with a hole would let a successor take over less than was held while claiming all of
 * it; a log that is gone makes it count what was held as lost instead. So on the first write
 * error the files go, and the log is kept no more. */
static void give_up(op_wal *w)
{
	remove_files(w, 1);
	if (w->fd >= 0) /* an unlinked file held open keeps its pages on the tmpfs */
		close(w->fd);
	w->fd = -1;
	w->broken = 1;
	w->len = 0;
}

int op_wal_flush(op_wal *w, uint64_t tail)
{
	if (!w)
		return 0;
	if (w->broken) {
		w->len = 0;
		w->nfreed = 0;
		return -EIO;
	}
	emit_freed(w);
	if (w->broken) { /* no memory for the frees' record: given up, its files gone */
		w->nfreed = 0;
		return -ENOMEM;
	}
	size_t off = 0;
	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			give_up(w);
			return e;
		}
		off += (size_t)n;
	}
	w->file_bytes += w->len;
	w->files[w->nfiles - 1].bytes = w->file_bytes;
	w->len = 0;
	if (w->cur_max > w->files[w->nfiles - 1].max_serial)
		w->files[w->nfiles - 1].max_serial = w->cur_max;
	if (w->file_bytes >= w->rotate) {
		int rc = open_next(w);
		if (rc < 0) {
			give_up(w);
			return rc;
		}
	}
	/* Delete old files whose every event is freed, but never the one being written nor the one
	 * before it, nor the file with the second-newest report checkpoint or any after it: the
	 * supervisor's last report is the newest or, should the newest not have reached it, the
	 * one before, and a successor counts from that checkpoint on. (Keeping only the newest two
	 * files lost the checkpoint when a whole file was written between two reports: the
	 * successor then counted what it could not find as ingest_crash.) */
	size_t from = 0; /* no checkpoint yet: a successor counts the whole log */
	for (size_t i = w->nfiles, seen = 0; i-- > 0;) {
		if (!w->files[i].reports)
			continue;
		from = i;
		if ((seen += w->files[i].reports) >= 2)
			break;
	}
	uint32_t keep = 0;
	w->tail = tail;
	for (uint32_t i = 0; i < w->nfiles; i++) {
		if (i + 2 < w->nfiles && i < from && w->files[i].max_serial < tail) {
			char path[600];
			file_name(path, sizeof(path), w->dir, w->inc, w->files[i].k);
			unlink(path);
			continue;
		}
		w->files[keep++] = w->files[i];
	}
	w->nfiles = keep;
	return 0;
}

void op_wal_remove_others(const char *dir, uint64_t incarnation)
{
	char mine[64], path[800];
	DIR *d = opendir(dir);
	struct dirent *de;
	snprintf(mine, sizeof(mine), "wal-%020" PRIu64 "-", incarnation);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "wal-", 4) || !strncmp(de->d_name, mine, strlen(mine)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}

uint64_t op_wal_pinned_bytes(const op_wal *w)
{
	uint64_t n = 0;
	for (size_t i = 0; w && !w->broken && i + 2 < w->nfiles; i++)
		if (w->files[i].max_serial >= w->tail) /* not one kept for a checkpoint alone */
			n += w->files[i].bytes;
	return n;
}

int op_wal_ok(const op_wal *w)
{
	return w && !w->broken;
}

void op_wal_close(op_wal *w, int remove)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (remove)
		remove_files(w, 0);
	free(w->buf);
	free(w->freed);
	free(w->files);
	free(w);
}

/* ---- replay ------------------------------------------------------------------------------ */

typedef struct ev {
	uint64_t serial;
	const uint8_t *msg;
	size_t len;
} ev;

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int read_all(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO by a log's name must not hang the replay (it is refused below) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) { /* not a log file, whatever its name */
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			free(b);
			close(fd);
			return e;
		}
		if (n == 0)
			break; /* shorter than it was: what is there is read */
		got += (size_t)n;
	}
	close(fd);
	if (!b)
		return -ENOMEM;
	*out = b;
	*len = got;
	return 0;
}

int op_wal_replay(const char *dir, uint64_t incarnation, uint64_t report_seq,
		  void (*fn)(void *ctx, const uint8_t *msg, size_t len, int live), void *ctx,
		  op_wal_replay_result *res)
{
	char prefix[64], **names = NULL;
	size_t nnames = 0;
	uint8_t **bufs = NULL;
	ev *evs = NULL;
	uint64_t *fr = NULL;
	size_t nev = 0, cev = 0, nfr = 0, cfr = 0;
	int rc = 0, counting = report_seq == 0;

	memset(res, 0, sizeof(*res));
	snprintf(prefix, sizeof(prefix), "wal-%020" PRIu64 "-", incarnation);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		char **nn = realloc(names, (nnames + 1) * sizeof(char *));
		if (!nn) {
			rc = -ENOMEM;
			break;
		}
		names = nn;
		if (!(names[nnames] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		nnames++;
	}
	closedir(d);
	res->files = (uint32_t)nnames;
	if (rc < 0 || nnames == 0)
		goto out;
	qsort(names, nnames, sizeof(char *), cmp_name);
	bufs = calloc(nnames, sizeof(uint8_t *));
	if (!bufs) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t f = 0; f < nnames; f++) {
		char path[800];
		size_t len = 0, off = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, names[f]);
		/* a file that cannot be read leaves the log with a hole: no verdict can be exact, so
		 * the replay fails (its caller counts what the predecessor held as dropped) */
		if ((rc = read_all(path, &bufs[f], &len)) < 0)
			goto out;
		const uint8_t *b = bufs[f];
		while (off + 9 <= len) {
			uint32_t plen = get32(b + off);
			if (off + 9 + (size_t)plen > len || get32(b + off + 5 + plen) != op_crc32c(0, b + off + 4, (size_t)plen + 1)) {
				res->torn++;
				break;
			}
			uint8_t type = b[off + 4];
			const uint8_t *p = b + off + 5;
			if (type == T_EVENT && plen >= 8) {
				if (grow(&evs, &cev, nev, sizeof(ev)) < 0) {
					rc = -ENOMEM;
					goto out;
				}
				evs[nev++] = (ev){get64(p), p + 8, plen - 8};
				res->events++;
				res->after_accepted += counting;
			} else if ((type == T_ACKED || type == T_DROPPED) && plen % 8 == 0) {
				for (uint32_t i = 0; i < plen / 8; i++) {
					if (grow(&fr, &cfr, nfr, sizeof(uint64_t)) < 0) {
						rc = -ENOMEM;
						goto out;
					}
					fr[nfr++] = get64(p + 8 * i);
				}
				if (counting) {
					if (type == T_ACKED)
						res->after_acked += plen / 8;
					else
						res->after_dropped += plen / 8;
				}
			} else if (type == T_REPORT && plen == 8) {
				if (get64(p) == report_seq) {
					counting = 1;
					res->after_accepted = res->after_acked = res->after_dropped = 0;
				}
			}
			off += 9 + plen;
		}
	}
	res->found = counting;
	if (nfr > 1)
		qsort(fr, nfr, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; i < nev; i++) {
		int live = !nfr || !bsearch(&evs[i].serial, fr, nfr, sizeof(uint64_t), cmp_u64);
		res->freed += !live;
		if (fn)
			fn(ctx, evs[i].msg, evs[i].len, live);
	}
out:
	for (size_t f = 0; f < nnames; f++) {
		free(names[f]);
		if (bufs)
			free(bufs[f]);
	}
	free(names);
	free(bufs);
	free(evs);
	free(fr);
	return rc;
}
