/*
 * north.c — custody transfer, north side. See north.h and docs/uplink-protocol.md.
 *
 * NOTES ON THE DESIGN OF THE RECEIVER
 *
 *   OFFER ──(already have it, same sha)──▶ CONFIRMED
 *   OFFER ──(the name another appliance's file or transfer, under CURVE)──▶ REJECTED "name taken/in use"
 *   OFFER ──(no room for the whole file: reserve())──▶ REJECTED "north disk full: no room …"
 *   OFFER ──▶ partial opened (dir/.partial/<name>.part), its size reserved, HAVE(its size)
 *   CHUNK(off) ──off == partial size──▶ append, ACK(new size)      otherwise NAK(partial size)
 *   COMMIT ──size reached, sha256 matches──▶ intent (the ledger line, in .partial/<name>.commit),
 *            rename into dir/, fsync dir, sidecar, ledger line fsynced, intent removed
 *            ──▶ CONFIRMED(sha)                                   mismatch: partial removed, REJECTED
 *            (fsync failed, or what the partial held cannot be read back: partial removed, REJECTED)
 *
 * Invariants:
 *  1. CONFIRMED is sent only after the file, its sidecar and its ledger line are durable.
 *  2. ACK means "received", not "durable": after a crash the resume offset is the partial
 *     file's real size, which HAVE reports on the next OFFER, so nothing acknowledged but lost
 *     is skipped.
 *  3. Names are validated before any path is built; nothing is written outside dir.
 *  4. Bounded: max_partials transfers, max_file_bytes per file, chunk size OP_XFER_CHUNK_MAX,
 *     64 messages queued per connection (ZMQ_RCVHWM), disk by the reservations (room_for()).
 *  5. Every published file has exactly one ledger line, whatever instant north is killed at.
 *     A file published but not yet in the ledger is re-confirmed from its sidecar when offered
 *     again, so the ledger line cannot wait for that: the commit intent written before the
 *     rename holds the line, and op_north_open appends it if the ledger lacks it (recover()).
 *  6. A sidecar never names content its file does not hold. A file sent again under the same
 *     name (an operator's new calibration) replaces the old one: the old sidecar is removed
 *     (durably) before the rename, the new one written after it. A sidecar written first
 *     would, had the rename failed or north died, make the next OFFER of the new file
 *     CONFIRMED against the old bytes, and the appliance delete the only copy; one left in
 *     place would confirm the old bytes against the new file. A death between the rename and
 *     the sidecar leaves the new file with none: recover() hashes it against the intent and
 *     completes, and until then an OFFER of it is answered HAVE (the bytes go again).
 */
#include "uplink/north.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "ingest/crc32c.h"
#include "uplink/curve.h"
#include "uplink/escape.h"
#include "uplink/segment.h"
#include "uplink/sha256.h"
#include "uplink/transfer.h"

typedef struct partial {
	int used, fd;
	char appliance[OP_NORTH_WHO_MAX]; /* who offered it (CURVE key name), for the ledger */
	char name[OP_XFER_NAME_MAX + 1];
	char sha[65];
	uint64_t size, offset;
	uint64_t last_ns;
	/* SHA-256 of the partial's first `hashed` bytes, kept as chunks are appended, so that COMMIT
	 * does not read the file back (a 64 GiB file took minutes, every appliance waiting); what
	 * the partial held when this north opened it is read back from the disk (catch_up). The
	 * hash is of what north wrote: a .part file changed behind north's back while it is open
	 * is no longer noticed at COMMIT, as the read-back did */
	op_sha256 h;
	uint64_t hashed;
	int h_open;
	int reserved; /* its whole size is allocated on the disk (reserve()) */
} partial;

struct op_north {
	op_north_config cfg;
	char dir[512], pdir[600];
	void *sock;
	op_zap *zap;
	partial *p;
	op_north_stats st;
	op_north_cb on_file;
	op_north_reject_cb on_reject;
	void *cb_ctx;
	char cur_appliance[OP_NORTH_WHO_MAX]; /* the sender of the message being handled */
	uint64_t last_expire_ns;
	uint64_t paused_until_ns; /* a disk failing its syncs: no new bytes taken until then */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

_Static_assert(OP_XFER_NAME_MAX == 200, "recover() reads names with %200s");

static int have_final(op_north *n, const char *name, const char *sha);

/* Does the ledger hold a whole line (newline-ended) for name with this sha? A line a death cut
 * short does not count: its commit's intent is still there and writes it whole. (Read whole:
 * only at recovery and for a commit that could not write its line.) */
static int ledger_has(const char *ledger, const char *name, const char *sha)
{
	char line[OP_NORTH_LEDGER_LINE];
	FILE *f = fopen(ledger, "re");
	int found = 0;
	size_t nl = strlen(name);
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *t = strchr(line, '\t');
		found = t && !strncmp(t + 1, name, nl) && t[1 + nl] == '\t' && strstr(t + 1 + nl, sha) != NULL &&
			strchr(line, '\n') != NULL;
	}
	fclose(f);
	return found;
}

/* The appliance (sixth column) of the ledger's last whole line for name, into out ("" if none,
 * or only lines of the five columns written before the ledger named appliances). 0, or -errno
 * when the ledger exists but cannot be read. (Read whole: only when a file of that name is
 * offered again with other contents.) */
static int ledger_owner(const char *ledger, const char *name, char *out, size_t cap)
{
	char line[OP_NORTH_LEDGER_LINE];
	FILE *f = fopen(ledger, "re");
	size_t nl = strlen(name);

	out[0] = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		const char *t = strchr(line, '\t'), *last = strrchr(line, '\t'), *end = strchr(line, '\n');
		int tabs = 0;
		for (const char *c = line; *c; c++)
			tabs += *c == '\t';
		if (tabs == 5 && end && last > t && !strncmp(t + 1, name, nl) && t[1 + nl] == '\t')
			snprintf(out, cap, "%.*s", (int)(end - last - 1), last + 1);
	}
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	return rc;
}

/* The ledger durable, its lines and its name in dir (a line may have reached only the page
 * cache: north died between the ledger's write and its sync). 0 or -EIO. */
