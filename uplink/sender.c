/*
 * sender.c — custody transfer, appliance side. See sender.h and docs/uplink-protocol.md.
 *
 * NOTES ON THE DESIGN OF THE SENDER
 *
 *   IDLE ──pick the next file──▶ VERIFYING (against its sidecar, 16 MiB a step) ──▶ OFFERED
 *     │                                 (mismatch: move both to quarantine/, count, IDLE)
 *   OFFERED ──HAVE(off)──▶ SENDING ──all bytes sent──▶ TAIL ──all ACKed: COMMIT──CONFIRMED(sha)──▶ delete
 *   OFFERED ──CONFIRMED(sha)──▶ delete, IDLE   (north already had it: our delete or its reply was lost)
 *   any ──REJECTED──▶ new socket, IDLE; the next file after retry doubled per refusal (refused())
 *   any ──no reply for timeout──▶ new socket, IDLE after retry
 *
 * Pipelining: a file whose bytes are all sent becomes the tail (awaiting its ACKs, COMMIT and
 * CONFIRMED) and the next file is offered at once, so a long link is not left idle for two
 * round trips per file. The tail's unacknowledged bytes count against the window. A NAK for
 * the tail sets the current file aside (north keeps it) and sends the tail again from there.
 * A file offered behind a tail is sent from offset 0 at once, before north's HAVE (it is new to
 * north: the round trip the HAVE takes would idle the link); a file set aside mid-transfer
 * lately (cut, preempted, rewound) or refused lately waits for HAVE instead. Should north hold part of a file sent
 * this way after all, its HAVE resets the offset and the chunks before it come back as NAKs,
 * ignored: the cost is one window, never a wrong byte (north appends only at its own offset).
 *
 * Invariants:
 *  1. A local segment is deleted only after CONFIRMED carrying the SHA-256 we offered
 *     (custody transfer). Nothing else deletes a file; a corrupt one is moved to quarantine/.
 *  2. At most `window` chunks are unacknowledged; north appends only at its own offset, so a
 *     lost or reordered chunk comes back as NAK and the sender rewinds to that offset.
 *  3. After any cut the next OFFER learns north's offset (HAVE): bytes north holds are never
 *     sent again (byte-exact resume).
 *  4. Replies that don't match the current file and offset are ignored (stale after a reset).
 *  5. The link budget is spent before a byte is sent: a chunk goes only when the token bucket
 *     has credit (the cap) and today's quota has room for it and for the file's COMMIT; an
 *     OFFER only when the quota has room for it and the COMMIT; a connection only when the
 *     quota has room for its handshake (the quota is never exceeded). With less room than a
 *     handshake the socket is closed (ZeroMQ would reconnect on its own) until UTC midnight;
 *     with too little for the next file, it is closed too, opened again only for an alert that
 *     fits whole (alert_fits), its attempts spaced (alert_backoff). Files other than alerts see
 *     the quota less alert_reserve (quota_room), which only alerts spend.
 *
 * Wire bytes are what ZeroMQ sends for our frames (9 bytes of framing per frame, 32 more for
 * CURVE's box) plus TCP/IP's 52 bytes for every segment of up to 1,448 (a small message is a
 * whole packet), a 52-byte acknowledgement for every reply north sends (paid with the message
 * it answers, so that the quota keeps room for it; delayed ACKs may fold some: counted each),
 * and each connection's attempt, handshake and end (handshake_cost): the satellite modem counts
 * IP packets, not payload.
 * Not counted: DNS lookups for a host name, and an attempt ZeroMQ makes on its own before
 * op_uplink_step has seen the previous one fail (it waits a second at least).
 */
#include "uplink/sender.h"

#include "ingest/crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "uplink/escape.h"
#include "uplink/segment.h"
#include "uplink/sha256.h"
#include "uplink/transfer.h"

enum state { IDLE, VERIFYING, OFFERED, SENDING };

struct op_uplink {
	op_uplink_config cfg;
	char outbox[512], quarantine[512], endpoint[256], sent[512];
	char curve[3][41]; /* public, secret, north's public; "" = plaintext */
	char site[64];      /* cfg.site, in characters a name north accepts (op_uplink_name_part) */
	char site_text[400]; /* cfg.site itself (up to 63 characters), escaped for JSON (op_json_escape) */
	uint64_t last_prune_ns, last_sweep_ns;
	void *zctx, *sock;
	void *mon;          /* the socket's disconnect events: a cut is noticed at once, not after the timeout */
	enum state st;
	char name[OP_XFER_NAME_MAX + 1];
	char sha[65];
	int fd;
	uint64_t size, next, acked, nak_at;
	uint64_t last_rx_ns, retry_at_ns, last_scan_ns, last_held_check_ns;
	uint64_t last_ping_ns, last_pong_ns; /* keepalive; any answer from north counts as a pong */
	uint64_t socket_ns;                  /* when the current socket was made */
	/* link budget */
	double tokens;          /* bytes; may go below zero by one message (debt) */
	uint64_t tokens_ns;
	int quota_fd, quota_day; /* day: days since the epoch (UTC) */
	char quota_path[800];
	uint64_t quota_sync_ns;  /* the last fdatasync of the quota file */
	int budget_blocked;      /* the last send waited for the cap or the quota */
	uint64_t hs_reserved;    /* quota held for a handshake: an attempt under way, not connected yet */
	uint64_t alert_retry_ns; /* quota spent, north unreachable: the wait before an alert's next attempt */
	/* classes */
	char dirs[OP_UPLINK_CLASSES][560];
	int cls;                 /* the current file's class */
	double vt[OP_UPLINK_CLASSES]; /* virtual time: bytes sent / share (weighted sharing) */
	uint64_t last_alert_check_ns;
	uint32_t refusals;        /* north's refusals since it last confirmed a file (refused()) */
	uint64_t spaced_until_ns; /* till then only an alert starts, and only if no alert was refused */
	int alert_refused;        /* among those refusals, an alert's */
	uint16_t win[16][2];
	int nwin;
	uint64_t last_evict_ns;
	uint64_t in_flight; /* bytes sent ahead of north's acknowledgement (see op_uplink_open) */
	struct tail {       /* the file sent in full, awaiting ACKs, COMMIT, CONFIRMED */
		int busy, commit_sent, cls, fd;
		char name[OP_XFER_NAME_MAX + 1];
		char sha[65];
		uint64_t size, acked;
	} tail;
	int have;           /* north's HAVE for the current file has come */
	op_sha256 vctx;     /* VERIFYING: the file against its sidecar, up to voff */
	uint64_t voff;
	struct verified {   /* files checked lately, unchanged since (inode, size, mtime) */
		char name[OP_XFER_NAME_MAX + 1];
		dev_t dev;
		ino_t ino;
		off_t size;
		struct timespec mtime;
	} verified[8];
	int verified_next;
	struct verified paused;  /* a check set aside for an alert, resumed where it stopped */
	op_sha256 paused_ctx;
	uint64_t paused_off;
	struct eviction {   /* the file being checked before it is evicted (keep_reserve), in slices */
		int active, cls, fd;
		char name[OP_XFER_NAME_MAX + 1], sha[65];
		const char *reason;
		uint64_t size;
		op_sha256 ctx;
		uint8_t *buf;
	} ev;
	struct held {       /* files refused lately, skipped until `until` (see hold()) */
		char name[OP_XFER_NAME_MAX + 1];
		int cls;
		int local;      /* held for a local reason (sidecar unreadable, quarantine failed): not
				 * for eviction either; a file north refused stays evictable */
		uint32_t count;
		uint64_t until;
		int own_fault;  /* north's last refusal of it was about the file alone (about_the_file) */
	} held[16];
	char aside[4][OP_XFER_NAME_MAX + 1]; /* files set aside mid-transfer lately: north may hold part */
	int aside_next;
	uint8_t *buf;
	op_uplink_stats stats;
};

/* A local failure (err: -errno): counted, and said with what failed and on which file, for
 * the stage's journal line (stage_uplink.c) */
