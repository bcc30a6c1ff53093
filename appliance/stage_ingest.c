/*
 * stage_ingest.c — the ingest stage: receive, validate, account, and hold every accepted event
 * until the store says it is durable.
 *
 * NOTES ON THE DESIGN OF THE INGEST WINDOW
 *
 * Every accepted event gets a serial (a 64-bit number that starts at this incarnation's
 * wall-clock time in ns, so serials never repeat across restarts) and a slot in a ring of
 * window_events slots. A slot moves through:
 *
 *      accept ──▶ QUEUED ──send──▶ SENT ──ack from store──▶ FREE
 *                   ▲                │
 *                   └── resend ──────┘   (supervisor says a later stage restarted, or the
 *                                         backstop timer found it unacknowledged too long)
 *
 * Invariants:
 *  1. accepted = stored + dropped + in_flight at every report (in_flight = slots not FREE).
 *  2. A slot is FREE only after the store acknowledged its serial (it is sealed in outbox/)
 *     or after it was counted as dropped with a reason (resend_exhausted).
 *  3. When the window is full (ingest.window_events slots, or ingest.window_bytes of messages)
 *     we stop reading the PULL socket: the sender blocks at its high-water mark (lossless).
 *     Nothing is dropped for lack of room.
 *  4. The ring is bounded by window_events; message buffers by ingest.max_message_bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/stage.h"
#include "ingest/receiver.h"
#include "ingest/wal.h"
#include "ingest/wire.h"

/* After this many resends an event is taken to be what kills a later stage ("poison"). */
#define INGEST_MAX_RESENDS 8
/* How long a stopping ingest waits for its in-flight events to be sealed. */
#define INGEST_STOP_GRACE_NS 15000000000ull
/* told to keep its log ("keep", a stop for a spent restart budget), this grace instead of the
 * one above: what is not durable by then waits in the log for the next start anyway */
#define INGEST_KEEP_GRACE_NS 5000000000ull
/*
 * An ingest reads no event before the supervisor has one of its reports ("reported
 * <incarnation>" back on the control socket). Until then the supervisor names the previous
 * ingest to a successor, whose log is all that successor replays: an event accepted in that
 * time, by an ingest that then died, was in no log anyone replayed and in no count. Should the
 * word not come (a control socket that does not deliver), ingest reads anyway after this long
 * and says what that risks: a box that stops taking events is worse.
 */
#define INGEST_CONFIRM_WAIT_NS 10000000000ull

enum slot_state { SLOT_FREE = 0, SLOT_QUEUED, SLOT_SENT };

typedef struct slot {
	uint64_t serial;
	uint64_t sent_ns;
	uint8_t *buf; /* serial (8 bytes, little-endian) then the wire message */
	size_t len;
	uint32_t stream_id;
	uint64_t sequence;
	uint16_t resends;
	uint8_t state;
} slot;

#define INGEST_SEQ_WINDOW 4096	/* sequence numbers tracked per stream (ingest/seqtrack.h) */
#define INGEST_MAX_STREAMS 4096 /* streams tracked */

typedef struct ingest {
	op_stage_ctx *s;
	slot *slots;
	uint64_t cap;
	uint64_t base;        /* first serial of this incarnation */
	uint64_t head, tail;  /* serials: next to assign; oldest possibly not FREE */
	uint64_t send_cursor; /* lowest serial that may be QUEUED */
	uint64_t occupied;
	void *out, *ack, *ctl;
	/* counters */
	uint64_t accepted, accepted_live, stored, dropped_resend_exhausted, resends, resend_requests,
		backstop_resends, acks_unknown, sent, dropped_shutdown, rejected_reserved_stream,
		probes_sent, probes_acked;
	uint64_t backstop_ns; /* resend what is unacknowledged this long (ingest.resend_after) */
	/* the write-ahead log (ingest/wal.h) and what this incarnation took over from it */
	op_wal *wal;
	const char *wal_dir;
	int wal_verdict; /* 1 took over the predecessor's log; -1 it had one that was unusable; 0 none */
	uint64_t report_seq, recovered, pred_accepted, pred_stored, pred_dropped, dropped_not_recovered;
	uint64_t restarts_said, restarts_said_ns; /* numbering restarts (ingest/seqtrack.h) in the journal, and when */
	int wal_said_broken;
	int others_pending;  /* other incarnations' log files still to delete (confirmed()) */
	int confirmed;       /* the supervisor has a report of this incarnation: reading */
	int confirm_waived;  /* … or it did not say so within INGEST_CONFIRM_WAIT_NS: reading anyway */
	uint64_t started_ns; /* when this incarnation began waiting for that */
	uint64_t held_bytes, held_bytes_peak, max_bytes; /* what held messages take; ingest.window_bytes */
	int log_full_said; /* said that the log's pinned files reached ingest.window_bytes */
	int keep_at_stop;  /* "keep": a stop that does not drain leaves what is held in the log */
	uint64_t kept_in_log; /* so left, at the last stop (gauge kept_in_log) */
	uint64_t max_message_bytes;
} ingest;

static slot *slot_of(ingest *g, uint64_t serial)
{
	return &g->slots[(serial - g->base) % g->cap];
}

static void slot_free(ingest *g, slot *sl)
{
	free(sl->buf);
	sl->buf = NULL;
	g->held_bytes -= sl->len;
	sl->len = 0;
	sl->state = SLOT_FREE;
	g->occupied--;
	while (g->tail < g->head && slot_of(g, g->tail)->state == SLOT_FREE)
		g->tail++;
	if (g->send_cursor < g->tail)
		g->send_cursor = g->tail;
}