static int ledger_sync(const char *dir, const char *ledger)
{
	int fd = open(ledger, O_RDONLY | O_CLOEXEC);
	int bad = fd < 0 || fsync(fd) != 0;
	if (fd >= 0)
		close(fd);
	return bad || op_segment_sync_dir(dir) < 0 ? -EIO : 0;
}

/* Append one line to the ledger and make it durable. A line cut short by an earlier death (no
 * final newline) is removed first: it can only be the line of a commit whose intent is still
 * there, which writes it whole (recover(), finish_intent()), so every line stays whole and
 * each file keeps exactly one (a cut line ended instead would stay as a second, short one). */
static int ledger_append(const char *dir, const char *ledger, const char *line, size_t len)
{
	int fd = open(ledger, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644), rc = 0;
	struct stat sb;
	char tail[2048];
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
		off_t from = sb.st_size > (off_t)sizeof(tail) ? sb.st_size - (off_t)sizeof(tail) : 0;
		ssize_t got = pread(fd, tail, (size_t)(sb.st_size - from), from);
		if (got != sb.st_size - from) {
			rc = -EIO;
		} else if (tail[got - 1] != '\n') {
			ssize_t i = got - 1;
			while (i >= 0 && tail[i] != '\n')
				i--;
			/* no newline in the last 2 KiB (lines are under 1 KiB): not a cut line of
			 * ours; end it rather than cut what we cannot account for */
			if (i < 0 && from > 0)
				rc = write(fd, "\n", 1) == 1 ? 0 : -EIO;
			else if (ftruncate(fd, from + i + 1) != 0)
				rc = -EIO;
		}
	}
	/* A line that could not be made durable is taken out again: after a failed fsync Linux may
	 * mark its page clean, and the retry (recover(), the next OFFER) would find the line in
	 * the cache, append nothing, sync nothing, and confirm a file the ledger may not list */
	struct stat before;
	if (rc == 0 && fstat(fd, &before) != 0)
		rc = -EIO;
	if (rc == 0 && (write(fd, line, len) != (ssize_t)len || fsync(fd) != 0)) {
		rc = -EIO;
		if (ftruncate(fd, before.st_size) == 0)
			fsync(fd);
	}
	close(fd);
	if (rc == 0 && before.st_size == 0 && op_segment_sync_dir(dir) < 0) /* perhaps just created: its name too */
		rc = -EIO;
	return rc;
}

static int write_sidecar(op_north *n, const char *name, const char *sha);

/*
 * Finish the commit an intent (path: .partial/NAME.commit, holding the ledger line) records,
 * if its file was published (invariants 5, 6): the sidecar, then the ledger line, each once.
 * A published file without its sidecar (north died between the two, or could not write it) is
 * hashed, but only when it can be the one committed: a regular file of the intent's size, its
 * partial gone (renamed). 0: done, the intent removed (also when the file was never
 * published: its partial stays and is committed again when offered); -1: a step failed, the
 * intent kept for the next try.
 */
static int finish_intent(op_north *n, const char *path)
{
	char line[OP_NORTH_LEDGER_LINE], name[OP_XFER_NAME_MAX + 1], sha[65], ledger[600];
	unsigned long long size = 0;
	snprintf(ledger, sizeof(ledger), "%s/ledger.tsv", n->dir);
	FILE *f = fopen(path, "re");
	int ok = f && fgets(line, sizeof(line), f) && strchr(line, '\n') &&
		 sscanf(line, "%*s %200s %llu %64s", name, &size, sha) == 3;
	if (f)
		fclose(f);
	if (ok && !have_final(n, name, sha)) {
		char final[1200], part[1200], got[65];
		struct stat sb;
		snprintf(final, sizeof(final), "%s/%s", n->dir, name);
		snprintf(part, sizeof(part), "%s/%s.part", n->pdir, name);
		if (stat(final, &sb) == 0 && S_ISREG(sb.st_mode) && (unsigned long long)sb.st_size == size &&
		    access(part, F_OK) != 0) {
			if (op_sha256_file(final, got) != 0)
				return -1; /* cannot tell yet */
			if (!strcmp(got, sha) && write_sidecar(n, name, sha) < 0)
				return -1;
		}
	}
	if (ok && have_final(n, name, sha)) {
		if (!ledger_has(ledger, name, sha)) {
			if (ledger_append(n->dir, ledger, line, strlen(line)) != 0)
				return -1;
			n->st.recovered++;
		} else if (ledger_sync(n->dir, ledger) < 0) { /* the line there, perhaps not on disk */
			return -1;
		}
	}
	unlink(path);
	return 0;
}

/* At start: finish every interrupted commit (finish_intent; those that still fail stay for the
 * next start or the file's next OFFER), and remove sidecars a death cut short. */
static void recover(op_north *n)
{
	DIR *d = opendir(n->pdir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char path[1200];
		snprintf(path, sizeof(path), "%s/%s", n->pdir, de->d_name);
		if (l > 11 && !strcmp(de->d_name + l - 11, ".sha256.tmp"))
			unlink(path); /* a sidecar a death cut short (write_sidecar); nothing writes now */
		else if (l > 7 && !strcmp(de->d_name + l - 7, ".commit"))
			(void)finish_intent(n, path);
	}
	closedir(d);
}

#define PARTIAL_KEEP_S (30 * 86400)
/* Transfers in the table idle for a day give back their reservation beyond what they hold
 * (taken again at their next OFFER): an appliance that evicted a 50 GiB file after 2 MiB of it
 * arrived would otherwise hold 50 GiB of north's disk for as long as north runs. Idle for
 * PARTIAL_KEEP_S, they leave the table, and expire_partials removes their file. Hourly. */
static void release_beyond(partial *p, uint64_t from, uint64_t to);
static void release_fd(int fd, uint64_t from, uint64_t to);
static void drop(partial *p);
static void idle_transfers(op_north *n)
{
	const uint64_t now = now_ns();
	for (uint32_t i = 0; i < n->cfg.max_partials; i++) {
		partial *p = &n->p[i];
		if (!p->used || now - p->last_ns < 86400000000000ull)
			continue;
		if (now - p->last_ns >= (uint64_t)PARTIAL_KEEP_S * 1000000000ull)
			drop(p);
		else if (p->reserved)
			release_beyond(p, p->offset, p->size);
	}
}