static void local_error(op_uplink *u, int err, const char *what, const char *path)
{
	u->stats.last_error = err;
	u->stats.local_errors++;
	/* a long path is cut at the end of the text (the return value read: gcc then knows) */
	if (snprintf(u->stats.last_local_error, sizeof(u->stats.last_local_error), "%s %s: %s", what, path,
		     strerror(-err)) < 0)
		u->stats.last_local_error[0] = 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t handshake_cost(const op_uplink *u);
static uint64_t quota_room(op_uplink *u);
static void budget_count(op_uplink *u, uint64_t cost);
static void park(op_uplink *u);
#define ATTEMPT_COST (4 * 60) /* see handshake_cost */

/* A connection attempt begins: paid now, its handshake's share of the quota held until
 * ZMQ_EVENT_CONNECTED (or, with no monitor to tell, paid now, made or not). */
static void begin_attempt(op_uplink *u)
{
	u->stats.connections++;
	budget_count(u, ATTEMPT_COST);
	if (!u->mon)
		budget_count(u, handshake_cost(u));
	else if (u->cfg.daily_quota)
		u->hs_reserved = handshake_cost(u);
}

static int new_socket(op_uplink *u)
{
	int linger = 0, hwm = 64;
	/* a connection attempt, and the handshake should it succeed, must fit in today's quota; the
	 * handshake's share is held until the connection is made (nothing else may use it) */
	u->hs_reserved = 0;
	if (u->endpoint[0] && quota_room(u) < ATTEMPT_COST + handshake_cost(u)) {
		park(u);
		return 0;
	}
	u->stats.quota_parked = 0;
	/* room for every chunk the window may have in flight, and some for the small messages */
	if (u->cfg.chunk_bytes && u->in_flight / u->cfg.chunk_bytes + 16 > (uint64_t)hwm)
		hwm = (int)(u->in_flight / u->cfg.chunk_bytes + 16 < 100000 ? u->in_flight / u->cfg.chunk_bytes + 16 : 100000);

	if (u->sock) {
		zmq_socket_monitor(u->sock, NULL, 0);
		zmq_close(u->sock);
	}
	if (u->mon)
		zmq_close(u->mon);
	u->mon = NULL;
	u->sock = zmq_socket(u->zctx, ZMQ_DEALER);
	if (!u->sock)
		return -errno;
	char mep[80];
	/* a name never used before in this process: a sender closed and another opened at the same
	 * address found the old name still bound (ZeroMQ closes sockets in the background) and had
	 * no monitor, so no cut was noticed at once and no connection charged */
	static atomic_uint mon_seq;
	snprintf(mep, sizeof(mep), "inproc://op-uplink-monitor-%u", atomic_fetch_add(&mon_seq, 1) + 1);
	if (zmq_socket_monitor(u->sock, mep, ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED) ==
	    0) {
		u->mon = zmq_socket(u->zctx, ZMQ_PAIR);
		if (u->mon && zmq_connect(u->mon, mep) != 0) {
			zmq_close(u->mon);
			u->mon = NULL;
		}
		if (u->mon)
			zmq_setsockopt(u->mon, ZMQ_LINGER, &linger, sizeof(linger));
	}
	u->socket_ns = now_ns();
	zmq_setsockopt(u->sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(u->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	/* with north's host up and its process down, libzmq's default (a new TCP connection every
	 * 100 ms) is ten SYNs a second over the satellite: from 1 s, backing off to uplink.retry */
	int ivl = 1000, ivl_max = (int)(u->cfg.retry_ns / 1000000ull);
	if (ivl_max < ivl)
		ivl_max = ivl;
	if (!u->mon) /* no events to charge ZeroMQ's own reconnections by: only ours (new_socket) */
		ivl = -1;
	zmq_setsockopt(u->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
	zmq_setsockopt(u->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
	/* an attempt ends after 10 s: at most four SYNs (ATTEMPT_COST), long enough for any RTT */
	int cto = 10000;
	zmq_setsockopt(u->sock, ZMQ_CONNECT_TIMEOUT, &cto, sizeof(cto));
	if (u->curve[0][0] &&
	    (zmq_setsockopt(u->sock, ZMQ_CURVE_SERVERKEY, u->curve[2], 40) != 0 ||
	     zmq_setsockopt(u->sock, ZMQ_CURVE_PUBLICKEY, u->curve[0], 40) != 0 ||
	     zmq_setsockopt(u->sock, ZMQ_CURVE_SECRETKEY, u->curve[1], 40) != 0))
		return -errno;
	if (zmq_connect(u->sock, u->endpoint) != 0)
		return -errno;
	begin_attempt(u);
	return 0;
}

static void quota_load(op_uplink *u);

static int window_open(const op_uplink *u)
{
	if (!u->nwin)
		return 1;
	time_t t = time(NULL);
	int m = (int)(t % 86400 / 60);
	for (int i = 0; i < u->nwin; i++) {
		int a = u->win[i][0], b = u->win[i][1];
		if (a == b || (a < b ? m >= a && m < b : m >= a || m < b))
			return 1;
	}
	return 0;
}

const char *const op_uplink_class_names[OP_UPLINK_CLASSES] = {"alert", "telemetry", "results", "bulk"};

int op_uplink_open(void *zmq_ctx, const op_uplink_config *cfg, op_uplink **ret)
{
	op_uplink *u = calloc(1, sizeof(*u));
	int rc;

	if (!u)
		return -ENOMEM;
	u->cfg = *cfg;
	op_uplink_name_part(cfg->site && cfg->site[0] ? cfg->site : "site", u->site, sizeof(u->site));
	/* the site as configured, for the tombstones' text */
	op_json_escape(u->site_text, sizeof(u->site_text), cfg->site && cfg->site[0] ? cfg->site : "site");
	u->cfg.site = NULL; /* the caller's string need not outlive this call */
	if (!u->cfg.chunk_bytes)
		u->cfg.chunk_bytes = 1u << 20;
	if (u->cfg.chunk_bytes > OP_XFER_CHUNK_MAX)
		u->cfg.chunk_bytes = OP_XFER_CHUNK_MAX;
	if (!u->cfg.window)
		u->cfg.window = 16;
	if (!u->cfg.timeout_ns)
		u->cfg.timeout_ns = 30000000000ull;
	if (!u->cfg.evict_slice_ns)
		u->cfg.evict_slice_ns = 200000000ull;
	snprintf(u->outbox, sizeof(u->outbox), "%s", cfg->outbox_dir);
	snprintf(u->dirs[OP_UPLINK_ALERT], sizeof(u->dirs[0]), "%s/alert", cfg->outbox_dir);
	snprintf(u->dirs[OP_UPLINK_TELEMETRY], sizeof(u->dirs[0]), "%s/telemetry", cfg->outbox_dir);
	snprintf(u->dirs[OP_UPLINK_RESULTS], sizeof(u->dirs[0]), "%s", cfg->outbox_dir);
	snprintf(u->dirs[OP_UPLINK_BULK], sizeof(u->dirs[0]), "%s/bulk", cfg->outbox_dir);
	for (int c = 0; c < OP_UPLINK_CLASSES; c++)
		op_segment_mkdir(u->dirs[c], 0750);
	if (!u->cfg.share_pct[1] && !u->cfg.share_pct[2] && !u->cfg.share_pct[3]) {
		u->cfg.share_pct[OP_UPLINK_TELEMETRY] = 20;
		u->cfg.share_pct[OP_UPLINK_RESULTS] = 70;
		u->cfg.share_pct[OP_UPLINK_BULK] = 10;
	}
	for (int c = 1; c < OP_UPLINK_CLASSES; c++)
		if (!u->cfg.share_pct[c])
			u->cfg.share_pct[c] = 1;
	if (cfg->sent_dir)
		snprintf(u->sent, sizeof(u->sent), "%s", cfg->sent_dir);
	snprintf(u->quarantine, sizeof(u->quarantine), "%s", cfg->quarantine_dir);
	snprintf(u->endpoint, sizeof(u->endpoint), "%s", cfg->north_endpoint ? cfg->north_endpoint : "");
	if (cfg->curve_public_z85 && cfg->curve_secret_z85 && cfg->north_public_z85) {
		snprintf(u->curve[0], sizeof(u->curve[0]), "%s", cfg->curve_public_z85);
		snprintf(u->curve[1], sizeof(u->curve[1]), "%s", cfg->curve_secret_z85);
		snprintf(u->curve[2], sizeof(u->curve[2]), "%s", cfg->north_public_z85);
	}
	u->cfg.curve_public_z85 = u->cfg.curve_secret_z85 = u->cfg.north_public_z85 = NULL; /* not kept */
	u->fd = -1;
	u->tail.fd = -1;
	u->ev.fd = -1;
	u->quota_fd = -1;
	u->zctx = zmq_ctx;
	/* under a cap, a chunk is at most half a second of it (at least 4 KiB): an alert waits at
	 * most one chunk behind bulk, and the cap holds over short windows */
	if (u->cfg.rate_bps) {
		uint64_t half = u->cfg.rate_bps / 16;
		if (half < 4096)
			half = 4096;
		if (u->cfg.chunk_bytes > half)
			u->cfg.chunk_bytes = (size_t)half;
		u->tokens_ns = now_ns();
	}
	/* Bytes in flight: `window` chunks, and under a cap at least 2 s of it, so the link stays
	 * full across a satellite's round trip (600 ms; 2 s leaves room for queueing): 250 Mbit/s
	 * needs 19 MB in flight at 600 ms, which 16 chunks of the default 1 MiB would not hold.
	 * What a cut costs is what was on the way, at most this. */
	u->in_flight = (uint64_t)u->cfg.window * u->cfg.chunk_bytes;
	if (u->cfg.rate_bps && u->cfg.rate_bps / 4 > u->in_flight)
		u->in_flight = u->cfg.rate_bps / 4;
	if (u->cfg.alert_reserve > u->cfg.daily_quota / 2)
		u->cfg.alert_reserve = u->cfg.daily_quota / 2;
	u->stats.alert_reserve = u->cfg.alert_reserve;
	if (u->cfg.daily_quota && cfg->quota_file) {
		snprintf(u->quota_path, sizeof(u->quota_path), "%s", cfg->quota_file);
		u->quota_fd = open(cfg->quota_file, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
		if (u->quota_fd < 0) /* counted in memory only: a restart begins the day at 0 */
			local_error(u, -errno, "cannot open the quota file (today's bytes are not kept across a restart)",
				    cfg->quota_file);
	}
	quota_load(u);
	u->cfg.quota_file = NULL;
	char werr[160];
	u->nwin = op_uplink_windows_parse(cfg->windows, u->win, 16, werr, sizeof(werr));
	if (u->nwin < 0) {
		op_uplink_close(u);
		return -EINVAL; /* the configuration loader checks it first */
	}
	u->cfg.windows = NULL;
	u->buf = malloc(u->cfg.chunk_bytes);
	if (!u->buf) {
		op_uplink_close(u);
		return -ENOMEM;
	}
	/* no endpoint: local only (the disk reserve and the figures, nothing sent); outside the link
	 * windows the socket is made when one opens */
	if (u->endpoint[0] && window_open(u)) {
		rc = new_socket(u);
		if (rc < 0) {
			op_uplink_close(u);
			return rc;
		}
	}
	*ret = u;
	return 0;
}

void op_uplink_close(op_uplink *u)
{
	if (!u)
		return;
	if (u->tail.fd >= 0)
		close(u->tail.fd);
	if (u->fd >= 0)
		close(u->fd);
	if (u->quota_fd >= 0)
		close(u->quota_fd);
	if (u->ev.fd >= 0)
		close(u->ev.fd);
	free(u->ev.buf);
	if (u->sock) {
		zmq_socket_monitor(u->sock, NULL, 0);
		zmq_close(u->sock);
	}
	if (u->mon)
		zmq_close(u->mon);
	free(u->buf);
	explicit_bzero(u->curve, sizeof(u->curve));
	free(u);
}

static uint64_t held_now(const op_uplink *u, uint64_t now);

void op_uplink_get_stats(const op_uplink *u, op_uplink_stats *out)
{
	*out = u->stats;
	const uint64_t now = now_ns();
	out->files_held = held_now(u, now);
	out->files_refused = 0;
	for (int i = 0; i < 16; i++)
		out->files_refused += u->held[i].count && u->held[i].own_fault;
	out->refusals_running = u->refusals;
	out->spaced_s = now < u->spaced_until_ns ? (double)(u->spaced_until_ns - now) / 1e9 : 0;
	/* sent and never acknowledged, beyond what is on the way now: lost in cuts, refused, or
	 * sent ahead of a HAVE that said north had them; sent again */
	uint64_t out_now = (u->st == SENDING && u->next > u->acked ? u->next - u->acked : 0) +
			   (u->tail.busy ? u->tail.size - u->tail.acked : 0);
	out->bytes_retransmitted = u->stats.bytes_sent > u->stats.bytes_acked + out_now
					   ? u->stats.bytes_sent - u->stats.bytes_acked - out_now : 0;
}

#define TCPIP_BYTES 52 /* IPv4 and TCP headers with timestamps: one segment's cost on the wire */

static uint64_t wire_cost(const op_uplink *u, size_t payload, int frames)
{
	uint64_t zmq = payload + 9u * (uint64_t)frames + (u->curve[0][0] ? 32u * (uint64_t)frames : 0);
	return zmq + TCPIP_BYTES * ((zmq + 1447) / 1448); /* a small message is a whole packet */
}

static int today_utc(void)
{
	return (int)(time(NULL) / 86400);
}

/*
 * What a connection costs before any message of ours, overestimated rather than under (the
 * quota is a promise). Our side's payload, measured through a relay with Debian 12's libzmq
 * 4.3.4: 107 bytes with the NULL mechanism (the 64-byte greeting and READY), 567 with CURVE
 * (greeting, HELLO, INITIATE). On top: TCP's SYN (60 bytes) and ACK (52), and 52 bytes of
 * TCP/IP for each of our segments, data or acknowledgement (five for NULL, seven for CURVE),
 * and the connection's end, paid with its start: our FIN and our acknowledgement of north's
 * (two packets). An attempt that fails is charged as four SYNs: what the kernel sends (at 0,
 * 1, 3 and 7 s) before ZMQ_CONNECT_TIMEOUT (10 s) gives up; every attempt is charged so, a
 * connection made its handshake and end on top.
 */
static uint64_t handshake_cost(const op_uplink *u)
{
	const uint64_t end = 2 * TCPIP_BYTES;
	return u->curve[0][0] ? 60 + 52 + 567 + 7 * 52 + end + 53 : 60 + 52 + 107 + 5 * 52 + end + 17; /* 1200, 600 */
}

static void quota_save(op_uplink *u);

/*
 * Whether `day` (today by the clock) begins a new quota after u->quota_day. A day up to two
 * before it does not: the clock was stepped back across midnight (NTP correcting a clock that
 * ran ahead, or a box booted on a clock saved before a power cut, fake-hwclock, before NTP sets
 * it), and the bytes already sent stay counted, against the later day, until the clock reaches
 * it again; before, the step and the midnight after it each began a fresh quota, and the
 * allowance could go out two or three times in a day. Further back is a new day, as before:
 * a quota day recorded far ahead (a clock once years ahead) would otherwise hold the link shut
 * until then. The price, for a clock one or two days ahead and then corrected: the link keeps
 * that day's allowance until the clock reaches it, the data waiting in outbox/ — a delay, where
 * the other choice spends bytes the site may be billed for or cut off over.
 */
static int quota_day_new(const op_uplink *u, int day)
{
	return day != u->quota_day && !(day < u->quota_day && u->quota_day - day <= 2);
}

/* A new UTC day: a new quota, and whatever waited for it (a parked link, an alert's spaced
 * attempts) goes at once. */
static void new_day(op_uplink *u, int day)
{
	u->quota_day = day;
	u->stats.quota_used = 0;
	u->stats.quota_exhausted = 0;
	u->budget_blocked = 0;
	u->alert_retry_ns = 0;
	u->retry_at_ns = 0;
	quota_save(u);
}

/* Whether what is about to be spent is an alert's: the file chosen is an alert (start_next may
 * offer it at once), or, none chosen, the quota is short of the other files (a connection is then
 * made only for an alert: alert_fits). A file of another class is refused the reserve always. */
static int spending_for_alert(const op_uplink *u)
{
	return u->name[0] ? u->cls == OP_UPLINK_ALERT : u->stats.quota_exhausted;
}

/* Today's quota left, less what a pending connection's handshake holds, and less the alerts'
 * reserve unless an alert spends it (no quota: unlimited). A new UTC day starts a new quota. */
static uint64_t quota_room(op_uplink *u)
{
	if (!u->cfg.daily_quota)
		return UINT64_MAX;
	int day = today_utc();
	if (quota_day_new(u, day))
		new_day(u, day);
	uint64_t held = u->stats.quota_used + u->hs_reserved;
	if (!spending_for_alert(u))
		held += u->cfg.alert_reserve;
	return held < u->cfg.daily_quota ? u->cfg.daily_quota - held : 0;
}

static void quota_save(op_uplink *u)
{
	char rec[64];
	if (u->quota_fd < 0)
		return;
	int n = snprintf(rec, sizeof(rec), "%010d %020llu\n", u->quota_day, (unsigned long long)u->stats.quota_used);
	if (pwrite(u->quota_fd, rec, (size_t)n, 0) != n)
		local_error(u, -errno, "cannot write the quota file", u->quota_path);
	/* to the disk at most a second later: without it, the kernel's writeback (30 s) decides
	 * how much of the count a power cut takes */
	const uint64_t now = now_ns();
	if (now - u->quota_sync_ns >= 1000000000ull) {
		u->quota_sync_ns = now;
		if (fdatasync(u->quota_fd) != 0)
			local_error(u, -errno, "cannot sync the quota file", u->quota_path);
	}
}

static void quota_load(op_uplink *u)
{
	char rec[64] = {0};
	int day;
	unsigned long long used;
	u->quota_day = today_utc();
	if (u->quota_fd >= 0 && pread(u->quota_fd, rec, sizeof(rec) - 1, 0) > 0 &&
	    sscanf(rec, "%d %llu", &day, &used) == 2) {
		const int today = u->quota_day;
		u->quota_day = day; /* as if it had run on: the same rule as a running sender's */
		if (quota_day_new(u, today))
			u->quota_day = today;
		else
			u->stats.quota_used = used;
	}
}

/* Give back what budget_take charged for a message that then could not be sent. */
static void budget_refund(op_uplink *u, uint64_t cost)
{
	if (u->cfg.rate_bps)
		u->tokens += (double)cost;
	u->stats.wire_bytes -= cost;
	if (u->cfg.daily_quota && u->stats.quota_used >= cost) {
		u->stats.quota_used -= cost;
		quota_save(u);
	}
}

/* Spend the budget for a message of `cost` wire bytes, leaving `reserve` of today's quota for
 * messages that must follow it (a file's COMMIT): 0 when it may go now, -EDQUOT when today's
 * quota cannot carry it, -EAGAIN when the cap holds it back for now. */
static int budget_take(op_uplink *u, uint64_t cost, uint64_t reserve)
{
	uint64_t now = now_ns();
	if (quota_room(u) < cost + reserve) {
		u->stats.quota_exhausted = 1;
		u->budget_blocked = 1;
		return -EDQUOT;
	}
	u->budget_blocked = 0;
	if (u->cfg.rate_bps) {
		/* credit accrues at the cap up to one message's worth (or 0.1 s): a message goes only
		 * when it is paid for, so no window of T seconds carries more than cap·T + depth */
		double rate = (double)u->cfg.rate_bps / 8.0, depth = rate * 0.1;
		if (depth < (double)cost)
			depth = (double)cost;
		u->tokens += rate * (double)(now - u->tokens_ns) / 1e9;
		u->tokens_ns = now;
		if (u->tokens > depth)
			u->tokens = depth;
		if (u->tokens < (double)cost) {
			u->stats.rate_waits++;
			u->budget_blocked = 1;
			return -EAGAIN;
		}
		u->tokens -= (double)cost;
	}
	u->stats.wire_bytes += cost;
	if (u->cfg.daily_quota) {
		u->stats.quota_used += cost;
		quota_save(u);
	}
	return 0;
}

/* A message north answers costs, besides itself, the acknowledgement our TCP sends for the
 * answer: one packet, paid (and kept room for) with the message. */
static uint64_t commit_cost(const op_uplink *u, const char *name)
{
	return wire_cost(u, 6 + strlen(name), 2) + TCPIP_BYTES;
}

static uint64_t offer_cost_of(const op_uplink *u, const char *name)
{
	return wire_cost(u, 5 + strlen(name) + 8 + 64 + 4, 5) + TCPIP_BYTES;
}

static uint64_t offer_cost(const op_uplink *u)
{
	return offer_cost_of(u, u->name);
}

/* A CHUNK of `bytes` (name, offset, bytes, CRC32C) and our acknowledgement of north's ACK. */
static uint64_t chunk_cost(const op_uplink *u, const char *name, uint64_t bytes)
{
	return wire_cost(u, bytes + strlen(name) + 8 + 4 + 5, 5) + TCPIP_BYTES;
}

/* Room the quota keeps for COMMITs that go unasked: this file's and the tail's, not sent yet. */
static uint64_t commits_owed(const op_uplink *u)
{
	return commit_cost(u, u->name) + (u->tail.busy && !u->tail.commit_sent ? commit_cost(u, u->tail.name) : 0);
}

/* Small control messages (OFFER, COMMIT) are counted, never held back: the quota kept room for
 * them (offer(), pump()). */
static void budget_count(op_uplink *u, uint64_t cost)
{
	u->stats.wire_bytes += cost;
	if (u->cfg.rate_bps)
		u->tokens -= (double)cost;
	if (u->cfg.daily_quota) {
		u->stats.quota_used += cost;
		quota_save(u);
	}
}

static int send_frames_for(op_uplink *u, const char *name, const char *cmd, const void *a, size_t alen,
			   const void *b, size_t blen, const void *c, size_t clen)
{
	int more_a = a != NULL, more_b = b != NULL, more_c = c != NULL;
	if (zmq_send(u->sock, cmd, strlen(cmd), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -errno;
	zmq_send(u->sock, name, strlen(name), more_a ? ZMQ_SNDMORE : 0);
	if (more_a)
		zmq_send(u->sock, a, alen, more_b ? ZMQ_SNDMORE : 0);
	if (more_b)
		zmq_send(u->sock, b, blen, more_c ? ZMQ_SNDMORE : 0);
	if (more_c)
		zmq_send(u->sock, c, clen, 0);
	return 0;
}

static int send_frames(op_uplink *u, const char *cmd, const void *a, size_t alen, const void *b, size_t blen,
		       const void *c, size_t clen)
{
	return send_frames_for(u, u->name, cmd, a, alen, b, blen, c, clen);
}

static void end_tail(op_uplink *u)
{
	if (u->tail.fd >= 0)
		close(u->tail.fd);
	memset(&u->tail, 0, sizeof(u->tail));
	u->tail.fd = -1;
}

static void set_aside(op_uplink *u, const char *name)
{
	snprintf(u->aside[u->aside_next], sizeof(u->aside[0]), "%s", name);
	u->aside_next = (u->aside_next + 1) % 4;
}

static int was_set_aside(const op_uplink *u, const char *name)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(u->aside[i], name))
			return 1;
	return 0;
}

static void end_file(op_uplink *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	u->st = IDLE;
	u->name[0] = 0;
}

/*
 * Outside the link windows, and with no room left today for a connection's bytes: the transfers
 * are set aside (north keeps what it has) and the socket closed, so that ZeroMQ does not
 * reconnect on its own; op_uplink_step makes a new one when a window opens and the quota has
 * room (UTC midnight).
 */
static void remember(struct verified *v, const struct stat *sb, const char *name);

/* A checksum under way is kept (the file unchanged, it goes on from there next time). */
static void keep_check(op_uplink *u)
{
	struct stat sb;
	if (u->st == VERIFYING && fstat(u->fd, &sb) == 0) {
		remember(&u->paused, &sb, u->name);
		u->paused_ctx = u->vctx;
		u->paused_off = u->voff;
	}
}

/* The current file and the tail are set aside (north keeps what it has): none in progress. */
static void drop_transfers(op_uplink *u)
{
	keep_check(u);
	if (u->st != IDLE)
		set_aside(u, u->name);
	if (u->tail.busy)
		set_aside(u, u->tail.name);
	end_file(u);
	end_tail(u);
}

static void close_link(op_uplink *u)
{
	drop_transfers(u);
	if (u->sock) {
		zmq_socket_monitor(u->sock, NULL, 0);
		zmq_close(u->sock);
	}
	if (u->mon)
		zmq_close(u->mon);
	u->sock = u->mon = NULL;
	u->hs_reserved = 0;
	u->stats.link_up = 0;
	u->last_pong_ns = 0; /* "up" again only when north answers on the next connection */
	u->retry_at_ns = now_ns() + (u->cfg.retry_ns ? u->cfg.retry_ns : 1000000000ull);
}

static void park(op_uplink *u)
{
	close_link(u);
	u->stats.quota_parked = 1;
	u->stats.quota_exhausted = 1;
}

/*
 * The quota spent and an alert's connection failed (no TCP, no answer within the timeout, a
 * cut, a refusal): each attempt costs what the alerts need, so they are spaced from
 * uplink.retry (a second at least), doubling, up to 15 minutes, instead of ZeroMQ's pace (a
 * second, backing off to uplink.retry): about a hundred a day, 24 kB, at the most. Only an
 * answer from north starts the spacing over (a TCP connection alone does not: an accelerating
 * modem, a hung north or one refusing our key accept it). The wait before the next attempt.
 */
static uint64_t alert_backoff(op_uplink *u)
{
	const uint64_t base = u->cfg.retry_ns > 1000000000ull ? u->cfg.retry_ns : 1000000000ull, most = 900000000000ull;
	u->alert_retry_ns = !u->alert_retry_ns ? base : u->alert_retry_ns < most / 2 ? 2 * u->alert_retry_ns : most;
	return u->alert_retry_ns;
}

/* The quota short of the next file: no connection for `wait_ns` at least (quota_parked), then
 * one only for an alert that fits (op_uplink_step). */
static void rest_link(op_uplink *u, uint64_t wait_ns)
{
	close_link(u);
	u->stats.quota_parked = 1;
	u->retry_at_ns = now_ns() + wait_ns;
}

static void reset(op_uplink *u, uint64_t delay_ns)
{
	drop_transfers(u);
	if (u->stats.quota_exhausted) { /* an alert's connection failed */
		const uint64_t wait = alert_backoff(u);
		rest_link(u, wait > delay_ns ? wait : delay_ns);
		return;
	}
	new_socket(u);
	u->retry_at_ns = now_ns() + delay_ns;
}

/* base doubled `times` times, at most `most` (never less than base). */
static uint64_t doubled(uint64_t base, uint32_t times, uint64_t most)
{
	uint64_t d = base;
	for (uint32_t i = 0; i < times && d < most; i++)
		d *= 2;
	return d <= most ? d : most > base ? most : base;
}

static struct held *held_entry(op_uplink *u, int c, const char *name)
{
	for (int i = 0; i < 16; i++)
		if (u->held[i].count && u->held[i].cls == c && !strcmp(u->held[i].name, name))
			return &u->held[i];
	return NULL;
}

static int is_held(op_uplink *u, int c, const char *name)
{
	const struct held *h = held_entry(u, c, name);
	return h && now_ns() < h->until;
}

static void forget_held(op_uplink *u, int c, const char *name)
{
	struct held *h = held_entry(u, c, name);
	if (h)
		h->count = 0;
}

/*
 * Hold a file back: twice the retry, doubled for every hold in a row, at most an hour, while
 * the others go. Without it the same oldest file would win every pick (and, for a class that
 * sends nothing, every class pick too) for as long as the cause lasts. local: a cause on this
 * side (its sidecar cannot be read, its quarantine failed), which eviction skips as well.
 */
static struct held *hold(op_uplink *u, int cls, const char *name, int local)
{
	struct held *h = held_entry(u, cls, name);
	if (!h) { /* a free entry, or the one whose hold ends first */
		h = &u->held[0];
		for (int i = 0; i < 16 && h->count; i++)
			if (!u->held[i].count || u->held[i].until < h->until)
				h = &u->held[i];
		memset(h, 0, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", name);
		h->cls = cls;
	}
	h->local = local;
	h->count++;
	/* beyond the pause a refusal also brings: the others go first */
	h->until = now_ns() + doubled(u->cfg.retry_ns ? u->cfg.retry_ns : 1000000000ull, h->count, 3600000000000ull);
	return h;
}

/* Files whose hold is in effect now (at most the 16 the table keeps). */
static uint64_t held_now(const op_uplink *u, uint64_t now)
{
	uint64_t n = 0;
	for (int i = 0; i < 16; i++)
		n += u->held[i].count && now < u->held[i].until;
	return n;
}

/* Oldest sealed segment in outbox/ (names sort by time); updates the pending figures. */
static uint64_t whole_file_cost(const op_uplink *u, const char *name, uint64_t size);

/* Oldest shippable file of one class (name order: names start with the UTC time) whose whole
 * transfer costs at most `room` (UINT64_MAX: any). Counts the class's backlog on the way. 1 and
 * its name, 0 when none, or -errno. */
static int pick_in_room(op_uplink *u, int c, char *name, size_t cap, uint64_t room)
{
	DIR *d = opendir(u->dirs[c]);
	struct dirent *de;
	char *best = NULL;
	struct op_uplink_class_stats *cs = &u->stats.cls[c];
	time_t oldest = 0;

	cs->files_pending = cs->bytes_pending = 0;
	cs->oldest_age_s = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[1100];
		struct stat sb;
		if (!op_xfer_name_ok(de->d_name, n))
			continue;
		snprintf(path, sizeof(path), "%s/%s.sha256", u->dirs[c], de->d_name);
		if (stat(path, &sb) != 0)
			continue; /* being written or broken: a file is published after its sidecar */
		snprintf(path, sizeof(path), "%s/%s", u->dirs[c], de->d_name);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		cs->bytes_pending += (uint64_t)sb.st_size;
		cs->files_pending++;
		if (!oldest || sb.st_mtime < oldest)
			oldest = sb.st_mtime;
		if (u->tail.busy && c == u->tail.cls && !strcmp(de->d_name, u->tail.name))
			continue; /* sent, awaiting its confirmation */
		if (is_held(u, c, de->d_name))
			continue; /* refused lately: the others go first (refused()) */
		if (u->ev.active && c == u->ev.cls && !strcmp(de->d_name, u->ev.name))
			continue; /* being checked for eviction */
		if (room != UINT64_MAX && whole_file_cost(u, de->d_name, (uint64_t)sb.st_size) > room)
			continue; /* more than today's quota has left */
		if (!best || strcmp(de->d_name, best) < 0) {
			free(best);
			best = strdup(de->d_name);
		}
	}
	closedir(d);
	if (oldest)
		cs->oldest_age_s = difftime(time(NULL), oldest);
	if (!best)
		return 0;
	snprintf(name, cap, "%s", best);
	free(best);
	return 1;
}

static int pick_in(op_uplink *u, int c, char *name, size_t cap)
{
	return pick_in_room(u, c, name, cap, UINT64_MAX);
}

/* The next file: an alert if there is one; otherwise the waiting class furthest behind its share
 * (weighted fair queueing by bytes). Sets *cls. */
static int pick(op_uplink *u, char *name, size_t cap, int *cls)
{
	char names[OP_UPLINK_CLASSES][OP_XFER_NAME_MAX + 1];
	int have[OP_UPLINK_CLASSES], best = -1;
	double vmin = 0;

	u->stats.files_pending = u->stats.bytes_pending = 0;
	for (int c = 0; c < OP_UPLINK_CLASSES; c++) {
		have[c] = pick_in(u, c, names[c], sizeof(names[c]));
		if (have[c] < 0)
			return have[c];
		u->stats.files_pending += u->stats.cls[c].files_pending;
		u->stats.bytes_pending += u->stats.cls[c].bytes_pending;
	}
	if (have[OP_UPLINK_ALERT] > 0) {
		best = OP_UPLINK_ALERT;
	} else {
		/* a class that was idle rejoins at the current virtual time: no credit for idleness */
		int any = 0;
		for (int c = 1; c < OP_UPLINK_CLASSES; c++)
			if (have[c] > 0 && (!any || u->vt[c] < vmin)) {
				vmin = u->vt[c];
				any = 1;
			}
		for (int c = 1; c < OP_UPLINK_CLASSES; c++)
			if (!have[c] && u->vt[c] < vmin)
				u->vt[c] = vmin;
		for (int c = 1; c < OP_UPLINK_CLASSES; c++)
			if (have[c] > 0 && (best < 0 || u->vt[c] < u->vt[best]))
				best = c;
	}
	if (best < 0)
		return 0;
	size_t nl = strnlen(names[best], sizeof(names[best]) - 1);
	if (nl >= cap)
		return -ENAMETOOLONG;
	memcpy(name, names[best], nl);
	name[nl] = 0;
	*cls = best;
	return 1;
}

/* What a file's whole transfer costs on the wire: its OFFER, its chunks (each with our
 * acknowledgement of north's ACK) and its COMMIT. */
static uint64_t whole_file_cost(const op_uplink *u, const char *name, uint64_t size)
{
	const uint64_t chunk = u->cfg.chunk_bytes, rest = size % chunk;
	return offer_cost_of(u, name) + size / chunk * chunk_cost(u, name, chunk) + (rest ? chunk_cost(u, name, rest) : 0) +
	       commit_cost(u, name);
}

/*
 * Today's quota has run short of the next file. An alert still goes when what is left holds
 * it whole, with a connection's attempt and handshake when there is none and the COMMIT still
 * owed for the file awaiting its confirmation: the oldest such alert (one too large for the
 * rest of the day does not hold back the smaller ones behind it). 1 and its name, else 0.
 */
static int alert_fits(op_uplink *u, char *name, size_t cap)
{
	uint64_t room = quota_room(u), owed = u->sock ? 0 : ATTEMPT_COST + handshake_cost(u);
	if (u->tail.busy && !u->tail.commit_sent)
		owed += commit_cost(u, u->tail.name);
	return room > owed && pick_in_room(u, OP_UPLINK_ALERT, name, cap, room - owed) > 0;
}

static int read_sidecar(const char *path, char sha[65])
{
	char line[256];
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int ok = fgets(line, sizeof(line), f) != NULL && strlen(line) >= 64;
	fclose(f);
	if (!ok)
		return -EINVAL;
	memcpy(sha, line, 64);
	sha[64] = 0;
	for (int i = 0; i < 64; i++)
		if (!((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f')))
			return -EINVAL;
	return 0;
}

/* The data first, then its sidecar: if the second move fails, the file is out of outbox/ and
 * its sidecar alone is a leftover the sweep removes; the other order could strand the data in
 * outbox/ without a sidecar, never sent and never counted. Counted only when the data moved.
 * Never over earlier evidence: a name quarantine/ holds already (the same file queued again and
 * corrupt again, or one name in two classes) gets .1, .2, … (before, rename replaced the first
 * copy and its sidecar). Only this thread writes quarantine/. */
static void quarantine(op_uplink *u, int cls, const char *name)
{
	char from[800], to[512 + 1 + 256 + 8], qname[256]; /* quarantine/, qname, ".sha256" */
	int k = 0;
	op_segment_mkdir(u->quarantine, 0750);
	snprintf(from, sizeof(from), "%s/%s", u->dirs[cls], name);
	for (; k < 1000; k++) { /* a name free for the data and its sidecar (names: at most 200) */
		struct stat sb;
		if (k)
			snprintf(qname, sizeof(qname), "%s.%d", name, k);
		else
			snprintf(qname, sizeof(qname), "%s", name);
		snprintf(to, sizeof(to), "%s/%s.sha256", u->quarantine, qname);
		if (lstat(to, &sb) == 0 || errno != ENOENT)
			continue;
		snprintf(to, sizeof(to), "%s/%s", u->quarantine, qname);
		if (lstat(to, &sb) != 0 && errno == ENOENT)
			break;
	}
	if (k == 1000)
		errno = EEXIST; /* a thousand of the name there already: it stays where it is, held */
	if (k == 1000 || rename(from, to) != 0) {
		local_error(u, -errno, "cannot move to quarantine a file that failed its checksum,", from);
		u->stats.quarantine_failed++;
		hold(u, cls, name, 1); /* not picked, hashed and failed again every step */
		return;
	}
	forget_held(u, cls, name);
	snprintf(from, sizeof(from), "%s/%s.sha256", u->dirs[cls], name);
	snprintf(to, sizeof(to), "%s/%s.sha256", u->quarantine, qname);
	if (rename(from, to) != 0 && errno != ENOENT)
		local_error(u, -errno, "cannot move to quarantine", from);
	u->stats.quarantined++;
	snprintf(u->stats.last_quarantined, sizeof(u->stats.last_quarantined), "%s", qname);
}

/* Send the OFFER for the current (verified) file. */
static int offer(op_uplink *u)
{
	uint8_t size_le[8], ver[4] = {OP_XFER_VERSION, 0, 0, 0};
	/* room for the OFFER and this file's COMMIT (and the tail's, not sent yet): else the file
	 * waits for tomorrow's quota, as a chunk would */
	if (quota_room(u) < offer_cost(u) + commits_owed(u)) {
		u->stats.quota_exhausted = 1;
		end_file(u);
		return 0;
	}
	u->next = u->acked = 0;
	u->nak_at = UINT64_MAX;
	op_xfer_put_u64(size_le, u->size);
	budget_count(u, offer_cost(u));
	if (send_frames(u, "OFFER", size_le, 8, u->sha, 64, ver, 4) < 0) {
		budget_refund(u, offer_cost(u)); /* not sent: not spent (tried again every 200 ms) */
		end_file(u);
		return 0;
	}
	u->have = 0;
	/* see the notes at the top; a file north refused lately waits for HAVE too: sent ahead, a
	 * file refused again ("no room for the whole file") would cost a window of the link each time */
	u->st = u->tail.busy && !was_set_aside(u, u->name) && !held_entry(u, u->cls, u->name) ? SENDING : OFFERED;
	u->last_rx_ns = now_ns();
	return 1;
}

/* The same file as checked before: name, inode, size and mtime unchanged. */
static int same_file(const struct verified *v, const struct stat *sb, const char *name)
{
	return v->ino == sb->st_ino && v->dev == sb->st_dev && v->size == sb->st_size &&
	       v->mtime.tv_sec == sb->st_mtim.tv_sec && v->mtime.tv_nsec == sb->st_mtim.tv_nsec && !strcmp(v->name, name);
}

static void remember(struct verified *v, const struct stat *sb, const char *name)
{
	v->dev = sb->st_dev;
	v->ino = sb->st_ino;
	v->size = sb->st_size;
	v->mtime = sb->st_mtim;
	snprintf(v->name, sizeof(v->name), "%s", name);
}

static int verified_before(const op_uplink *u, const struct stat *sb, const char *name)
{
	for (int i = 0; i < 8; i++)
		if (same_file(&u->verified[i], sb, name))
			return 1;
	return 0;
}

/* Pick the next file and open it; it is checked against its sidecar (VERIFYING, a slice per
 * step) before it is offered, unless it was checked lately unchanged (set aside for an alert). */
static int start_next(op_uplink *u, const char *alert)
{
	char name[OP_XFER_NAME_MAX + 1], path[800], side[800];
	struct stat sb;
	int cls = OP_UPLINK_ALERT, rc = 1;
	if (alert) /* the quota is short: this alert, which fits */
		snprintf(name, sizeof(name), "%s", alert);
	else
		rc = pick(u, name, sizeof(name), &cls);

	if (rc <= 0)
		return rc;
	u->cls = cls;
	snprintf(path, sizeof(path), "%s/%s", u->dirs[cls], name);
	snprintf(side, sizeof(side), "%s/%s.sha256", u->dirs[cls], name);
	int sr = read_sidecar(side, u->sha);
	if (sr == -EINVAL) { /* malformed: evidence */
		quarantine(u, u->cls, name);
		return 0;
	}
	if (sr < 0) { /* unreadable now (EACCES, EMFILE, EIO): held back and tried again, not quarantined */
		local_error(u, sr, "cannot read", side);
		hold(u, cls, name, 1);
		return 0;
	}
	u->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (u->fd < 0 || fstat(u->fd, &sb) != 0) {
		const int e = -errno;
		if (e == -ENOENT) { /* gone meanwhile (an operator, eviction) */
			forget_held(u, cls, name);
			u->stats.vanished++;
		} else { /* unreadable (EACCES, EIO): held back, the others go meanwhile */
			local_error(u, e, "cannot open", path);
			hold(u, cls, name, 1);
		}
		end_file(u);
		return 0;
	}
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->size = (uint64_t)sb.st_size;
	if (verified_before(u, &sb, name))
		return offer(u);
	op_sha256_init(&u->vctx);
	u->voff = 0;
	if (same_file(&u->paused, &sb, name)) {
		u->vctx = u->paused_ctx;
		u->voff = u->paused_off;
	}
	u->st = VERIFYING;
	return 1;
}

/* A read of the current file failed (n: pread's result; 0 or short: the file is shorter than
 * it was): said with its path and held back (hold), so that it is not picked first and read
 * again at every step while the files behind it wait */
static void read_failed(op_uplink *u, ssize_t n)
{
	char path[800];
	snprintf(path, sizeof(path), "%s/%s", u->dirs[u->cls], u->name);
	local_error(u, n < 0 ? -errno : -EIO, n < 0 ? "cannot read" : "shorter than it was", path);
	hold(u, u->cls, u->name, 1);
}

/* Check the current file against its sidecar, 16 MiB a step (~50 ms), so that a large file
 * never holds up an alert, a keepalive or the stage's report. */
static void verify_step(op_uplink *u)
{
	uint64_t slice = 0;
	while (u->voff < u->size && slice < (16u << 20)) {
		size_t want = u->size - u->voff < u->cfg.chunk_bytes ? (size_t)(u->size - u->voff) : u->cfg.chunk_bytes;
		ssize_t n = pread(u->fd, u->buf, want, (off_t)u->voff);
		if (n <= 0) {
			read_failed(u, n);
			end_file(u);
			return;
		}
		op_sha256_update(&u->vctx, u->buf, (size_t)n);
		u->voff += (uint64_t)n;
		slice += (uint64_t)n;
	}
	if (u->voff < u->size)
		return;
	uint8_t d[32];
	char actual[65], name[OP_XFER_NAME_MAX + 1];
	op_sha256_final(&u->vctx, d);
	op_sha256_hex(d, actual);
	if (strcmp(actual, u->sha) != 0) {
		snprintf(name, sizeof(name), "%s", u->name);
		end_file(u);
		quarantine(u, u->cls, name);
		return;
	}
	struct stat sb;
	if (fstat(u->fd, &sb) == 0) {
		remember(&u->verified[u->verified_next], &sb, u->name);
		u->verified_next = (u->verified_next + 1) % 8;
	}
	offer(u);
}

/*
 * What a crash leaves in the class directories but bulk/: a publisher's .NAME.tmp (op_uplink_publish died
 * before its rename), and a NAME.sha256 whose NAME is gone (a publisher or the store's seal died
 * between placing the sidecar and renaming the data in; or this sender, between removing a
 * confirmed file and its sidecar). Neither is ever sent; left alone they would stay for the life
 * of the box. Only those older than LEFTOVER_S go: a publisher in another process may be between
 * its two steps right now, and no publisher takes minutes. At open, then hourly.
 */
#define LEFTOVER_S 600
static void sweep_leftovers(op_uplink *u, uint64_t now)
{
	if (u->last_sweep_ns && now - u->last_sweep_ns < 3600000000000ull)
		return;
	u->last_sweep_ns = now;
	const time_t wall = time(NULL);
	for (int c = 0; c < OP_UPLINK_CLASSES; c++) {
		if (c == OP_UPLINK_BULK)
			continue; /* the operator's: a copy under way there may be named anything, and take hours */
		DIR *d = opendir(u->dirs[c]);
		struct dirent *de;
		if (!d)
			continue;
		const int dfd = dirfd(d);
		while ((de = readdir(d))) {
			const char *n = de->d_name;
			const size_t len = strlen(n);
			const int tmp = n[0] == '.' && len > 5 && !strcmp(n + len - 4, ".tmp");
			const int side = n[0] != '.' && len > 7 && !strcmp(n + len - 7, ".sha256");
			struct stat sb;
			char data[256];
			if ((!tmp && !side) || len >= sizeof(data) ||
			    fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
			    difftime(wall, sb.st_mtime) < LEFTOVER_S)
				continue;
			if (side) {
				memcpy(data, n, len - 7);
				data[len - 7] = 0;
				if (fstatat(dfd, data, &sb, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
					continue; /* its file is there (or cannot be looked at): not a leftover */
			}
			if (unlinkat(dfd, n, 0) == 0)
				u->stats.leftovers_removed++;
		}
		closedir(d);
	}
}

/* Remove files in sent/ confirmed more than sent_keep_ns ago (by their mtime, set at the move). */
static void prune_sent(op_uplink *u, uint64_t now)
{
	if (!u->sent[0] || now - u->last_prune_ns < 10000000000ull)
		return;
	u->last_prune_ns = now;
	DIR *d = opendir(u->sent);
	struct dirent *de;
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[800];
		struct stat sb;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", u->sent, de->d_name);
		/* signed: a clock stepped back puts mtimes in the future, which are fresh, not
		 * ancient (unsigned, every file went at once and with it the store's memory) */
		if (stat(path, &sb) == 0 && rt.tv_sec > sb.st_mtime &&
		    (uint64_t)(rt.tv_sec - sb.st_mtime) * 1000000000ull > u->cfg.sent_keep_ns)
			unlink(path);
	}
	closedir(d);
}

/*
 * A confirmed results file from outbox/ (path; fd open on it) into sent/ (dst), its
 * confirmation time (for pruning) set: a second name in sent/, it and its time on disk, then
 * the name in outbox/ removed (outbox/ is fsynced by the caller). A power cut at any point
 * leaves the file in outbox/, in sent/ or in both (then offered again, and north confirms it
 * again at once), never in neither: a rename could reach the disk as the removal from outbox/
 * without the entry in sent/, and the store would forget it wrote those rows and write them
 * again. Where the file system has no hard links, a rename (then sent/ fsynced after it: the
 * window is shorter, not closed). An older copy in sent/ (confirmed before, offered again after
 * a crash) is replaced only once the link is sure to be made. 0 or -1 (errno; nothing moved).
 */
static void sync_dir(const char *dir)
{
	(void)op_segment_sync_dir(dir);
}

static int sent_move(op_uplink *u, int fd, const char *path, const char *dst)
{
	int rc = link(path, dst);
	if (rc != 0 && errno == EEXIST) {
		struct stat a, b;
		if (stat(path, &a) == 0 && stat(dst, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			rc = 0; /* linked already (a crash before the unlink below) */
		else if (unlink(dst) == 0 || errno == ENOENT)
			rc = link(path, dst);
	}
	if (rc != 0) {
		if (errno != EPERM && errno != EXDEV && errno != ENOTSUP && errno != EMLINK)
			return -1;
		if (rename(path, dst) != 0)
			return -1;
		if (utimensat(AT_FDCWD, dst, NULL, 0) != 0)
			local_error(u, -errno, "cannot set the confirmation time of", dst);
		sync_dir(u->sent);
		return 0;
	}
	if (utimensat(AT_FDCWD, dst, NULL, 0) != 0)
		local_error(u, -errno, "cannot set the confirmation time of", dst);
	if (fd >= 0)
		fsync(fd); /* the time */
	sync_dir(u->sent);
	if (unlink(path) != 0)
		local_error(u, -errno, "cannot remove from the outbox a file now in sent/,", path);
	return 0;
}

/* North holds cls/name: our copy goes (to sent/ for results). */
/* fd: the file that was offered. If the name now holds another file (an operator replaced a
 * bulk file under the same name while the old one was on its way), north confirmed the old
 * one: the new file and its sidecar stay, to be sent in their turn. */
static void confirmed(op_uplink *u, int cls, const char *name, uint64_t size, int fd)
{
	char path[800];
	u->refusals = 0; /* north takes files: refused ones no longer space the offers */
	u->alert_refused = 0;
	u->spaced_until_ns = 0;
	snprintf(path, sizeof(path), "%s/%s", u->dirs[cls], name);
	struct stat a, b;
	if (fd >= 0 && fstat(fd, &a) == 0 && stat(path, &b) == 0 && (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
		u->stats.cls[cls].files_confirmed++;
		u->stats.files_confirmed++;
		u->stats.bytes_confirmed += size;
		u->stats.replaced_while_sent++;
		return;
	}
	if (u->sent[0] && cls == OP_UPLINK_RESULTS) { /* kept a while for the store's memory of what it wrote (see sender.h) */
		char dst[800];
		snprintf(dst, sizeof(dst), "%s/%s", u->sent, name);
		if (sent_move(u, fd, path, dst) != 0) {
			/* north holds it; without the copy in sent/ the store's memory of it is shorter,
			 * which is still better than sending it again */
			local_error(u, -errno, "cannot move to sent/ a confirmed file,", path);
			if (unlink(path) != 0)
				local_error(u, -errno, "cannot remove a confirmed file", path);
		}
	} else if (unlink(path) != 0) {
		local_error(u, -errno, "cannot remove a confirmed file", path);
	}
	snprintf(path, sizeof(path), "%s/%s.sha256", u->dirs[cls], name);
	unlink(path);
	forget_held(u, cls, name);
	u->stats.cls[cls].files_confirmed++;
	sync_dir(u->dirs[cls]);
	u->stats.files_confirmed++;
	u->stats.bytes_confirmed += size;
}

/* The current file is sent in full: it becomes the tail, and the next file may be offered. */
static void to_tail(op_uplink *u)
{
	u->tail.busy = 1;
	u->tail.commit_sent = 0;
	u->tail.cls = u->cls;
	u->tail.fd = u->fd;
	memcpy(u->tail.name, u->name, sizeof(u->tail.name));
	memcpy(u->tail.sha, u->sha, sizeof(u->tail.sha));
	u->tail.size = u->size;
	u->tail.acked = u->acked;
	u->fd = -1;
	end_file(u);
}

/* North lost part of the tail (NAK): set the current file aside (north keeps what it has) and
 * send the tail again from north's offset. */
static void tail_rewind(op_uplink *u, uint64_t off)
{
	if (u->st != IDLE)
		set_aside(u, u->name);
	end_file(u);
	u->fd = u->tail.fd;
	u->tail.fd = -1;
	u->cls = u->tail.cls;
	memcpy(u->name, u->tail.name, sizeof(u->name));
	memcpy(u->sha, u->tail.sha, sizeof(u->sha));
	u->size = u->tail.size;
	u->next = u->acked = off;
	u->nak_at = off;
	u->st = SENDING;
	end_tail(u);
}

/* The tail's COMMIT (its room was kept at the offer), paid when it goes: a send that fails (the
 * socket full) is tried again at the next step, and was paid at every try, up to ten times a
 * second, the day's quota running ahead of the bytes on the wire. */
static void send_commit(op_uplink *u)
{
	if (send_frames_for(u, u->tail.name, "COMMIT", NULL, 0, NULL, 0, NULL, 0) == 0) {
		budget_count(u, commit_cost(u, u->tail.name));
		u->tail.commit_sent = 1;
	}
}

static void pump(op_uplink *u)
{
	prune_sent(u, now_ns());
	uint64_t tail_out = u->tail.busy ? u->tail.size - u->tail.acked : 0;
	uint64_t limit = u->acked + (tail_out < u->in_flight ? u->in_flight - tail_out : 0);

	if (u->tail.busy && !u->tail.commit_sent && u->tail.acked == u->tail.size)
		send_commit(u);
	if (u->st != SENDING)
		return;
	if (!u->stats.in_window) { /* the window closed: hold; resume from here when it opens */
		u->budget_blocked = 1;
		return;
	}
	while (u->next < u->size && u->next < limit) {
		size_t want = u->size - u->next < u->cfg.chunk_bytes ? (size_t)(u->size - u->next) : u->cfg.chunk_bytes;
		uint8_t off[8];
		/* an alert waiting: set this transfer aside (north keeps what it has) */
		uint64_t tnow = now_ns();
		if (u->cls != OP_UPLINK_ALERT && tnow - u->last_alert_check_ns >= 20000000ull) {
			char an[OP_XFER_NAME_MAX + 1];
			u->last_alert_check_ns = tnow;
			if (pick_in(u, OP_UPLINK_ALERT, an, sizeof(an)) > 0) {
				u->stats.preemptions++;
				set_aside(u, u->name);
				end_file(u);
				u->retry_at_ns = 0;
				return;
			}
		}
		/* the socket's queue full (HWM): later, before anything is paid for */
		int zev = 0;
		size_t zevl = sizeof(zev);
		if (zmq_getsockopt(u->sock, ZMQ_EVENTS, &zev, &zevl) == 0 && !(zev & ZMQ_POLLOUT))
			return;
		const uint64_t cost = chunk_cost(u, u->name, want);
		const int br = budget_take(u, cost, commits_owed(u));
		if (br < 0) {
			/* An alert the quota can no longer carry (it began before the quota ran short, or
			 * rewinds cost more than alert_fits counted): set aside, north keeping what it
			 * has, so that smaller alerts behind it go (alert_fits) and the link rests. It had
			 * stayed the current file until UTC midnight, every alert behind it waiting. */
			if (br == -EDQUOT && u->cls == OP_UPLINK_ALERT) {
				u->stats.alerts_stalled++;
				set_aside(u, u->name);
				end_file(u);
				u->retry_at_ns = 0;
			}
			return; /* the cap or the quota: later (the chunk is read only once it may go: held
				 * back by the cap, it had been read again at every step) */
		}
		ssize_t n = pread(u->fd, u->buf, want, (off_t)u->next);
		if (n != (ssize_t)want) {
			/* held back (north keeps what it has; the connection stays: nothing is wrong
			 * with it), the other files go meanwhile */
			budget_refund(u, cost);
			read_failed(u, n);
			end_file(u);
			u->retry_at_ns = 0;
			return;
		}
		op_xfer_put_u64(off, u->next);
		uint8_t crc[4];
		op_xfer_put_u32(crc, op_crc32c(0, u->buf, want));
		if (send_frames(u, "CHUNK", off, 8, u->buf, want, crc, 4) < 0) {
			budget_refund(u, cost); /* not sent: not spent; tried again on the next step */
			return;
		}
		u->stats.cls[u->cls].bytes_sent += want;
		if (u->cls != OP_UPLINK_ALERT)
			u->vt[u->cls] += (double)want / u->cfg.share_pct[u->cls];
		u->next += want;
		u->stats.bytes_sent += want;
	}
	if (u->next == u->size && !u->tail.busy) {
		to_tail(u);
		if (u->tail.acked == u->tail.size) /* all acknowledged already: commit now */
			send_commit(u);
	}
}

/* CONFIRMED carries the SHA-256 north holds: ours, or the file is not the one we offered. */
static int sha_in(zmq_msg_t *f, int nf, const char *sha)
{
	return nf >= 3 && zmq_msg_size(&f[2]) == 64 && !memcmp(zmq_msg_data(&f[2]), sha, 64);
}

/* North's reasons that are about the file alone (docs/uplink-protocol.md): its name held by
 * another appliance's file or transfer. They say nothing about north, so they neither space the
 * offers of other files nor hold alerts back: the file alone is held (hold()). Before, a site's
 * bulk file whose name another site had taken spaced every offer after each of its hourly
 * refusals and, were it an alert, held the alerts back too. (A file over north's size limit is
 * not one of them: a limit set too low refuses every segment, one after another, and the
 * spacing is what keeps that from taking the link.) */
static int about_the_file(const char *why)
{
	return !strncmp(why, "name taken:", 11) || !strncmp(why, "name in use:", 12);
}

/*
 * North refused the file (or confirmed another checksum): too large for it, a name it cannot
 * take, its disk full, the bytes damaged on the way. Some of these pass, some never do, and
 * apart from about_the_file() the sender cannot tell which. Retried at once, the same oldest
 * file would win every pick and hold back everything else of every class but alerts, for as
 * long as north refuses it. So a refused file is held back: twice the retry, doubled for every
 * refusal in a row, at most an hour, while the others go; it is checked against its sidecar
 * again before its next offer (a local file damaged after its check is then quarantined, not
 * resent for ever). The count of files held now is in the stats; a file that north confirms,
 * or that leaves outbox/, is forgotten. Then the connection starts over after uplink.retry and,
 * unless the refusal was about the file alone, the next file waits as spaced below.
 */
static void refused(op_uplink *u, int cls, const char *name, int rejected, const zmq_msg_t *why)
{
	/* north's reason, kept for the journal (printable characters only: it comes off the wire) */
	char r[160] = "";
	if (!rejected)
		snprintf(r, sizeof(r), "confirmed another file of this name");
	if (why) {
		size_t wl = zmq_msg_size((zmq_msg_t *)why), i;
		const char *w = zmq_msg_data((zmq_msg_t *)why);
		for (i = 0; i < wl && i < sizeof(r) - 1; i++)
			r[i] = w[i] >= 0x20 && w[i] < 0x7f ? w[i] : '?';
		r[i] = 0;
	}
	snprintf(u->stats.last_refusal, sizeof(u->stats.last_refusal), "%s: %s", name, r[0] ? r : "no reason given");
	/* every hold taken (16 files refused lately): the next refused file pushes one out, which is
	 * offered again at once; then even a refusal about a file alone spaces the offers */
	const int holds_full = held_now(u, now_ns()) == 16, file_only = rejected && about_the_file(r);
	hold(u, cls, name, 0)->own_fault = file_only;
	if (file_only)
		snprintf(u->stats.last_file_refusal, sizeof(u->stats.last_file_refusal), "%s: %s", name, r);
	for (int i = 0; i < 8; i++) /* checked again before it is offered again */
		if (!strcmp(u->verified[i].name, name))
			u->verified[i].name[0] = 0;
	u->stats.rejected++;
	if (file_only && !holds_full) {
		u->stats.refused_files_only++;
		reset(u, u->cfg.retry_ns);
		return;
	}
	/* Refusals, of any files, since north last confirmed one say more about north than about a
	 * file (its disk full, its syncs failing and offers paused): the next file starts after
	 * uplink.retry doubled with each of them, up to 15 minutes (never less than uplink.retry).
	 * Before, each refusal was followed after uplink.retry by the next file's offer and a new
	 * connection (the queue dropped), one file after another: at the default 5 s, 720 an hour,
	 * about a kilobyte each, all of a 2.4 kbit/s link. Meanwhile an alert still starts at
	 * once, until north refuses an alert too (op_uplink_step, spaced()). */
	const uint64_t wait = doubled(u->cfg.retry_ns ? u->cfg.retry_ns : 1000000000ull, u->refusals, 900000000000ull);
	u->refusals++;
	u->alert_refused |= cls == OP_UPLINK_ALERT;
	u->spaced_until_ns = now_ns() + wait;
	reset(u, u->cfg.retry_ns);
}

/* Offers spaced after refusals (refused()): 1 while no file may start now, none being an alert
 * that may (one refused since north's last confirmation, all wait). */
static int spaced(op_uplink *u, uint64_t now)
{
	char an[OP_XFER_NAME_MAX + 1];
	return now < u->spaced_until_ns && (u->alert_refused || pick_in(u, OP_UPLINK_ALERT, an, sizeof(an)) <= 0);
}

/* An answer from north that the protocol does not allow (a command it does not have, an offset
 * beyond the file): ignored, as before, but counted and kept for the journal (stage_uplink.c),
 * since a north that answers so leaves its transfers stuck without another word. Answers
 * about another file than the one under way are not odd: they come after every reset. */
static void odd_answer(op_uplink *u, const char *cmd, const char *name, uint64_t v, const char *why)
{
	u->stats.answers_ignored++;
	if (v == UINT64_MAX)
		snprintf(u->stats.last_ignored_answer, sizeof(u->stats.last_ignored_answer), "%.15s%s%.64s: %s", cmd,
			 name[0] ? " " : "", name, why);
	else
		snprintf(u->stats.last_ignored_answer, sizeof(u->stats.last_ignored_answer), "%.15s %.64s %" PRIu64 ": %s",
			 cmd, name, v, why);
	op_text_printable(u->stats.last_ignored_answer);
}

static void handle(op_uplink *u, zmq_msg_t *f, int nf)
{
	char cmd[16];
	size_t cl = zmq_msg_size(&f[0]);

	if (nf < 2 || cl >= sizeof(cmd)) {
		odd_answer(u, "?", "", UINT64_MAX, nf < 2 ? "an answer without a file name" : "an unknown command");
		return;
	}
	memcpy(cmd, zmq_msg_data(&f[0]), cl);
	cmd[cl] = 0;
	u->alert_retry_ns = 0; /* north answers */
	if (!strcmp(cmd, "PONG")) { /* the keepalive's answer: the link is up */
		u->last_rx_ns = u->last_pong_ns = now_ns();
		return;
	}
	if (strcmp(cmd, "HAVE") && strcmp(cmd, "ACK") && strcmp(cmd, "NAK") && strcmp(cmd, "CONFIRMED") &&
	    strcmp(cmd, "REJECTED")) {
		char about[65];
		size_t al = zmq_msg_size(&f[1]) < 64 ? zmq_msg_size(&f[1]) : 64;
		memcpy(about, zmq_msg_data(&f[1]), al);
		about[al] = 0;
		odd_answer(u, cmd, about, UINT64_MAX, "an unknown command");
		return;
	}
	uint64_t v = nf >= 3 && zmq_msg_size(&f[2]) == 8 ? op_xfer_get_u64(zmq_msg_data(&f[2])) : UINT64_MAX;
	if (u->tail.busy && zmq_msg_size(&f[1]) == strlen(u->tail.name) &&
	    !memcmp(zmq_msg_data(&f[1]), u->tail.name, strlen(u->tail.name))) {
		u->last_rx_ns = u->last_pong_ns = now_ns();
		if (!strcmp(cmd, "ACK") && v <= u->tail.size && v > u->tail.acked) {
			u->stats.bytes_acked += v - u->tail.acked;
			u->tail.acked = v;
		} else if (!strcmp(cmd, "NAK") && v <= u->tail.size) {
			u->stats.naks++;
			tail_rewind(u, v);
		} else if (!strcmp(cmd, "CONFIRMED") && sha_in(f, nf, u->tail.sha)) { /* to the COMMIT, or an OFFER sent ahead */
			confirmed(u, u->tail.cls, u->tail.name, u->tail.size, u->tail.fd);
			end_tail(u);
		} else if (!strcmp(cmd, "CONFIRMED") || !strcmp(cmd, "REJECTED")) {
			refused(u, u->tail.cls, u->tail.name, !strcmp(cmd, "REJECTED"), !strcmp(cmd, "REJECTED") && nf >= 3 ? &f[2] : NULL);
		} else if (v > u->tail.size) {
			odd_answer(u, cmd, u->tail.name, v, v == UINT64_MAX ? "without its 8-byte offset" : "beyond the file's size");
		}
		return;
	}
	if (u->st == IDLE)
		return;
	if (zmq_msg_size(&f[1]) != strlen(u->name) || memcmp(zmq_msg_data(&f[1]), u->name, strlen(u->name)))
		return; /* stale: about another file */
	u->last_rx_ns = u->last_pong_ns = now_ns();

	if (u->st == VERIFYING)
		return; /* not offered yet: nothing north says is about this file */
	if (!strcmp(cmd, "HAVE") && !u->have && v <= u->size) {
		struct held *h = held_entry(u, u->cls, u->name);
		if (h) /* north takes it now ("name in use" ended): no longer a file to rename */
			h->own_fault = 0;
		u->have = 1;
		if (v > 0)
			u->stats.resumes++;
		if (u->st == OFFERED) {
			u->next = u->acked = v;
		} else if (v > 0) { /* sent ahead from 0, but north holds part: resume at v; the chunks
				     * sent ahead come back as NAK(v), which is not a gap */
			u->next = u->acked = v;
			u->nak_at = v;
		}
		u->st = SENDING;
	} else if (!strcmp(cmd, "ACK") && u->st == SENDING && v <= u->next && v > u->acked) {
		u->stats.bytes_acked += v - u->acked;
		u->acked = v;
		u->nak_at = UINT64_MAX;
	} else if (!strcmp(cmd, "NAK") && u->st == SENDING && v <= u->size) {
		u->stats.naks++;
		if (v != u->nak_at) { /* every chunk after a gap NAKs the same offset: rewind once */
			u->nak_at = v;
			u->next = u->acked = v;
			u->st = SENDING;
		}
	} else if (!strcmp(cmd, "CONFIRMED") && sha_in(f, nf, u->sha)) { /* to the OFFER: north holds it already */
		confirmed(u, u->cls, u->name, u->size, u->fd);
		end_file(u);
	} else if (!strcmp(cmd, "CONFIRMED") || !strcmp(cmd, "REJECTED")) {
		refused(u, u->cls, u->name, !strcmp(cmd, "REJECTED"), !strcmp(cmd, "REJECTED") && nf >= 3 ? &f[2] : NULL);
	} else if (v > u->size) { /* HAVE, ACK or NAK: north holds, got or wants bytes the file has not.
				    * (An ACK beyond the bytes to send next is not odd: after chunks sent
				    * ahead of a HAVE that rewound, their ACKs still come.) */
		odd_answer(u, cmd, u->name, v, v == UINT64_MAX ? "without its 8-byte offset" : "beyond the file's size");
	}
}

static int write_synced(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	int bad = write(fd, data, len) != (ssize_t)len || fsync(fd) != 0;
	int e = errno;
	if (close(fd) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	return bad ? -(e ? e : EIO) : 0;
}

void op_uplink_name_part(const char *in, char *out, size_t cap)
{
	size_t i = 0;
	for (; *in && i + 1 < cap; in++)
		out[i++] = (*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') || (*in >= '0' && *in <= '9') || *in == '-'
				   ? *in
				   : '_';
	if (cap)
		out[i] = 0;
}

int op_uplink_publish(const char *dir, const char *name, const void *data, size_t len)
{
	char path[1100], tmp[1100], side[1100], hex[65], line[OP_XFER_NAME_MAX + 80];

	if (!op_xfer_name_ok(name, strlen(name)))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(side, sizeof(side), "%s/%s.sha256", dir, name);
	op_sha256_buf_hex(data, len, hex);
	int n = snprintf(line, sizeof(line), "%s  %s\n", hex, name);
	int e = write_synced(tmp, data, len);
	if (e == 0)
		e = write_synced(side, line, (size_t)n);
	if (e == 0 && rename(tmp, path) != 0)
		e = -errno;
	if (e < 0) {
		unlink(tmp);
		unlink(side);
		return e;
	}
	/* the rename, durable: if this fails the file is in place and will be sent, but a power cut
	 * could still take it back, and the caller is told so */
	return op_segment_sync_dir(dir) < 0 ? 1 : 0;
}

/* A tombstone north for an evicted file: outbox/alert/alert-tombstone-SITE-UTC-NAME.json. The
 * site and the time keep two sites' tombstones of a bulk file of one name (each site's
 * calib.tar), and one site's of a name evicted twice, apart: with the file's name alone the
 * second replaced the first north (in plaintext), was refused there as another appliance's name
 * (under CURVE: an alert refused for ever), or replaced the first here before it was sent. */
static void tombstone(op_uplink *u, int cls, const char *name, uint64_t size, const char *sha, const char *reason,
		      long rows)
{
	/* doc holds the longest of each part: a name of 200, the escaped site of up to 399 */
	char doc[1024], utc[32], stamp[32], tname[OP_XFER_NAME_MAX + 1];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	int n = snprintf(doc, sizeof(doc),
			 "{\"tombstone\":\"%s\",\"site\":\"%s\",\"class\":\"%s\",\"bytes\":%llu,\"rows\":%ld,"
			 "\"sha256\":\"%s\",\"reason\":\"%s\",\"utc\":\"%s\"}\n",
			 name, u->site_text, op_uplink_class_names[cls], (unsigned long long)size, rows, sha, reason, utc);
	/* a long name is cut to what fits in a name north accepts (the document has it whole) */
	int room = OP_XFER_NAME_MAX - (int)(strlen("alert-tombstone---.json") + strlen(u->site) + strlen(stamp));
	snprintf(tname, sizeof(tname), "alert-tombstone-%s-%s-%.*s.json", u->site, stamp, room, name);
	for (int k = 2; k < 100; k++) { /* one of this name already waiting (evicted twice this second) */
		char path[1200];
		snprintf(path, sizeof(path), "%s/%s", u->dirs[OP_UPLINK_ALERT], tname);
		if (access(path, F_OK) != 0)
			break;
		snprintf(tname, sizeof(tname), "alert-tombstone-%s-%s-%d-%.*s.json", u->site, stamp, k, room - 3, name);
	}
	if (n > 0 && (size_t)n < sizeof(doc) && op_uplink_publish(u->dirs[OP_UPLINK_ALERT], tname, doc, (size_t)n) >= 0)
		u->stats.tombstones++;
	else
		u->stats.tombstones_failed++; /* the eviction is still counted; status shows this too */
}

/* Oldest evictable file of class c (not the one being sent), its size and since when it is in
 * the outbox (*since: its mtime or its ctime, the later: a file copied in with its old mtime
 * kept, `cp -p` or `rsync -a`, gets a new ctime, as does one renamed into place). */
static int oldest_in(op_uplink *u, int c, char *name, size_t cap, uint64_t *size, time_t *since)
{
	DIR *d = opendir(u->dirs[c]);
	struct dirent *de;
	int found = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[1100];
		struct stat sb;
		if (!op_xfer_name_ok(de->d_name, n) || (c == u->cls && u->st != IDLE && !strcmp(de->d_name, u->name)) ||
		    (u->tail.busy && c == u->tail.cls && !strcmp(de->d_name, u->tail.name)))
			continue;
		if (!strncmp(de->d_name, "alert-tombstone-", 16))
			continue;
		const struct held *h = held_entry(u, c, de->d_name);
		if (h && h->local && now_ns() < h->until)
			continue; /* its sidecar unreadable or its quarantine failed lately: the next one */
		snprintf(path, sizeof(path), "%s/%s", u->dirs[c], de->d_name);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if (!found || strcmp(de->d_name, name) < 0) {
			snprintf(name, cap, "%s", de->d_name);
			*size = (uint64_t)sb.st_size;
			*since = sb.st_ctime > sb.st_mtime ? sb.st_ctime : sb.st_mtime;
			found = 1;
		}
	}
	closedir(d);
	return found;
}

/*
 * A file is checked against its sidecar before it is evicted: one that does not match is
 * evidence, not data to drop, and is quarantined. A large bulk file takes many seconds to hash,
 * longer than the supervisor waits for a report, so the check runs in slices, at most
 * cfg.evict_slice_ns (200 ms) a step, carried across steps as the check before sending is.
 */

/* Start checking cls/name for eviction. 1: settled at once (a malformed sidecar: quarantined;
 * the file gone: nothing to do; no readable sidecar or file: held back, the next one is looked
 * at), 0: the check is under way (u->ev). */
static int evict_start(op_uplink *u, int c, const char *name, uint64_t size, const char *reason)
{
	char path[1100], side[1200];
	snprintf(path, sizeof(path), "%s/%s", u->dirs[c], name);
	snprintf(side, sizeof(side), "%s.sha256", path);
	int sr = read_sidecar(side, u->ev.sha);
	if (sr == -EINVAL) {
		quarantine(u, c, name);
		return 1;
	}
	if (sr < 0) { /* no sidecar (an operator's copy under way?) or unreadable: not evicted now,
		       * held back so that the next oldest file is looked at */
		if (sr != -ENOENT)
			local_error(u, sr, "cannot read (to evict)", side);
		hold(u, c, name, 1);
		return 1;
	}
	if (!u->ev.buf && !(u->ev.buf = malloc(1u << 20)))
		return 1;
	u->ev.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (u->ev.fd < 0) {
		if (errno != ENOENT) {
			local_error(u, -errno, "cannot open (to evict)", path);
			hold(u, c, name, 1);
		}
		return 1;
	}
	snprintf(u->ev.name, sizeof(u->ev.name), "%s", name);
	u->ev.cls = c;
	u->ev.size = size;
	u->ev.reason = reason;
	op_sha256_init(&u->ev.ctx);
	u->ev.active = 1;
	return 0;
}

/* Go on with the check until the deadline. 1: settled (evicted, quarantined or abandoned). */
static int evict_step(op_uplink *u, uint64_t deadline)
{
	struct eviction *e = &u->ev;
	int eof = 0, rerr = 0;
	while (now_ns() < deadline) {
		ssize_t n = read(e->fd, e->buf, 1u << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rerr = errno;
			break;
		}
		if (n == 0) {
			eof = 1;
			break;
		}
		op_sha256_update(&e->ctx, e->buf, (size_t)n);
	}
	if (!eof && !rerr)
		return 0; /* the deadline (possibly before a single read): more next time */
	char path[1100], side[1200], actual[65];
	uint8_t dg[32];
	struct stat a, b;
	snprintf(path, sizeof(path), "%s/%s", u->dirs[e->cls], e->name);
	snprintf(side, sizeof(side), "%s.sha256", path);
	op_sha256_final(&e->ctx, dg);
	op_sha256_hex(dg, actual);
	int same = fstat(e->fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	close(e->fd);
	e->fd = -1;
	e->active = 0;
	if (!same)
		return 1; /* replaced or gone meanwhile: nothing checked is evicted */
	if (rerr || strcmp(e->sha, actual) != 0) {
		quarantine(u, e->cls, e->name);
		return 1;
	}
	/* the check may have taken minutes: is the file still to go? */
	struct statvfs fs;
	if (!strcmp(e->reason, "disk_full") && u->cfg.disk_reserve && statvfs(u->outbox, &fs) == 0 &&
	    (uint64_t)fs.f_bavail * fs.f_frsize >= u->cfg.disk_reserve)
		return 1;
	/* the events lost with a result segment, for north's books (0: not a segment) */
	size_t nl = strlen(e->name);
	long rows = nl > 3 && !strcmp(e->name + nl - 3, ".h5") ? op_segment_count_rows(path) : 0;
	if (unlink(path) != 0)
		return 1;
	unlink(side);
	forget_held(u, e->cls, e->name);
	u->stats.evicted_bytes += e->size;
	if (!strcmp(e->reason, "expired"))
		u->stats.evicted_expired++;
	else
		u->stats.evicted_disk_full++;
	tombstone(u, e->cls, e->name, e->size, e->sha, e->reason, rows);
	return 1;
}

/* Keep the reserve free: expired files first, then the lowest classes, never alerts. At most
 * evict_slice_ns of checking a call; a check not finished goes on at the next step. */
static void keep_reserve(op_uplink *u)
{
	static const int order[3] = {OP_UPLINK_BULK, OP_UPLINK_TELEMETRY, OP_UPLINK_RESULTS};
	struct statvfs fs;
	char name[OP_XFER_NAME_MAX + 1];
	uint64_t size;
	time_t since;
	const uint64_t deadline = now_ns() + u->cfg.evict_slice_ns;

	if (u->ev.active && !evict_step(u, deadline))
		return;
	if (u->cfg.max_age_s) {
		time_t now = time(NULL);
		for (int k = 0; k < 3; k++)
			for (int guard = 0; guard < 1000 && oldest_in(u, order[k], name, sizeof(name), &size, &since) &&
					    difftime(now, since) > (double)u->cfg.max_age_s;
			     guard++) {
				if (now_ns() >= deadline)
					return;
				if (!evict_start(u, order[k], name, size, "expired") && !evict_step(u, deadline))
					return;
			}
	}
	if (statvfs(u->outbox, &fs) != 0)
		return;
	u->stats.disk_free = (uint64_t)fs.f_bavail * fs.f_frsize;
	if (!u->cfg.disk_reserve)
		return;
	for (int k = 0; k < 3 && u->stats.disk_free < u->cfg.disk_reserve; k++) {
		for (int guard = 0; guard < 100000 && u->stats.disk_free < u->cfg.disk_reserve; guard++) {
			if (!oldest_in(u, order[k], name, sizeof(name), &size, &since))
				break;
			if (now_ns() >= deadline)
				return;
			if (!evict_start(u, order[k], name, size, "disk_full") && !evict_step(u, deadline))
				return;
			if (statvfs(u->outbox, &fs) != 0)
				return;
			u->stats.disk_free = (uint64_t)fs.f_bavail * fs.f_frsize;
			if (now_ns() >= deadline)
				return;
		}
	}
}

/* Held files that left outbox/ (renamed by the operator after north refused the name, deleted)
 * are forgotten: else status said "FILES NORTH REFUSES …" for ever after. Once a
 * second. */
static void forget_gone(op_uplink *u)
{
	for (int i = 0; i < 16; i++) {
		struct held *h = &u->held[i];
		char path[1200];
		if (!h->count)
			continue;
		snprintf(path, sizeof(path), "%s/%s", u->dirs[h->cls], h->name);
		if (access(path, F_OK) != 0 && errno == ENOENT)
			h->count = 0;
	}
}

int op_uplink_step(op_uplink *u, int timeout_ms)
{
	uint64_t now = now_ns();

	if (now - u->last_held_check_ns >= 1000000000ull) {
		u->last_held_check_ns = now;
		forget_gone(u);
	}

	if (u->stats.quota_exhausted && quota_day_new(u, today_utc())) /* UTC midnight (quota_day_new) */
		new_day(u, today_utc());
	u->stats.in_window = window_open(u);
	const int checking = u->ev.active;
	if (checking) /* an eviction check under way goes on at every step, a slice at a time */
		keep_reserve(u);
	if (now - u->last_evict_ns >= 500000000ull) { /* twice a second */
		u->last_evict_ns = now;
		if (!checking)
			keep_reserve(u);
		sweep_leftovers(u, now);
		if (!u->sock) { /* local only: the backlog figures */
			char name[OP_XFER_NAME_MAX + 1];
			int cls;
			pick(u, name, sizeof(name), &cls);
		}
	}
	if (!u->stats.in_window && u->sock) /* a window closed: no connection until the next */
		close_link(u);
	char alert[OP_XFER_NAME_MAX + 1];
	if (!u->sock && u->endpoint[0] && u->stats.in_window && now >= u->retry_at_ns && u->stats.quota_exhausted &&
	    (!alert_fits(u, alert, sizeof(alert)) || spaced(u, now))) {
		/* spent for today: no connection but for an alert (and, after refusals, one that may
		 * start: spaced()) */
		u->retry_at_ns = now + 200000000ull;
	} else if (!u->sock && u->endpoint[0] && u->stats.in_window && now >= u->retry_at_ns) {
		/* the socket could not be made (descriptors or memory short): tried again, not left
		 * "local only" for good */
		int rc = new_socket(u);
		/* reported through last_error; the stage goes on (parked: the quota, not a failure) */
		if ((!u->sock && !u->stats.quota_parked) || rc < 0) {
			u->stats.last_error = rc < 0 ? rc : -ENOMEM;
			u->retry_at_ns = now + (u->cfg.retry_ns ? u->cfg.retry_ns : 1000000000ull);
		}
	}
	if (!u->sock) {
		if (timeout_ms > 0)
			usleep((useconds_t)timeout_ms * 1000);
		return 0;
	}
	if (u->st == IDLE && now >= u->retry_at_ns && u->stats.in_window) {
		const int short_of_quota = u->stats.quota_exhausted, held_back = spaced(u, now);
		if (short_of_quota && (held_back || !alert_fits(u, alert, sizeof(alert)))) {
			/* Today's quota cannot carry the next file: that waits for UTC midnight, but an
			 * alert that fits in what is left goes (after refusals, when it may: spaced()).
			 * Meanwhile no connection: its keepalives would spend the room an alert needs */
			if (!u->tail.busy)
				rest_link(u, 200000000ull);
			else
				u->retry_at_ns = now + 200000000ull;
		} else if (held_back) {
			/* after refusals: the next file waits (an alert still goes, until one is refused) */
			u->retry_at_ns = now + 200000000ull < u->spaced_until_ns ? now + 200000000ull : u->spaced_until_ns;
		} else if (short_of_quota && u->hs_reserved) {
			/* an alert's connection under way: its OFFER waits for it (queued before, and
			 * the attempt failing, it was paid for and never sent) */
			u->retry_at_ns = now + 20000000ull;
		} else {
			int rc = start_next(u, short_of_quota ? alert : NULL);
			if (rc < 0)
				u->stats.last_error = rc;
			if (rc <= 0 && now - u->last_scan_ns > 0) {
				u->last_scan_ns = now;
				u->retry_at_ns = now + 200000000ull; /* rescan outbox/ 5 times a second */
			}
		}
	}
	if (u->st == VERIFYING) {
		char an[OP_XFER_NAME_MAX + 1];
		if (u->cls != OP_UPLINK_ALERT && now - u->last_alert_check_ns >= 20000000ull) {
			u->last_alert_check_ns = now;
			if (pick_in(u, OP_UPLINK_ALERT, an, sizeof(an)) > 0) { /* an alert goes first */
				u->stats.preemptions++;
				keep_check(u);
				end_file(u);
				u->retry_at_ns = 0;
			}
		}
		if (u->st == VERIFYING)
			verify_step(u);
		if (u->st == VERIFYING)
			timeout_ms = 0; /* more to check: only a glance at the socket */
	}
	pump(u);
	if (!u->sock) /* parked by what ran above (a reset with the quota spent) */
		return 0;
	/* built here: what ran above may have made a new socket */
	zmq_pollitem_t items[2] = {{.socket = u->sock, .events = ZMQ_POLLIN}, {.socket = u->mon, .events = ZMQ_POLLIN}};
	zmq_pollitem_t *it = &items[0];
	if (zmq_poll(items, u->mon ? 2 : 1, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (u->mon && (items[1].revents & ZMQ_POLLIN)) {
		int cut = 0, retry_parks = 0, alert_waits = 0;
		for (int k = 0; k < 16; k++) { /* event frame (16-bit id, 32-bit value), then the endpoint */
			zmq_msg_t ev, addr;
			zmq_msg_init(&ev);
			zmq_msg_init(&addr);
			if (zmq_msg_recv(&ev, u->mon, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&ev);
				zmq_msg_close(&addr);
				break;
			}
			if (zmq_msg_more(&ev))
				zmq_msg_recv(&addr, u->mon, 0);
			if (zmq_msg_size(&ev) >= 2) {
				uint16_t id;
				memcpy(&id, zmq_msg_data(&ev), 2);
				cut |= id == ZMQ_EVENT_DISCONNECTED;
				if (id == ZMQ_EVENT_CONNECTED) { /* its room was held since the attempt began */
					u->hs_reserved = 0;
					budget_count(u, handshake_cost(u));
				}
				if (id == ZMQ_EVENT_CONNECT_RETRIED) { /* ZeroMQ will try again on its own */
					uint64_t need = ATTEMPT_COST + (u->hs_reserved ? 0 : handshake_cost(u));
					if (quota_room(u) < need) {
						retry_parks = 1;
					} else if (u->stats.quota_exhausted) {
						alert_waits = 1; /* an alert's connection: not ZeroMQ's pace */
					} else {
						begin_attempt(u);
					}
				}
			}
			zmq_msg_close(&ev);
			zmq_msg_close(&addr);
		}
		if (retry_parks) { /* before ZeroMQ's next attempt (a second away at the least) */
			park(u);
			return 0;
		}
		if (alert_waits) {
			rest_link(u, alert_backoff(u));
			return 0;
		}
		if (cut && (u->st == OFFERED || u->st == SENDING || u->tail.busy)) {
			/* the connection broke under a transfer: what was on the way is lost; offer again
			 * on a new connection now (north says where to resume) instead of waiting out the
			 * timeout with the link idle */
			u->stats.disconnects++;
			reset(u, u->cfg.retry_ns);
			return 0;
		}
	}
	for (int i = 0; i < 256 && (it->revents & ZMQ_POLLIN); i++) {
		zmq_msg_t f[4];
		int nf = 0, more = 1;
		while (more) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, u->sock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			more = zmq_msg_more(&m);
			if (nf < 4)
				f[nf++] = m;
			else
				zmq_msg_close(&m);
		}
		if (nf == 0)
			break;
		handle(u, f, nf);
		for (int k = 0; k < nf; k++)
			zmq_msg_close(&f[k]);
		if (!u->sock) /* a reply's handling parked the link */
			return 0;
	}
	pump(u);
	if (!u->sock)
		return 0;
	now = now_ns();
	/* north's silence is a timeout only when it owes us an answer: not while every chunk sent
	 * is acknowledged and we are the ones holding back for the cap or the quota */
	int owed = u->st == OFFERED || u->st == SENDING || u->tail.busy; /* north owes us an answer */
	if (u->st == SENDING && u->budget_blocked && u->acked == u->next && !u->tail.busy)
		u->last_rx_ns = now;
	if (owed && now - u->last_rx_ns > u->cfg.timeout_ns) {
		u->stats.timeouts++;
		reset(u, u->cfg.retry_ns);
	}
	/* Keepalive: with nothing to send, ask north for a PONG every third of the timeout, so a
	 * dead link shows as down before there is anything to ship over it. */
	uint64_t every = u->cfg.timeout_ns / 3 > 1000000000ull ? u->cfg.timeout_ns / 3 : 1000000000ull;
	if (!owed && u->stats.in_window && !u->stats.quota_exhausted && now - u->last_ping_ns >= every &&
	    budget_take(u, wire_cost(u, 4 + strlen(u->name), 2) + TCPIP_BYTES, 0) == 0) { /* PING, name, PONG's ACK */
		if (send_frames(u, "PING", NULL, 0, NULL, 0, NULL, 0) == 0)
			u->stats.pings++;
		else /* not sent: not paid */
			budget_refund(u, wire_cost(u, 4 + strlen(u->name), 2) + TCPIP_BYTES);
		u->last_ping_ns = now;
	}
	/* an answer is due within the timeout of the last keepalive, which goes every `every`: with
	 * a timeout under 3 s (keepalives at least a second apart) the bare timeout had the link
	 * flap down and a new connection made, paid for, at every timeout */
	const uint64_t due = every + u->cfg.timeout_ns;
	u->stats.link_up = u->last_pong_ns && now - u->last_pong_ns <= due;
	/* Idle and unanswered that long on this socket: a new one. ZeroMQ does not reconnect after
	 * a refused handshake (north did not list our key); north may list it now. */
	uint64_t heard = u->last_pong_ns > u->socket_ns ? u->last_pong_ns : u->socket_ns;
	if (u->sock && !owed && u->stats.in_window && !u->stats.quota_exhausted && now - heard > due) {
		u->stats.reconnects++;
		new_socket(u);
	}
	return 0;
}