/*
 * Messages ingest may take now: free slots, and no more than the largest messages that fit in
 * what is left of ingest.window_bytes (at least one while under it), so the bytes held never
 * pass the budget by more than one message. At the budget, nothing: the sender blocks.
 */
static uint64_t window_room(const ingest *g)
{
	uint64_t slots = g->cap - (g->head - g->tail);
	/* the log, too: one event held long keeps every file after it (op_wal_pinned_bytes) */
	if (g->held_bytes >= g->max_bytes || op_wal_pinned_bytes(g->wal) >= g->max_bytes)
		return 0;
	uint64_t fit = (g->max_bytes - g->held_bytes) / (g->max_message_bytes + 8) + 1;
	return slots < fit ? slots : fit;
}

/* Holds msg in the next slot (QUEUED) and logs it. -1 when there is no room or memory. */
static int hold(ingest *g, const op_wire_header *h, const uint8_t *msg, size_t len)
{
	if (g->head - g->tail >= g->cap)
		return -1;
	slot *sl = slot_of(g, g->head);
	sl->buf = malloc(len + 8);
	if (!sl->buf)
		return -1;
	op_put_le64(sl->buf, g->head);
	memcpy(sl->buf + 8, msg, len);
	sl->len = len + 8;
	g->held_bytes += sl->len;
	if (g->held_bytes > g->held_bytes_peak)
		g->held_bytes_peak = g->held_bytes;
	sl->serial = g->head;
	sl->stream_id = h->stream_id;
	sl->sequence = h->sequence;
	sl->resends = 0;
	sl->state = SLOT_QUEUED;
	g->head++;
	g->occupied++;
	op_wal_event(g->wal, sl->buf, sl->len);
	return 0;
}

/*
 * Invariant 7: every rejected message gets a log line naming its stream, sequence (when its
 * header could be trusted) and reason. The log's rate limit (log.c) keyed by the reason bounds
 * them per reason, so a flood of one kind cannot fill the journal or hide the others. reason is
 * a static string (op_wire_strerror's, or a literal of the receiver's or of this file).
 */
static void log_rejection(void *ctx, const char *reason, int have_id, uint32_t stream, uint64_t sequence)
{
	char fields[128];
	(void)ctx;
	if (have_id) {
		snprintf(fields, sizeof(fields), "STREAM=%u\nSEQUENCE=%llu\nREASON=%s", stream, (unsigned long long)sequence,
			 reason);
		op_logk(OP_LOG_WARNING, reason, fields, "rejected stream %u sequence %llu (reason=%s)", stream,
			(unsigned long long)sequence, reason);
	} else {
		snprintf(fields, sizeof(fields), "REASON=%s", reason);
		op_logk(OP_LOG_WARNING, reason, fields,
			"rejected a message whose stream and sequence cannot be read (reason=%s)", reason);
	}
}

/* A sender's connection closed: said, as a message over ZeroMQ's limit otherwise is not (the
 * connection cut, the message and what was in flight behind it lost, counted only as missing).
 * Opened connections are counted, not logged. Bounded like the rejections (log.c). */
static void log_peer(void *ctx, int opened, const char *endpoint, uint64_t closed, uint64_t open)
{
	const ingest *g = ctx;
	if (opened)
		return;
	op_logk(OP_LOG_WARNING, "connection_closed", "REASON=connection_closed",
		"a sender's connection to %s closed (%llu so far, %llu open): a sender that stopped or "
		"restarted, a connection that was no ZeroMQ sender, or one that sent a message over %llu "
		"bytes (twice ingest.max_message_bytes), which ZeroMQ answers by closing the connection "
		"(that message and what was in flight behind it are lost, and count as missing: gap_events)",
		endpoint[0] ? endpoint : "the ingest endpoint", (unsigned long long)closed, (unsigned long long)open,
		(unsigned long long)(2 * g->max_message_bytes));
}

static int on_event(void *ctx, const op_wire_header *h, const uint8_t *msg, size_t len, int live)
{
	ingest *g = ctx;

	if (h->stream_id == OP_PROBE_STREAM) {
		g->rejected_reserved_stream++; /* only the appliance's own probe may use it */
		log_rejection(NULL, "reserved_stream", 1, h->stream_id, h->sequence);
		return 0;
	}
	if (hold(g, h, msg, len) < 0)
		return 1; /* no memory (we drain at most the room we have): the receiver counts it */
	g->accepted++;
	if (live)
		g->accepted_live++;
	return 0;
}

/* Mark SENT slots for resending; with older_than_ns == 0 every SENT slot. */
static void mark_resend(ingest *g, uint64_t now_ns, uint64_t older_than_ns)
{
	for (uint64_t sn = g->tail; sn < g->head; sn++) {
		slot *sl = slot_of(g, sn);
		if (sl->state != SLOT_SENT)
			continue;
		if (older_than_ns && now_ns - sl->sent_ns < older_than_ns)
			continue;
		if (sl->resends >= INGEST_MAX_RESENDS) {
			char fields[80];
			snprintf(fields, sizeof(fields), "STREAM=%u\nSEQUENCE=%llu\nREASON=resend_exhausted", sl->stream_id,
				 (unsigned long long)sl->sequence);
			op_logf(OP_LOG_ERR, fields,
				"stream %u sequence %llu dropped: still unacknowledged after %d resends "
				"(reason=resend_exhausted)",
				sl->stream_id, (unsigned long long)sl->sequence, INGEST_MAX_RESENDS);
			g->dropped_resend_exhausted++;
			op_wal_dropped(g->wal, sl->serial);
			slot_free(g, sl);
			continue;
		}
		sl->resends++;
		sl->state = SLOT_QUEUED;
		g->resends++;
		if (older_than_ns)
			g->backstop_resends++;
		if (sn < g->send_cursor)
			g->send_cursor = sn;
	}
}