/* A partial file no transfer has touched for PARTIAL_KEEP_S (its file was evicted on the
 * appliance, sent again under another name, or its appliance retired) would stay for ever and
 * outside partial_bytes: removed, counted. At start and hourly; never one in progress. */
static void expire_partials(op_north *n)
{
	DIR *d = opendir(n->pdir);
	struct dirent *de;
	const time_t now = time(NULL);
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char path[1200];
		struct stat sb;
		if (l < 6 || strcmp(de->d_name + l - 5, ".part"))
			continue;
		int open_now = 0;
		for (uint32_t i = 0; i < n->cfg.max_partials; i++)
			open_now |= n->p[i].used && strlen(n->p[i].name) == l - 5 && !strncmp(n->p[i].name, de->d_name, l - 5);
		snprintf(path, sizeof(path), "%s/%s", n->pdir, de->d_name);
		if (open_now || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if (difftime(now, sb.st_mtime) < PARTIAL_KEEP_S) {
			/* outside the table (north restarted, or it was pushed out) and a day untouched:
			 * its reservation past what it holds is given back */
			if (difftime(now, sb.st_mtime) >= 86400 && (uint64_t)sb.st_blocks * 512 > (uint64_t)sb.st_size + (1u << 20)) {
				int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
				if (fd >= 0) {
					release_fd(fd, (uint64_t)sb.st_size, (uint64_t)sb.st_blocks * 512);
					close(fd);
				}
			}
			continue;
		}
		if (unlink(path) == 0) {
			n->st.partials_expired++;
			n->st.partial_bytes_expired += (uint64_t)sb.st_size;
		}
	}
	closedir(d);
}