static void send_queued(ingest *g, uint64_t now_ns)
{
	while (g->send_cursor < g->head) {
		slot *sl = slot_of(g, g->send_cursor);
		if (sl->state == SLOT_QUEUED) {
			if (zmq_send(g->out, sl->buf, sl->len, ZMQ_DONTWAIT) < 0)
				return; /* EAGAIN: infer is slow or restarting; try again later */
			sl->state = SLOT_SENT;
			sl->sent_ns = now_ns;
			g->sent++;
		}
		g->send_cursor++;
	}
}

static void handle_acks(ingest *g)
{
	zmq_msg_t m;

	for (;;) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, g->ack, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		const uint8_t *p = zmq_msg_data(&m);
		size_t n = zmq_msg_size(&m) / 8;
		for (size_t i = 0; i < n; i++) {
			uint64_t sn = op_get_le64(p + 8 * i);
			slot *sl;
			if (sn & OP_PROBE_SERIAL_BIT) {
				g->probes_acked++;
				continue;
			}
			if (sn < g->tail || sn >= g->head) {
				g->acks_unknown++; /* an earlier incarnation's, or already freed */
				continue;
			}
			sl = slot_of(g, sn);
			if (sl->state == SLOT_FREE || sl->serial != sn) {
				g->acks_unknown++;
				continue;
			}
			g->stored++;
			op_wal_acked(g->wal, sn);
			slot_free(g, sl);
		}
		zmq_msg_close(&m);
	}
}

/*
 * The start-up probe (stage.h): a down-going track along string 36, DOMs 11-30 (17 m apart,
 * hit 17 m / 0.3 m/ns = 57 ns apart), all HLC. Sent directly, outside the window: it is not
 * an accepted event, and if it is lost the supervisor asks again.
 */
static void send_probe(ingest *g)
{
	enum { NP = 20 };
	op_pulse p[NP];
	uint8_t buf[8 + OP_WIRE_HEADER_BYTES + NP * OP_WIRE_PULSE_BYTES];
	op_wire_header h;

	for (int i = 0; i < NP; i++)
		p[i] = (op_pulse){.sensor_id = 35 * 60 + 10 + (uint32_t)i, .time_ns = 56.7f * (float)i,
				  .charge_pe = 1.0f + 0.1f * (float)(i % 3), .flags = OP_PULSE_F_HLC};
	memset(&h, 0, sizeof(h));
	h.stream_id = OP_PROBE_STREAM;
	h.sequence = g->probes_sent;
	h.detector_time_ns = op_realtime_ns();
	h.pulse_count = NP;
	op_put_le64(buf, OP_PROBE_SERIAL_BIT | g->probes_sent);
	if (op_wire_encode(buf + 8, sizeof(buf) - 8, &h, p) < 0)
		return;
	if (zmq_send(g->out, buf, sizeof(buf), ZMQ_DONTWAIT) == (int)sizeof(buf))
		g->probes_sent++;
}

/* Backstop: only for messages lost without a restart we heard of. It must be far longer than
 * a segment's age, or every event would be resent while it waits for its seal. */
static uint64_t backstop_for(const op_config *cfg)
{
	uint64_t b = cfg->ingest_resend_after_ns;
	return b < 3 * cfg->store_rotate_age_ns ? 3 * cfg->store_rotate_age_ns : b;
}

/* The supervisor has a report of this incarnation: from now on it names this one, not the
 * predecessor, to a successor, so the predecessor's files may go (all this one took over from
 * them is in its own log, flushed before its first report), and events may be read. */
static void confirmed(ingest *g)
{
	if (g->confirmed)
		return;
	g->confirmed = 1;
	if (g->confirm_waived)
		op_info("the supervisor now has this ingest's reports");
	if (g->others_pending) {
		op_wal_remove_others(g->wal_dir, g->s->incarnation_ns);
		g->others_pending = 0;
	}
}

/* Events may be read: the supervisor has a report of this incarnation, or it waited in vain. */
static int may_read(const ingest *g)
{
	return g->confirmed || g->confirm_waived;
}