int op_north_open(void *zmq_ctx, const op_north_config *cfg, op_north **ret)
{
	op_north *n = calloc(1, sizeof(*n));
	int linger = 0, rc;

	if (!n)
		return -ENOMEM;
	n->cfg = *cfg;
	if (!n->cfg.max_file_bytes)
		n->cfg.max_file_bytes = 64ull << 30;
	if (!n->cfg.max_partials)
		n->cfg.max_partials = 16;
	if (!n->cfg.sync_pause_ns)
		n->cfg.sync_pause_ns = 60000000000ull;
	snprintf(n->dir, sizeof(n->dir), "%s", cfg->dir);
	snprintf(n->pdir, sizeof(n->pdir), "%s/.partial", cfg->dir);
	/* durable entries: the files north confirms live in dir (a new one would otherwise go with
	 * its files at a power cut, after CONFIRMED let the appliance delete its copies) */
	if ((rc = op_segment_mkdir(n->dir, 0755)) < 0 || (rc = op_segment_mkdir(n->pdir, 0755)) < 0)
		goto fail;
	n->p = calloc(n->cfg.max_partials, sizeof(partial));
	if (!n->p) {
		rc = -ENOMEM;
		goto fail;
	}
	recover(n);
	expire_partials(n);
	n->last_expire_ns = now_ns();
	if (cfg->curve_secret_z85) {
		/* the gatekeeper first: a handshake before it exists would be refused */
		if ((rc = op_zap_open(zmq_ctx, cfg->authorized_dir, &n->zap)) < 0)
			goto fail;
	}
	n->sock = zmq_socket(zmq_ctx, ZMQ_ROUTER);
	if (!n->sock) {
		rc = -errno;
		goto fail;
	}
	zmq_setsockopt(n->sock, ZMQ_LINGER, &linger, sizeof(linger));
	/* no frame larger than a chunk and its framing: libzmq would otherwise buffer a frame of
	 * any size a peer announces before the size is checked (the connection is dropped) */
	int64_t maxmsg = (int64_t)OP_XFER_CHUNK_MAX + 4096;
	zmq_setsockopt(n->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	/* at most 64 messages queued per peer (libzmq's default is 1,000: up to 64 GiB of chunks
	 * from one peer sending faster than north writes); beyond it libzmq stops reading that
	 * connection, and TCP holds the sender back. Nothing is dropped. A sender keeps at most
	 * its window in flight (16 chunks by default) */
	int rcvhwm = 64;
	zmq_setsockopt(n->sock, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
	if (cfg->curve_secret_z85) {
		int one = 1;
		if (zmq_setsockopt(n->sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
		    zmq_setsockopt(n->sock, ZMQ_CURVE_SECRETKEY, cfg->curve_secret_z85, 40) != 0 ||
		    zmq_setsockopt(n->sock, ZMQ_ZAP_DOMAIN, "outpost", 7) != 0) {
			rc = -errno;
			goto fail;
		}
	}
	if (zmq_bind(n->sock, cfg->bind_endpoint) != 0) {
		rc = -errno;
		goto fail;
	}
	*ret = n;
	return 0;
fail:
	op_north_close(n);
	return rc;
}

void op_north_close(op_north *n)
{
	if (!n)
		return;
	for (uint32_t i = 0; n->p && i < n->cfg.max_partials; i++)
		if (n->p[i].used && n->p[i].fd >= 0)
			close(n->p[i].fd);
	if (n->sock)
		zmq_close(n->sock);
	op_zap_close(n->zap);
	free(n->p);
	free(n);
}

void op_north_set_callbacks(op_north *n, op_north_cb on_file, op_north_reject_cb on_reject, void *ctx)
{
	n->on_file = on_file;
	n->on_reject = on_reject;
	n->cb_ctx = ctx;
}

void op_north_get_stats(const op_north *n, op_north_stats *out)
{
	*out = n->st;
	out->partials = out->partial_bytes = out->partial_reserved = 0;
	for (uint32_t i = 0; i < n->cfg.max_partials; i++)
		if (n->p[i].used && n->p[i].sha[0]) {
			out->partials++;
			out->partial_bytes += n->p[i].offset;
			if (n->p[i].reserved && n->p[i].size > n->p[i].offset)
				out->partial_reserved += n->p[i].size - n->p[i].offset;
		}
}

static void reply(op_north *n, zmq_msg_t *id, const char *cmd, const char *name, const void *a, size_t alen)
{
	zmq_send(n->sock, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
	zmq_send(n->sock, cmd, strlen(cmd), ZMQ_SNDMORE);
	zmq_send(n->sock, name, strlen(name), a ? ZMQ_SNDMORE : 0);
	if (a)
		zmq_send(n->sock, a, alen, 0);
}

static void reply_u64(op_north *n, zmq_msg_t *id, const char *cmd, const char *name, uint64_t v)
{
	uint8_t b[8];
	op_xfer_put_u64(b, v);
	reply(n, id, cmd, name, b, 8);
}

static void reject(op_north *n, zmq_msg_t *id, const char *name, const char *why)
{
	n->st.rejected++;
	if (n->on_reject)
		n->on_reject(n->cb_ctx, name, why);
	reply(n, id, "REJECTED", name, why, strlen(why));
}

/* A refusal for a failure on north's side, with its cause (err: an errno), for north's
 * journal and the appliance's */
static void reject_err(op_north *n, zmq_msg_t *id, const char *name, const char *what, int err)
{
	char why[200];
	snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
	reject(n, id, name, why);
}

/* An appliance known by its key (CURVE) other than the one speaking now: a file of a name
 * another appliance sent is never replaced, nor its transfer fed, by this one. Without keys
 * (plaintext) every peer is "-", one appliance as far as north can tell. */
static int other_appliance(const op_north *n, const char *owner)
{
	/* a ledger line written before names were kept whole holds at most their first 63 bytes:
	 * the appliance whose name begins so is the one that sent it */
	const int cut = strlen(owner) == 63 && !strncmp(owner, n->cur_appliance, 63);
	return owner[0] && strcmp(owner, "-") && strcmp(n->cur_appliance, "-") && strcmp(owner, n->cur_appliance) && !cut;
}

/* A transfer under way belongs to its appliance while that one may still finish it: until it
 * has been idle for a day, or its key is no longer listed (a rotated key's .pub is removed once
 * the new one works, docs/operator-guide.md: the site resumes under its new name). Nothing is
 * lost by taking it over: its appliance keeps its file until north confirms it. A published
 * file is never released this way: an appliance's file north confirmed is replaced only by that
 * appliance (or the operator renames or removes it north). */
static int transfer_of_other(const op_north *n, const partial *p)
{
	char pub[1200];

	if (!other_appliance(n, p->appliance) || now_ns() - p->last_ns >= 86400000000000ull)
		return 0;
	if (strlen(p->appliance) + 1 >= sizeof(p->appliance))
		return 1; /* a key name cut to fit: its .pub cannot be looked up, so it is kept */
	snprintf(pub, sizeof(pub), "%s/%s.pub", n->cfg.authorized_dir ? n->cfg.authorized_dir : "", p->appliance);
	return !n->cfg.authorized_dir || access(pub, F_OK) == 0;
}

static partial *find(op_north *n, const char *name)
{
	for (uint32_t i = 0; i < n->cfg.max_partials; i++)
		if (n->p[i].used && !strcmp(n->p[i].name, name))
			return &n->p[i];
	return NULL;
}

static void drop(partial *p)
{
	if (p->fd >= 0)
		close(p->fd);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

/* Do we already hold name with this sha? (Sidecar next to the final file.) */
static int have_final(op_north *n, const char *name, const char *sha)
{
	char path[1200], line[128];
	FILE *f;
	snprintf(path, sizeof(path), "%s/%s.sha256", n->dir, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	int ok = fgets(line, sizeof(line), f) && !strncmp(line, sha, 64);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s", n->dir, name);
	return ok && access(path, F_OK) == 0;
}

/* A commit of name that could not write its sidecar or ledger line: finished now (0), or -1 */
static int finish_pending(op_north *n, const char *name)
{
	char intent[1200];
	snprintf(intent, sizeof(intent), "%s/%s.commit", n->pdir, name);
	return access(intent, F_OK) == 0 ? finish_intent(n, intent) : 0;
}

/*
 * Room on the disk for the whole file, taken at OFFER (the partial's blocks allocated up to its
 * size, its size unchanged). Without it two transfers that each fit, but not together, filled
 * the disk half-way each and were refused at every CHUNK after, neither ever finishing until an
 * operator removed one; and a file that could not fit had its bytes sent over the link up to
 * the point where the disk filled. Now the second is refused at its OFFER and offered again
 * later.
 *
 * First the free space, less what transfers without a reservation still need and a margin for
 * what commits write (intents, sidecars, ledger lines: a disk reserved to its last block would
 * refuse every COMMIT after its bytes arrived): that is all a file system without fallocate
 * gets. Then fallocate, whose failure gives back what it took (ext4 keeps the blocks a failed
 * call allocated: they would hold the disk full). 1 when there is room, else 0.
 */
#define ROOM_MARGIN (1ull << 20)
static int room_for(op_north *n, const partial *self, uint64_t need)
{
	struct statvfs fs;
	if (statvfs(n->pdir, &fs) != 0)
		return 1; /* cannot tell: a full disk is still refused at CHUNK */
	uint64_t want = need + ROOM_MARGIN;
	const uint64_t now = now_ns();
	for (uint32_t i = 0; i < n->cfg.max_partials; i++) { /* (idle a day: given back, not counted) */
		const partial *q = &n->p[i];
		if (q != self && q->used && !q->reserved && q->size > q->offset && now - q->last_ns < 86400000000000ull)
			want += q->size - q->offset;
	}
	return (uint64_t)fs.f_bavail * fs.f_frsize >= want;
}

/* Give back a partial's blocks in [from, to), beyond what it holds: punched (tmpfs, XFS), and
 * cut at its size (ext4 punches nothing past a file's end, but drops those blocks at a
 * truncate). Best effort: what stays is freed when the partial goes. */
static void release_fd(int fd, uint64_t from, uint64_t to)
{
	struct stat sb;
	int have = fstat(fd, &sb) == 0;
	if (to > from && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) != 0)
		errno = 0;
	if (ftruncate(fd, (off_t)from) != 0)
		errno = 0;
	if (have) { /* its times as they were: expire_partials goes by the last byte received */
		struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
		if (futimens(fd, ts) != 0)
			errno = 0;
	}
}

static void release_beyond(partial *p, uint64_t from, uint64_t to)
{
	release_fd(p->fd, from, to);
	p->reserved = 0;
}

static int reserve(partial *p, uint64_t size)
{
	if (size <= p->offset || p->reserved)
		return 0;
	if (fallocate(p->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0) {
		p->reserved = 1;
		return 0;
	}
	if (errno != ENOSPC && errno != EDQUOT && errno != EFBIG)
		return 0; /* no fallocate here: the free space, checked before, is all there is */
	release_beyond(p, p->offset, size);
	return -ENOSPC;
}

static void no_room(op_north *n, zmq_msg_t *id, const char *name, uint64_t size)
{
	char why[160];
	n->st.offers_no_room++;
	snprintf(why, sizeof(why), "north disk full: no room for the whole file (%llu bytes)", (unsigned long long)size);
	reject(n, id, name, why);
}

static void on_offer(op_north *n, zmq_msg_t *id, const char *name, zmq_msg_t *f, int nf)
{
	char sha[65], path[1200];
	struct stat sb;

	if (nf < 6 || zmq_msg_size(&f[3]) != 8 || zmq_msg_size(&f[4]) != 64 || zmq_msg_size(&f[5]) != 4) {
		reject(n, id, name, "malformed offer");
		return;
	}
	const uint8_t *v = zmq_msg_data(&f[5]);
	if (v[0] != OP_XFER_VERSION || v[1] || v[2] || v[3]) {
		reject(n, id, name, "unsupported protocol version");
		return;
	}
	uint64_t size = op_xfer_get_u64(zmq_msg_data(&f[3]));
	memcpy(sha, zmq_msg_data(&f[4]), 64);
	sha[64] = 0;
	/* as north writes it (lowercase hex): anything else could never match at COMMIT, and the
	 * whole file would cross the link again and again to be refused there */
	if (strspn(sha, "0123456789abcdef") != 64) {
		reject(n, id, name, "malformed offer: the SHA-256 is not 64 lowercase hex digits");
		return;
	}
	if (size > n->cfg.max_file_bytes) {
		char why[120];
		snprintf(why, sizeof(why), "file of %llu bytes larger than this receiver accepts (--max-file-bytes %llu)",
			 (unsigned long long)size, (unsigned long long)n->cfg.max_file_bytes);
		reject(n, id, name, why);
		return;
	}
	if (have_final(n, name, sha)) {
		/* a commit that could not write its ledger line (invariant 1): finish it first */
		if (finish_pending(n, name) < 0) {
			reject(n, id, name, "cannot write ledger");
			return;
		}
		n->st.reconfirmed++;
		reply(n, id, "CONFIRMED", name, sha, 64);
		return;
	}
	/* Two sites sending files of one name (a bulk file each called calib.tar): the one north
	 * holds stays. Replacing it would lose the first site's file, which that site deleted
	 * when north confirmed it; the second site's stays in its outbox, refused with the reason,
	 * until it is renamed. */
	char owner[OP_NORTH_WHO_MAX], why[OP_NORTH_WHO_MAX + 100];
	snprintf(path, sizeof(path), "%s/%s", n->dir, name);
	if (strcmp(n->cur_appliance, "-") && access(path, F_OK) == 0) {
		char ledger[1100];
		/* a commit whose ledger line could not be written: its line first, so that the
		 * ledger names whose file this is */
		if (finish_pending(n, name) < 0) {
			reject(n, id, name, "cannot write ledger");
			return;
		}
		if (have_final(n, name, sha)) { /* that intent was this very file's: it is whole now */
			n->st.reconfirmed++;
			reply(n, id, "CONFIRMED", name, sha, 64);
			return;
		}
		snprintf(ledger, sizeof(ledger), "%s/ledger.tsv", n->dir);
		if (ledger_owner(ledger, name, owner, sizeof(owner)) < 0) {
			reject(n, id, name, "cannot read ledger");
			return;
		}
		if (other_appliance(n, owner)) {
			n->st.name_conflicts++;
			snprintf(why, sizeof(why), "name taken: north holds a file of this name from appliance %s; rename yours", owner);
			reject(n, id, name, why);
			return;
		}
	}
	partial *p = find(n, name);
	if (p && transfer_of_other(n, p)) {
		n->st.name_conflicts++;
		snprintf(why, sizeof(why), "name in use: appliance %s is sending a file of this name; rename yours", p->appliance);
		reject(n, id, name, why);
		return;
	}
	if (now_ns() < n->paused_until_ns) {
		n->st.offers_paused++;
		reject(n, id, name, "north's disk is failing its syncs: files are refused for a while");
		return;
	}
	int fresh_slot = 0, started_over = 0;
	snprintf(path, sizeof(path), "%s/%s.part", n->pdir, name);
	/* room first: a refused offer must not push another transfer out of the table */
	if (!p || !p->reserved) {
		/* what the partial holds, or has allocated (a reservation of an earlier life) */
		uint64_t held = 0;
		if (p ? fstat(p->fd, &sb) == 0 : stat(path, &sb) == 0)
			held = (uint64_t)sb.st_blocks * 512 > (uint64_t)sb.st_size ? (uint64_t)sb.st_blocks * 512 : (uint64_t)sb.st_size;
		if (size > held && !room_for(n, p, size - held)) {
			no_room(n, id, name, size);
			return;
		}
	}
	if (!p) {
		partial *oldest = NULL;
		for (uint32_t i = 0; i < n->cfg.max_partials && !p; i++)
			if (!n->p[i].used)
				p = &n->p[i];
		for (uint32_t i = 0; i < n->cfg.max_partials && !p; i++)
			if (!oldest || n->p[i].last_ns < oldest->last_ns)
				oldest = &n->p[i];
		if (!p) { /* bounded: forget the transfer idle longest (its file stays for resume, its
			   * reservation is given back: taken again at its next OFFER; a file with no byte
			   * in it goes: a peer offering name after name without sending would otherwise
			   * leave an empty file for each, for PARTIAL_KEEP_S) */
			if (oldest->reserved)
				release_beyond(oldest, oldest->offset, oldest->size);
			if (oldest->offset == 0) {
				char gone[1200];
				snprintf(gone, sizeof(gone), "%s/%s.part", n->pdir, oldest->name);
				unlink(gone);
			}
			drop(oldest);
			p = oldest;
		}
		fresh_slot = 1;
		p->used = 1;
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (p->fd < 0) {
			const int e = errno;
			drop(p);
			reject_err(n, id, name, "cannot open partial file", e);
			return;
		}
	}
	if (fstat(p->fd, &sb) != 0) {
		const int e = errno;
		drop(p);
		reject_err(n, id, name, "cannot stat partial file", e);
		return;
	}
	p->offset = (uint64_t)sb.st_size;
	if (strcmp(p->sha, sha) != 0 || p->offset > size) {
		/* a different file under the same name, or more bytes than offered: start over */
		if (p->sha[0] || p->offset > size) {
			if (ftruncate(p->fd, 0) != 0) {
				const int e = errno;
				drop(p);
				reject_err(n, id, name, "cannot truncate partial file", e);
				return;
			}
			p->offset = 0;
			p->reserved = 0;
			started_over = 1;
		}
	}
	/* a new file under the name has its room checked anew; then the reservation itself. On
	 * refusal what a partial holds stays, resumed later; an empty one goes, and so does a slot
	 * taken for this offer */
	if ((started_over && !room_for(n, p, size)) || reserve(p, size) < 0) {
		if (p->offset == 0)
			unlink(path);
		if (p->offset == 0 || fresh_slot)
			drop(p);
		no_room(n, id, name, size);
		return;
	}
	if (!p->h_open || p->hashed > p->offset) { /* new here, or cut back: hashed from the start */
		op_sha256_init(&p->h);
		p->hashed = 0;
		p->h_open = 1;
	}
	memcpy(p->sha, sha, 65);
	p->size = size;
	p->last_ns = now_ns();
	snprintf(p->appliance, sizeof(p->appliance), "%s", n->cur_appliance);
	reply_u64(n, id, "HAVE", name, p->offset);
}

/*
 * Hash up to `budget` bytes of what the partial holds beyond the running hash, read from the
 * file (what a partial held when this north opened it: after a restart it must be read from
 * the disk anyway, which also checks what a crash left). 0, or -EIO.
 */
static int catch_up(op_north *n, partial *p, uint64_t budget)
{
	uint8_t buf[64 * 1024];
	while (p->hashed < p->offset && budget > 0) {
		uint64_t want = p->offset - p->hashed < sizeof(buf) ? p->offset - p->hashed : sizeof(buf);
		if (want > budget)
			want = budget;
		ssize_t r = pread(p->fd, buf, (size_t)want, (off_t)p->hashed);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		op_sha256_update(&p->h, buf, (size_t)r);
		p->hashed += (uint64_t)r;
		budget -= (uint64_t)r;
		n->st.bytes_read_back += (uint64_t)r;
	}
	return 0;
}

/* The partial goes: emptied first, so that one that could not be unlinked is never resumed from
 * the size it shows (its next OFFER would be answered HAVE(size) over bytes north does not
 * vouch for); when neither works the slot stays, under a checksum no offer carries, so that
 * the next OFFER truncates the file (or is refused). */
static void remove_partial(op_north *n, partial *p, const char *name)
{
	char part[1200];
	snprintf(part, sizeof(part), "%s/%s.part", n->pdir, name);
	const int emptied = ftruncate(p->fd, 0) == 0;
	if (unlink(part) == 0 || emptied) {
		drop(p);
	} else {
		snprintf(p->sha, sizeof(p->sha), "-");
		p->h_open = 0;
	}
}

/*
 * The partial's bytes cannot be vouched for: fsync failed, or what it held cannot be read back.
 * After a failed fsync Linux may mark the unwritten pages clean and report the error only once,
 * so a retried COMMIT would sync "successfully" and confirm a file the disk does not hold, and
 * the appliance would delete its only copy. The partial goes; the sender, refused, offers the
 * file again later and sends it from offset 0. Costs link bytes, never data.
 */
static void discard(op_north *n, partial *p, zmq_msg_t *id, const char *name, const char *why)
{
	n->st.partials_discarded++;
	n->st.partial_bytes_discarded += p->offset;
	remove_partial(n, p, name);
	reject(n, id, name, why);
}

/* A failed sync of a partial: one may pass (the file is sent again); a second in a row means a
 * failing disk, and north takes no new bytes for sync_pause_ns, doubled with each further
 * failure after a pause up to an hour (failures during a pause are the same spell), ended by a
 * sync that succeeds, so that appliances do not send whole files only to have them refused
 * at COMMIT (an offer refused costs the link the OFFER and the sender's new connection, about
 * a kilobyte). */
static void sync_failed(op_north *n)
{
	if (now_ns() < n->paused_until_ns)
		return; /* the same spell: a transfer under way when it began */
	if (++n->st.sync_failures < 2)
		return;
	uint64_t pause = n->cfg.sync_pause_ns;
	for (uint64_t i = 2; i < n->st.sync_failures && pause < 3600000000000ull; i++)
		pause *= 2;
	if (pause > 3600000000000ull)
		pause = 3600000000000ull;
	n->paused_until_ns = now_ns() + pause;
}

static void on_chunk(op_north *n, zmq_msg_t *id, const char *name, zmq_msg_t *f, int nf)
{
	partial *p = find(n, name);

	if (!p || !p->sha[0]) {
		reject(n, id, name, "chunk without an offer");
		return;
	}
	if (transfer_of_other(n, p)) {
		reject(n, id, name, "chunk for another appliance's transfer");
		return;
	}
	if (nf < 6 || zmq_msg_size(&f[3]) != 8 || zmq_msg_size(&f[5]) != 4) {
		reject(n, id, name, "malformed chunk (offset, bytes and their CRC32C)");
		return;
	}
	uint64_t off = op_xfer_get_u64(zmq_msg_data(&f[3]));
	size_t len = zmq_msg_size(&f[4]);
	p->last_ns = now_ns();
	if (off != p->offset) {
		n->st.naks++;
		reply_u64(n, id, "NAK", name, p->offset);
		return;
	}
	if (len > OP_XFER_CHUNK_MAX || off + len > p->size) {
		reject(n, id, name, "chunk beyond the offered size");
		return;
	}
	const uint8_t *data = zmq_msg_data(&f[4]);
	if (op_crc32c(0, data, len) != op_xfer_get_u32(zmq_msg_data(&f[5]))) {
		/* damaged on the way (or by a faulty relay): not written; ask for it again */
		n->st.crc_errors++;
		n->st.naks++;
		reply_u64(n, id, "NAK", name, p->offset);
		return;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(p->fd, data + done, len - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* disk full or I/O error: north keeps what it has; the sender retries later */
			const int e = w < 0 ? errno : EIO;
			reject_err(n, id, name, e == ENOSPC ? "north disk full" : "north write failed", e);
			return;
		}
		done += (size_t)w;
	}
	/* behind (a resumed partial): a slice read back per chunk, at least 8 MiB and enough to
	 * have caught up by the last chunk, so that COMMIT reads nothing and no single message
	 * holds north up for the whole file (a partial that was complete when north started is
	 * still read whole at COMMIT) */
	if (p->hashed < off) {
		uint64_t behind = off - p->hashed, chunks_left = (p->size - off + len - 1) / (len ? len : 1);
		uint64_t slice = behind / (chunks_left ? chunks_left : 1) + 1;
		if (catch_up(n, p, slice > (8u << 20) ? slice : (8u << 20)) < 0) {
			discard(n, p, id, name, "north cannot read back what it held of the file");
			return;
		}
	}
	if (p->hashed == off) {
		op_sha256_update(&p->h, data, len);
		p->hashed += len;
	}
	p->offset += len;
	n->st.bytes_received += len;
	reply_u64(n, id, "ACK", name, p->offset);
}

/* dir/NAME.sha256 ("SHA  NAME"), durable: written to a temporary name, synced, renamed over
 * the old one, the directory synced (a death mid-write leaves the old sidecar, not half a
 * line). */
static int write_sidecar(op_north *n, const char *name, const char *sha)
{
	char side[1200], tmp[1220], sl[300];
	int len = snprintf(sl, sizeof(sl), "%s  %s\n", sha, name);
	snprintf(side, sizeof(side), "%s/%s.sha256", n->dir, name);
	snprintf(tmp, sizeof(tmp), "%s/%s.sha256.tmp", n->pdir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, sl, (size_t)len) != len || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	if (rename(tmp, side) != 0 || op_segment_sync_dir(n->dir) < 0) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

static void on_commit(op_north *n, zmq_msg_t *id, const char *name)
{
	partial *p = find(n, name);
	char part[1200], final[1200], side[1200], ledger[1200], intent[1200], sha[65], line[OP_NORTH_LEDGER_LINE],
		utc[32];
	int fd;

	if (!p || !p->sha[0]) {
		reject(n, id, name, "commit without an offer");
		return;
	}
	if (transfer_of_other(n, p)) {
		reject(n, id, name, "commit of another appliance's transfer");
		return;
	}
	if (p->offset != p->size) {
		reply_u64(n, id, "NAK", name, p->offset);
		return;
	}
	snprintf(part, sizeof(part), "%s/%s.part", n->pdir, name);
	snprintf(intent, sizeof(intent), "%s/%s.commit", n->pdir, name);
	snprintf(final, sizeof(final), "%s/%s", n->dir, name);
	snprintf(ledger, sizeof(ledger), "%s/ledger.tsv", n->dir);
	if (fsync(p->fd) != 0) {
		sync_failed(n);
		discard(n, p, id, name, "north could not sync the file to its disk");
		return;
	}
	n->st.sync_failures = 0; /* the disk syncs again: so are offers taken */
	n->paused_until_ns = 0;
	uint64_t before = n->st.bytes_read_back;
	int hr = catch_up(n, p, UINT64_MAX);
	n->st.bytes_hashed_at_commit += n->st.bytes_read_back - before;
	if (hr < 0) {
		discard(n, p, id, name, "north cannot read back what it held of the file");
		return;
	}
	op_sha256 done = p->h; /* a COMMIT refused later (no disk) hashes nothing again */
	uint8_t d[32];
	op_sha256_final(&done, d);
	op_sha256_hex(d, sha);
	if (strcmp(sha, p->sha) != 0) {
		remove_partial(n, p, name);
		reject(n, id, name, "checksum mismatch");
		return;
	}
	size_t nlen = strlen(name);
	long rows = nlen > 3 && !strcmp(name + nlen - 3, ".h5") ? op_segment_count_rows(part) : 0; /* .json: alerts, telemetry */
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int llen = snprintf(line, sizeof(line), "%s\t%s\t%llu\t%s\t%ld\t%s\n", utc, name, (unsigned long long)p->size,
			    sha, rows, p->appliance[0] ? p->appliance : "-");
	if (llen < 0 || llen >= (int)sizeof(line)) { /* cannot be (names are bounded): never a cut line */
		reject(n, id, name, "ledger line too long");
		return;
	}
	/* the intent (the ledger line), the old sidecar gone, the file, the directories, the new
	 * sidecar, the ledger: each durable before the next, so a death at any instant leaves what
	 * recover() completes, and no sidecar ever names bytes its file does not hold */
	fd = open(intent, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int e = fd < 0 ? errno : 0;
	if (!e) {
		ssize_t w = write(fd, line, (size_t)llen);
		e = w == llen ? (fsync(fd) != 0 ? errno : 0) : w < 0 ? errno : EIO; /* short: no errno */
	}
	if (e) {
		if (fd >= 0)
			close(fd);
		reject_err(n, id, name, "cannot write commit intent", e);
		return;
	}
	close(fd);
	snprintf(side, sizeof(side), "%s/%s.sha256", n->dir, name);
	int rc = 0;
	if ((unlink(side) != 0 && errno != ENOENT) || (rc = op_segment_sync_dir(n->dir)) < 0 || (rc = op_segment_sync_dir(n->pdir)) < 0 ||
	    (rc = rename(part, final) != 0 ? -errno : 0) < 0) {
		reject_err(n, id, name, "cannot publish file", rc < 0 ? -rc : errno);
		return;
	}
	if ((rc = op_segment_sync_dir(n->dir)) < 0 || (rc = op_segment_sync_dir(n->pdir)) < 0) {
		/* renamed, not yet durable: the slot lets go of the descriptor, now the published
		 * file's, which a later OFFER of another version would have truncated and written
		 * into; the intent stays for recover(), and the sender offers again */
		drop(p);
		reject_err(n, id, name, "cannot publish file", -rc);
		return;
	}
	/* published: the transfer is over whatever follows (its descriptor is now the published
	 * file's, which a later OFFER of this name must not truncate) */
	const uint64_t size = p->size;
	char who[sizeof(p->appliance)];
	snprintf(who, sizeof(who), "%s", p->appliance[0] ? p->appliance : "-");
	drop(p);
	if ((rc = write_sidecar(n, name, sha)) < 0) { /* the intent stays: recover() writes it */
		reject_err(n, id, name, "cannot write sidecar", -rc);
		return;
	}
	if ((rc = ledger_append(n->dir, ledger, line, (size_t)llen)) < 0) {
		/* published; the intent stays, and the next OFFER or start writes the line */
		reject_err(n, id, name, "cannot write ledger", -rc);
		return;
	}
	unlink(intent); /* not synced: an intent whose line is in the ledger is dropped at recovery */
	n->st.files_received++;
	if (rows > 0)
		n->st.rows_received += (uint64_t)rows;
	if (n->on_file)
		n->on_file(n->cb_ctx, name, size, sha, rows, who);
	reply(n, id, "CONFIRMED", name, sha, 64);
}

static void on_refused(void *ctx, const char *peer, const char *why)
{
	op_north *n = ctx;
	n->st.peers_refused++;
	if (n->on_reject)
		n->on_reject(n->cb_ctx, peer, why);
}

int op_north_step(op_north *n, int timeout_ms)
{
	zmq_pollitem_t items[2] = {{.socket = n->sock, .events = ZMQ_POLLIN},
				   {.socket = n->zap ? op_zap_socket(n->zap) : NULL, .events = ZMQ_POLLIN}};
	zmq_pollitem_t *it = &items[0];

	if (now_ns() - n->last_expire_ns >= 3600000000000ull) {
		n->last_expire_ns = now_ns();
		idle_transfers(n);
		expire_partials(n);
	}
	if (zmq_poll(items, n->zap ? 2 : 1, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (n->zap && (items[1].revents & ZMQ_POLLIN))
		op_zap_handle(n->zap, on_refused, n);
	for (int k = 0; k < 64 && (it->revents & ZMQ_POLLIN); k++) {
		zmq_msg_t f[6];
		int nf = 0, more = 1;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, n->sock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (nf < 6)
				f[nf++] = m;
			else
				zmq_msg_close(&m);
		}
		if (nf == 0)
			break;
		if (nf >= 2 && zmq_msg_size(&f[1]) == 4 && !memcmp(zmq_msg_data(&f[1]), "PING", 4)) {
			reply(n, &f[0], "PONG", "", NULL, 0); /* the appliance's keepalive */
			n->st.pings++;
		} else if (nf >= 3) {
			char cmd[16], name[OP_XFER_NAME_MAX + 1];
			size_t cl = zmq_msg_size(&f[1]), nl = zmq_msg_size(&f[2]);
			if (cl < sizeof(cmd) && op_xfer_name_ok(zmq_msg_data(&f[2]), nl)) {
				memcpy(cmd, zmq_msg_data(&f[1]), cl);
				cmd[cl] = 0;
				memcpy(name, zmq_msg_data(&f[2]), nl);
				name[nl] = 0;
				const char *who = zmq_msg_gets(&f[1], "User-Id");
				snprintf(n->cur_appliance, sizeof(n->cur_appliance), "%s", who && who[0] ? who : "-");
				if (!strcmp(cmd, "OFFER"))
					on_offer(n, &f[0], name, f, nf);
				else if (!strcmp(cmd, "CHUNK"))
					on_chunk(n, &f[0], name, f, nf);
				else if (!strcmp(cmd, "COMMIT"))
					on_commit(n, &f[0], name);
				else
					reject(n, &f[0], name, "unknown command");
			} else {
				/* said with what came (printable, cut short): which file, which command */
				char shown[80], why[120];
				size_t sl = nl < 64 ? nl : 64;
				memcpy(shown, zmq_msg_data(&f[2]), sl);
				shown[sl] = 0;
				op_text_printable(shown);
				snprintf(why, sizeof(why), "bad name or command (%.*s, a name of %zu bytes)",
					 cl < 16 ? (int)cl : 16, (const char *)zmq_msg_data(&f[1]), nl);
				op_text_printable(why);
				n->st.rejected++;
				if (n->on_reject)
					n->on_reject(n->cb_ctx, nl ? shown : "(empty name)", why);
				reply(n, &f[0], "REJECTED", "", "bad name", 8);
			}
		} else if (nf == 2) { /* a command without its name: no answer could be matched to a
				      * file, but north's journal and refused count say it came */
			char why[80];
			size_t cl = zmq_msg_size(&f[1]);
			snprintf(why, sizeof(why), "malformed message: %.*s without a name", cl < 16 ? (int)cl : 16,
				 (const char *)zmq_msg_data(&f[1]));
			op_text_printable(why);
			n->st.rejected++;
			if (n->on_reject)
				n->on_reject(n->cb_ctx, "(no name)", why);
			reply(n, &f[0], "REJECTED", "", "malformed message", 17);
		}
		for (int i = 0; i < nf; i++)
			zmq_msg_close(&f[i]);
	}
	return 0;
}