static void handle_ctl(ingest *g, uint64_t now_ns)
{
	char buf[64];
	unsigned long long inc;
	int n;

	while ((n = zmq_recv(g->ctl, buf, sizeof(buf) - 1, ZMQ_DONTWAIT)) >= 0) {
		buf[n < (int)sizeof(buf) - 1 ? n : (int)sizeof(buf) - 1] = 0;
		if (sscanf(buf, "reported %llu", &inc) == 1) {
			if (inc == g->s->incarnation_ns) /* not a word meant for an ingest before this one */
				confirmed(g);
		} else if (!strcmp(buf, "resend")) {
			g->resend_requests++;
			mark_resend(g, now_ns, 0);
		} else if (!strcmp(buf, "keep")) {
			/* the supervisor stops for its spent restart budget: systemd restarts outpostd
			 * with the run directory kept, and the next ingest takes this log over */
			g->keep_at_stop = 1;
		} else if (!strcmp(buf, "probe")) {
			send_probe(g);
		} else if (!strcmp(buf, "reload")) {
			/* the supervisor validated it and wrote it to effective.yaml */
			char path[OP_CFG_STR + 32];
			op_config c;
			op_config_defaults(&c);
			snprintf(path, sizeof(path), "%s/effective.yaml", g->s->cfg->run_dir);
			if (op_config_load_file(&c, path, NULL) == 0) {
				g->backstop_ns = backstop_for(&c);
				op_info("reloaded: resend after %.0f s", (double)g->backstop_ns / 1e9);
			} else {
				op_err("reload: cannot read %s; keeping the previous settings", path);
			}
		}
	}
}

static void add_mark(void *ctx, const op_seqtrack_mark *m)
{
	op_stage_ctx *s = ctx;
	char line[160];
	snprintf(line, sizeof(line), "%u %llu %llu %llu %llu %llu %llu", m->stream, (unsigned long long)m->next,
		 (unsigned long long)m->newest_ns, (unsigned long long)m->old_lo, (unsigned long long)m->old_hi,
		 (unsigned long long)m->old_ns, (unsigned long long)m->silent_ns);
	op_report_line(s, "m", line);
}

/*
 * Marks of the previous incarnation (stage.h): the supervisor writes, before it starts ingest
 * again, the per-stream marks of the last report it had, so that the same report defines both
 * what was accepted and where this incarnation picks up counting gaps.
 */
typedef struct marks {
	uint64_t pred_incarnation, pred_report; /* the predecessor and its last report received */
	int have_pred;
	uint32_t n, cap;
	op_seqtrack_mark *m;
} marks;

static op_seqtrack_mark *mark_of(marks *mk, uint32_t stream)
{
	for (uint32_t i = 0; i < mk->n; i++)
		if (mk->m[i].stream == stream)
			return &mk->m[i];
	return NULL;
}

/* A stream's mark: replacing the one there, or (replace 0) only when it is further on. */
static void put_mark(marks *mk, const op_seqtrack_mark *m, int replace)
{
	op_seqtrack_mark *old = mark_of(mk, m->stream);
	if (old) {
		if (replace || m->next > old->next)
			*old = *m;
		return;
	}
	if (mk->n == mk->cap) {
		uint32_t cap = mk->cap ? 2 * mk->cap : 64;
		op_seqtrack_mark *p = realloc(mk->m, cap * sizeof(*p));
		if (!p)
			return;
		mk->m = p;
		mk->cap = cap;
	}
	mk->m[mk->n++] = *m;
}

/* The supervisor's file: "pred <incarnation> <report>" (when there was a predecessor that
 * reported), then per stream from that report "<stream> <next> <newest detector time>
 * <old_lo> <old_hi> <old time> <silent ns>" (ingest/seqtrack.h, add_mark's line as the supervisor
 * received it). */
static void load_marks(const op_config *cfg, marks *mk)
{
	char path[OP_CFG_STR + 32], line[200];
	unsigned long long a, b, v[6];
	unsigned stream;

	snprintf(path, sizeof(path), "%s/ingest-marks", cfg->run_dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		memset(v, 0, sizeof(v));
		if (sscanf(line, "pred %llu %llu", &a, &b) == 2) {
			mk->pred_incarnation = a;
			mk->pred_report = b;
			mk->have_pred = 1;
		} else if (sscanf(line, "%u %llu %llu %llu %llu %llu %llu", &stream, &v[0], &v[1], &v[2], &v[3], &v[4],
				  &v[5]) == 7) { /* report lines come whole (a full report leaves them out) */
			op_seqtrack_mark m = {stream, v[0], v[1], v[2], v[3], v[4], v[5]};
			put_mark(mk, &m, 0);
		}
	}
	fclose(f);
}

typedef struct takeover {
	ingest *g;
	marks *mk;
	uint32_t max_pulses;
	op_seqtrack *seq; /* the log's sequence numbers, as the dead ingest's tracker took them */
} takeover;

/* The replay's tracker, seeded with these marks, has the streams where the dead ingest left
 * them: its marks replace them (lower too, where the log holds a restart of a numbering). */
static void take_mark(void *ctx, const op_seqtrack_mark *m)
{
	put_mark(ctx, m, 1);
}

/* One event of the predecessor's log: its sequence number counts, and if it was never freed
 * it is held again (a new serial in this window and this log) and resent. */
static void take_over(void *ctx, const uint8_t *msg, size_t len, int live)
{
	takeover *t = ctx;
	ingest *g = t->g;
	op_wire_header h;

	/* It was accepted once, so it must end held again or counted: an unreadable record (the
	 * wire CRCs guard it), a smaller window or no memory count as dropped (not_recovered). */
	if (op_wire_decode(&h, msg, len, t->max_pulses) != OP_WIRE_OK) {
		g->dropped_not_recovered += live;
		return;
	}
	/* Its sequence goes through a tracker seeded with the last report's marks, in the log's
	 * order, so that the streams continue where the dead ingest's tracker had them: a jump it
	 * had confirmed is followed (its events are not counted as missing again), and an event it
	 * took as "ahead" (unconfirmed, ingest/seqtrack.h) does not become the starting point, which
	 * would make every real event after it too old. Without a tracker for it (none, or its
	 * table full), only a stream the marks already hold moves on; one only the log knows
	 * starts afresh in the next ingest (its first event may be wild, and marked from it the
	 * stream would refuse every real event after it as too old). */
	op_seqtrack_mark *m;
	if ((!t->seq || op_seqtrack_observe(t->seq, h.stream_id, h.sequence, h.detector_time_ns) == OP_SEQ_STREAM_LIMIT) &&
	    (m = mark_of(t->mk, h.stream_id)) && h.sequence + 1 > m->next)
		m->next = h.sequence + 1;
	if (!live)
		return;
	if (hold(g, &h, msg, len) < 0)
		g->dropped_not_recovered++;
	else
		g->recovered++;
}

/*
 * Continuity with the previous ingest, if it died: take over what its log says it still held
 * (resent; the store deduplicates), count what it did after its last report exactly once,
 * and continue its sequence accounting, so that what it lost outside the log (queued in its
 * socket) shows as gap_events.
 */
static void take_over_predecessor(ingest *g, const op_config *cfg, op_receiver *r, const char *wal_dir)
{
	marks mk = {0};
	load_marks(cfg, &mk);
	if (mk.have_pred) {
		takeover t = {g, &mk, cfg->ingest_max_pulses, NULL};
		if (op_seqtrack_open(INGEST_MAX_STREAMS, INGEST_SEQ_WINDOW, &t.seq) == 0)
			for (uint32_t i = 0; i < mk.n; i++)
				op_seqtrack_seed(t.seq, &mk.m[i]);
		op_wal_replay_result res;
		int rc = op_wal_replay(wal_dir, mk.pred_incarnation, mk.pred_report, take_over, &t, &res);
		if (t.seq) {
			op_seqtrack_marks(t.seq, take_mark, &mk);
			op_seqtrack_close(t.seq);
		}
		if (rc == 0 && res.found && mk.pred_report == 0) {
			/* the log of an earlier outpostd (supervisor.c, leftover_ingest_log): what it
			 * counted went with that run; this run counts the events it takes back, once,
			 * as accepted now (sent on, or dropped as not_recovered) */
			g->wal_verdict = 1;
			g->pred_accepted = g->recovered + g->dropped_not_recovered;
			op_info("took over the log of an earlier outpostd's ingest: %llu events it still held are sent on"
				"%s",
				(unsigned long long)g->recovered, res.torn ? " (its last record was cut short)" : "");
		} else if (rc == 0 && res.found) {
			g->wal_verdict = 1;
			g->pred_accepted = res.after_accepted;
			g->pred_stored = res.after_acked;
			g->pred_dropped = res.after_dropped;
			op_info("took over from the previous ingest: %llu events it still held are resent; after its last "
				"report it had accepted %llu, seen %llu stored and dropped %llu%s",
				(unsigned long long)g->recovered, (unsigned long long)res.after_accepted,
				(unsigned long long)res.after_acked, (unsigned long long)res.after_dropped,
				res.torn ? " (its last record was cut short)" : "");
		} else {
			g->wal_verdict = -1;
			if (rc < 0)
				op_err("the previous ingest left no usable log in %s (%s): what it held is counted as "
				       "dropped (reason=ingest_crash)",
				       wal_dir, strerror(-rc));
			else if (res.files == 0) /* not a damaged log: none */
				op_err("the previous ingest (incarnation %llu) left no log in %s (an ingest gives its log up "
				       "after a write to it failed; a reboot empties %s): what it held is counted as dropped "
				       "(reason=ingest_crash), and its counts after its last report are not known",
				       (unsigned long long)mk.pred_incarnation, wal_dir, cfg->run_dir);
			else
				op_err("the previous ingest's log lacks its last report's checkpoint%s: the %llu events it "
				       "still holds are resent, what else the dead ingest held is counted as dropped "
				       "(reason=ingest_crash), and its counts after that report are not known",
				       res.torn ? " and has a damaged record" : "", (unsigned long long)g->recovered);
		}
	}
	if (g->dropped_not_recovered) /* invariant 7: every drop is said, with its reason */
		op_err("%llu events of the previous ingest's log could not be held again (a record that does not "
		       "decode, a smaller window, no memory): counted as dropped (reason=not_recovered)",
		       (unsigned long long)g->dropped_not_recovered);
	uint32_t n = 0;
	for (uint32_t i = 0; i < mk.n; i++)
		n += op_seqtrack_seed(op_receiver_seqtrack(r), &mk.m[i]) == 0;
	if (n)
		op_info("continuing the sequence accounting of %u streams from the previous ingest: events "
			"it lost show as gap_events",
			n);
	free(mk.m);
	op_wal_flush(g->wal, g->tail);
	/* All of it is in this incarnation's log now, but the predecessor's files go only once the
	 * supervisor has a report of this incarnation (confirmed()): until then it names the
	 * predecessor to whoever comes next, and deleting its files now would leave that successor
	 * nothing to take over if this one died first. */
	g->others_pending = 1;
}

static void report(ingest *g, op_receiver *r, uint64_t progress, int idle)
{
	op_stage_ctx *s = g->s;
	op_receiver_stats st;

	op_receiver_get_stats(r, &st);
	op_report_begin(s, progress, idle);
	op_report_counter(s, "received", st.received);
	op_report_counter(s, "received_bytes", st.bytes);
	op_report_counter(s, "accepted", g->accepted);
	op_report_counter(s, "accepted_live", g->accepted_live);
	op_report_counter(s, "stored", g->stored);
	op_report_counter(s, "dropped_resend_exhausted", g->dropped_resend_exhausted);
	op_report_counter(s, "dropped_shutdown", g->dropped_shutdown);
	op_report_gauge(s, "in_flight", (double)g->occupied);
	op_report_gauge(s, "window_events", (double)g->cap);
	op_report_gauge(s, "window_bytes", (double)g->max_bytes);
	op_report_gauge(s, "held_bytes", (double)g->held_bytes);
	op_report_gauge(s, "held_bytes_peak", (double)g->held_bytes_peak);
	op_report_gauge(s, "wal_pinned_bytes", (double)op_wal_pinned_bytes(g->wal));
	op_report_gauge(s, "kept_in_log", (double)g->kept_in_log);
	/* Holding events while waiting for the store's seal is waiting, not being stuck: a hung
	 * ingest shows as missing reports instead. */
	op_report_gauge(s, "blocked_downstream", g->occupied ? 1 : 0);
	op_report_counter(s, "sent", g->sent);
	op_report_counter(s, "resends", g->resends);
	op_report_counter(s, "resend_requests", g->resend_requests);
	op_report_counter(s, "backstop_resends", g->backstop_resends);
	op_report_counter(s, "acks_unknown", g->acks_unknown);
	op_report_counter(s, "rejected_reserved_stream", g->rejected_reserved_stream + st.reserved_stream);
	op_report_counter(s, "probes_sent", g->probes_sent);
	op_report_counter(s, "probes_acked", g->probes_acked);
	for (int i = 1; i < OP_WIRE_NERR; i++) {
		char key[64];
		snprintf(key, sizeof(key), "rejected_%s", op_wire_strerror(-i));
		op_report_counter(s, key, st.rejected[i]);
	}
	op_report_counter(s, "rejected_oversize", st.oversize);
	op_report_counter(s, "rejected_multipart", st.multipart);
	op_report_counter(s, "rejected_duplicate", st.duplicates);
	op_report_counter(s, "rejected_too_old", st.too_old);
	op_report_counter(s, "rejected_stream_limit", st.stream_limit);
	op_report_counter(s, "rejected_no_memory", st.caller_rejected);
	op_report_counter(s, "connections_opened", st.connections_opened);
	op_report_counter(s, "connections_closed", st.connections_closed);
	op_report_counter(s, "gap_events", st.seq.gap_events_total);
	op_report_counter(s, "late_events", st.seq.late_total);
	op_report_counter(s, "early_events", st.seq.early);
	op_report_counter(s, "ahead_events", st.seq.ahead);
	op_report_counter(s, "sequence_jumps", st.seq.jumps);
	op_report_counter(s, "sequence_restarts", st.seq.restarts);
	/* a few a run (its detector rebooting); at most one line a minute, should two detectors
	 * share a stream and flip it back and forth */
	if (st.seq.restarts != g->restarts_said &&
	    (!g->restarts_said_ns || op_now_ns() - g->restarts_said_ns >= 60000000000ull)) {
		g->restarts_said_ns = op_now_ns();
		if (st.seq.last_restart_lone)
			op_warn("stream %u: its first event (sequence %" PRIu64 ") was far from the ones after it; %d events "
				"in a row confirm its numbering at %" PRIu64 ": followed; %" PRIu64
				" restart%s of numberings so far",
				st.seq.last_restart_stream, st.seq.last_restart_from - 1, OP_SEQ_CONFIRM,
				st.seq.last_restart_to, st.seq.restarts, st.seq.restarts == 1 ? "" : "s");
		else
			op_warn("stream %u started its numbering again at %" PRIu64 " (it was at %" PRIu64 "; %d events in "
				"a row, newer than its newest, confirm it): followed; %" PRIu64
				" restart%s of numberings so far",
				st.seq.last_restart_stream, st.seq.last_restart_to, st.seq.last_restart_from,
				OP_SEQ_CONFIRM, st.seq.restarts, st.seq.restarts == 1 ? "" : "s");
		g->restarts_said = st.seq.restarts;
	}
	op_report_gauge(s, "streams", (double)st.seq.streams);
	op_report_counter(s, "streams_forgotten", st.seq.forgotten);
	op_report_counter(s, "recovered", g->recovered);
	op_report_counter(s, "pred_accepted", g->pred_accepted);
	op_report_counter(s, "pred_stored", g->pred_stored);
	op_report_counter(s, "pred_dropped", g->pred_dropped);
	op_report_counter(s, "dropped_not_recovered", g->dropped_not_recovered);
	op_report_gauge(s, "wal_verdict", g->wal_verdict);
	op_report_gauge(s, "wal_ok", op_wal_ok(g->wal));
	op_report_gauge(s, "supervisor_confirmed", g->confirmed); /* 0: the supervisor answers "reported" */
	/* The checkpoint goes into the log before the report leaves: whatever the supervisor last
	 * received, the log knows what happened after it. */
	char seq[24];
	snprintf(seq, sizeof(seq), "%llu", (unsigned long long)++g->report_seq);
	op_report_line(s, "rseq", seq);
	/* the marks last: should they ever outgrow the report, what is cut is theirs alone */
	op_seqtrack_marks(op_receiver_seqtrack(r), add_mark, s);
	op_wal_report(g->wal, g->report_seq);
	op_wal_flush(g->wal, g->tail);
	op_report_send(s);
}

int op_stage_ingest(op_stage_ctx *s)
{
	const op_config *cfg = s->cfg;
	op_receiver_config rc_cfg;
	op_receiver *r = NULL;
	ingest g;
	char ep[OP_CFG_STR + 32];
	int rc = 1, hwm = 1000, linger = 0;
	uint64_t progress = 0, last_backstop = op_now_ns(), stopping_since = 0;

	memset(&g, 0, sizeof(g));
	g.s = s;
	g.backstop_ns = backstop_for(cfg);
	g.cap = cfg->ingest_window_events;
	g.max_bytes = cfg->ingest_window_bytes;
	g.max_message_bytes = cfg->ingest_max_message_bytes;
	g.slots = calloc(g.cap, sizeof(slot));
	g.base = g.head = g.tail = g.send_cursor = s->incarnation_ns;
	if (!g.slots)
		goto out;

	g.out = zmq_socket(s->zctx, ZMQ_PUSH);
	zmq_setsockopt(g.out, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(g.out, ZMQ_LINGER, &linger, sizeof(linger));
	op_stage_endpoint(ep, sizeof(ep), cfg, "infer.sock");
	if (zmq_connect(g.out, ep) != 0)
		goto zfail;
	g.ack = zmq_socket(s->zctx, ZMQ_PULL);
	zmq_setsockopt(g.ack, ZMQ_LINGER, &linger, sizeof(linger));
	op_stage_endpoint(ep, sizeof(ep), cfg, "ack.sock");
	if (zmq_bind(g.ack, ep) != 0)
		goto zfail;
	g.ctl = zmq_socket(s->zctx, ZMQ_PULL);
	zmq_setsockopt(g.ctl, ZMQ_LINGER, &linger, sizeof(linger));
	op_stage_endpoint(ep, sizeof(ep), cfg, "ingest-ctl.sock");
	if (zmq_bind(g.ctl, ep) != 0)
		goto zfail;

	memset(&rc_cfg, 0, sizeof(rc_cfg));
	rc_cfg.pull_endpoint = cfg->ingest_pull;
	rc_cfg.sub_endpoint = cfg->ingest_sub;
	rc_cfg.rcvhwm = (int)cfg->ingest_rcvhwm;
	rc_cfg.max_pulses = cfg->ingest_max_pulses;
	rc_cfg.max_message_bytes = cfg->ingest_max_message_bytes;
	rc_cfg.max_streams = INGEST_MAX_STREAMS;
	rc_cfg.seq_window = INGEST_SEQ_WINDOW;
	rc_cfg.on_reject = log_rejection;
	rc_cfg.on_peer = log_peer;
	rc_cfg.has_reserved_stream = 1; /* only the appliance's own probe, made here, uses it */
	rc_cfg.reserved_stream = OP_PROBE_STREAM;
	int err = op_receiver_open(s->zctx, &rc_cfg, &r);
	if (err < 0) {
		op_err("cannot open receiver on '%s' / '%s': %s", cfg->ingest_pull, cfg->ingest_sub,
		       strerror(-err));
		goto out;
	}
	char wal_dir[OP_CFG_STR + 32];
	snprintf(wal_dir, sizeof(wal_dir), "%s/ingest-wal", cfg->run_dir);
	g.wal_dir = wal_dir;
	err = op_wal_open(wal_dir, s->incarnation_ns, 16u << 20, &g.wal);
	if (err < 0) /* run on without it: only a crash of this process would cost more */
		op_err("cannot open the ingest log in %s: %s; what ingest holds will not survive its crash",
		       wal_dir, strerror(-err));
	take_over_predecessor(&g, cfg, r, wal_dir);
	g.started_ns = op_now_ns();
	report(&g, r, 0, 1); /* at once: reading waits for the supervisor to have one */
	int keep_log = 0;
	op_info("accepting events on %s%s%s once the supervisor has this ingest's first report; window %llu events",
		cfg->ingest_pull,
		cfg->ingest_sub[0] ? ", live view from " : "", cfg->ingest_sub,
		(unsigned long long)g.cap);

	for (;;) {
		zmq_pollitem_t items[8];
		int n = 0, idle = 1;
		uint64_t room = window_room(&g);

		/* Stopping: take nothing new, wait (bounded) until what we hold is durable. */
		if (op_stage_stop) {
			if (!stopping_since) {
				stopping_since = op_now_ns();
				op_info("stopping: waiting for %llu events in flight to become durable",
					(unsigned long long)g.occupied);
			}
			if (g.occupied == 0)
				break;
			if (getppid() != s->supervisor_pid) {
				/* The supervisor is gone (it died, or systemd's watchdog ended it: the stages
				 * are told by PDEATHSIG). Counting what is held as dropped would go into a
				 * report nobody reads, and deleting the log would lose the events: the log
				 * stays for the next outpostd's ingest to take over (supervisor.c,
				 * leftover_ingest_log). systemd keeps the run directory across the restart
				 * (RuntimeDirectoryPreserve=restart). */
				op_warn("stopping: the supervisor is gone; the %llu events held stay in the log in %s "
					"for the next outpostd to take over", (unsigned long long)g.occupied, wal_dir);
				keep_log = 1;
				break;
			}
			if (op_now_ns() - stopping_since > INGEST_KEEP_GRACE_NS && g.keep_at_stop && g.wal &&
			    !g.wal_said_broken) {
				op_warn("stopping with %llu events not yet durable: they stay in the log in %s for "
					"the next outpostd to take over", (unsigned long long)g.occupied, wal_dir);
				g.kept_in_log = g.occupied;
				keep_log = 1;
				break;
			}
			if (op_now_ns() - stopping_since > INGEST_STOP_GRACE_NS) {
				op_err("stopping with %llu events not yet durable (reason=shutdown); "
				       "they are counted as dropped",
				       (unsigned long long)g.occupied);
				/* each into the log as given up ('D'), before the last report's checkpoint:
				 * should this process die before its log is removed, the next outpostd's
				 * ingest, taking the log over, does not send them on as well */
				for (uint64_t sn = g.tail, end = g.head; sn < end; sn++) {
					slot *sl = slot_of(&g, sn);
					if (sl->state == SLOT_FREE)
						continue;
					op_wal_dropped(g.wal, sl->serial);
					slot_free(&g, sl);
					g.dropped_shutdown++;
				}
				break;
			}
			room = 0;
		}

		items[n++] = (zmq_pollitem_t){.socket = g.ack, .events = ZMQ_POLLIN};
		items[n++] = (zmq_pollitem_t){.socket = g.ctl, .events = ZMQ_POLLIN};
		if (op_receiver_monitor_socket(r))
			items[n++] = (zmq_pollitem_t){.socket = op_receiver_monitor_socket(r), .events = ZMQ_POLLIN};
		if (g.send_cursor < g.head)
			items[n++] = (zmq_pollitem_t){.socket = g.out, .events = ZMQ_POLLOUT};
		if (room > 0 && may_read(&g))
			n += op_receiver_pollitems(r, items + n, 8 - n);
		if (zmq_poll(items, n, 100) < 0 && errno != EINTR)
			goto zfail;

		uint64_t now = op_now_ns();
		uint64_t stored_before = g.stored;
		handle_acks(&g);
		handle_ctl(&g, now);
		op_receiver_peers(r, &g);
		if (!may_read(&g) && now - g.started_ns >= INGEST_CONFIRM_WAIT_NS) {
			op_err("the supervisor has not said it has a report of this ingest in %.0f s: reading events "
			       "anyway; should this ingest die before the supervisor has one, what it accepted until "
			       "then is in no count (status: supervisor_confirmed 0)",
			       (double)INGEST_CONFIRM_WAIT_NS / 1e9);
			g.confirm_waived = 1;
		}
		room = op_stage_stop ? 0 : window_room(&g);
		const int log_full = op_wal_pinned_bytes(g.wal) >= g.max_bytes;
		if (log_full != g.log_full_said) {
			if (log_full)
				op_warn("ingest's log in %s keeps %llu MiB for an event held long (ingest.window_bytes): "
					"not reading until it is settled (stored, or given up after its resends)",
					wal_dir, (unsigned long long)(op_wal_pinned_bytes(g.wal) >> 20));
			else
				op_info("ingest's log is under ingest.window_bytes again: reading");
			g.log_full_said = log_full;
		}
		if (room > 0 && may_read(&g)) {
			long got = op_receiver_drain(r, room < 512 ? room : 512, on_event, &g);
			if (got > 0) {
				progress += (uint64_t)got;
				idle = 0;
			}
		}
		/* into the log before it leaves for infer: what another process may store is never
		 * missing from the log */
		int werr = op_wal_flush(g.wal, g.tail);
		if (werr < 0 && !g.wal_said_broken) {
			op_err("the ingest log in %s could not be written (%s): removed and no longer kept; what "
			       "ingest holds will not survive its crash (status: wal_ok 0)",
			       wal_dir, strerror(-werr));
			g.wal_said_broken = 1;
		}
		send_queued(&g, now);
		if (now - last_backstop >= 1000000000ull) {
			mark_resend(&g, now, g.backstop_ns);
			last_backstop = now;
		}
		if (g.occupied)
			idle = 0;
		/* Right after acknowledgements as well: should this process die, the supervisor's
		 * last report then already counts what became durable (nothing counted both
		 * stored and dropped). */
		if (op_report_due(s, now) || g.stored != stored_before)
			report(&g, r, progress + g.stored, idle);
	}
	rc = 0;
	report(&g, r, progress + g.stored, 1);
	/* A clean stop: everything held is durable or counted (dropped_shutdown); no successor
	 * may take it over again, nor a predecessor's log this one took over (kept until the
	 * supervisor confirmed this one otherwise; here removed even unconfirmed, since this
	 * incarnation settled all it took over, and the run directory outlives a restart of
	 * outpostd, whose ingest would send it all on again). Unless
	 * the log is kept (keep_log: the supervisor is gone, or told us to keep it): then the next
	 * outpostd's ingest takes it over, with what is still held. */
	if (!keep_log)
		op_wal_remove_others(wal_dir, s->incarnation_ns);
	op_wal_close(g.wal, !keep_log);
	g.wal = NULL;
	goto out;
zfail:
	op_err("ingest: a ZeroMQ socket (receiver, infer, acknowledgements or control) failed: %s",
	       zmq_strerror(errno));
out:
	op_wal_close(g.wal, 0);
	op_receiver_close(r);
	if (g.out)
		zmq_close(g.out);
	if (g.ack)
		zmq_close(g.ack);
	if (g.ctl)
		zmq_close(g.ctl);
	if (g.slots) {
		for (uint64_t i = 0; i < g.cap; i++)
			free(g.slots[i].buf);
		free(g.slots);
	}
	return rc;
}
