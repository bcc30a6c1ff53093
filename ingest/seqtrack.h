/*
 * seqtrack.h — per-stream sequence accounting: in order, gaps (events lost upstream), late
 * arrivals that fill a gap (reordering), duplicates, jumps ahead and restarted numberings (both
 * followed once confirmed). Bounded: at most max_streams streams and a window of recent
 * sequence numbers per stream. Never allocates after open, never logs.
 */
#ifndef OP_INGEST_SEQTRACK_H
#define OP_INGEST_SEQTRACK_H
#include <stdint.h>

typedef struct op_seqtrack op_seqtrack;

enum op_seq_verdict {
	OP_SEQ_FIRST = 0,    /* first event of a stream */
	OP_SEQ_IN_ORDER,     /* exactly the next one */
	OP_SEQ_AFTER_GAP,    /* new, after a jump: the skipped ones count as missing */
	OP_SEQ_LATE,         /* fills an earlier gap (or precedes the stream's first event: `early`) */
	OP_SEQ_DUPLICATE,    /* seen already (within the window) */
	OP_SEQ_TOO_OLD,      /* older than the window, or an old numbering's event sent again after
			      * a restart (its old time): cannot tell, treated as duplicate */
	OP_SEQ_STREAM_LIMIT, /* a stream beyond max_streams, none silent for OP_SEQ_IDLE_NS */
	OP_SEQ_AHEAD,        /* new, a window or more ahead, or below the stream's place and newer
			      * than the stream's newest (or, a window or more below, with the
			      * stream's first event alone seen): its numbering not yet confirmed */
	OP_SEQ_RESTART,      /* new: confirms a numbering started again below (a detector restarted,
			      * or the stream's lone first event was wild) */
};

/* A full table forgets a stream silent this long (its silence the longest) to take a new one */
#define OP_SEQ_IDLE_NS (3600ull * 1000000000ull)

/* Consecutive events that confirm a jump of a window or more, or a restarted numbering
 * (OP_SEQ_AHEAD until then) */
#define OP_SEQ_CONFIRM 4
/* How many distinct numbers taken far ahead (OP_SEQ_AHEAD) a stream keeps until a run is
 * confirmed or an event of its numbering in force arrives, so that those a confirmed jump
 * passes are not counted as missing (seqtrack.c) */
#define OP_SEQ_AHEAD_KEEP 16

typedef struct op_seqtrack_stats {
	uint64_t streams;   /* tracked now */
	uint64_t forgotten; /* streams silent for OP_SEQ_IDLE_NS forgotten to make room for new ones */
	uint64_t in_order;
	uint64_t gap_events_total; /* ever skipped; missing now = gap_events_total - late_total */
	uint64_t late_total;
	uint64_t early; /* arrived after a later one started the stream: missing never, late never */
	uint64_t duplicates;
	uint64_t too_old;
	uint64_t stream_limit;
	uint64_t ahead; /* taken as OP_SEQ_AHEAD */
	uint64_t jumps; /* jumps of a window or more, confirmed and followed */
	uint64_t restarts; /* numberings started again below the stream's place, confirmed and followed */
	uint32_t last_restart_stream; /* the last of them: its stream, */
	uint64_t last_restart_from, last_restart_to; /* where the stream was, where it went on, */
	int last_restart_lone;   /* and whether where it was came from its first event alone */
} op_seqtrack_stats;

int op_seqtrack_open(uint32_t max_streams, uint32_t window, op_seqtrack **ret);
/* The clock that measures a stream's silence (default: CLOCK_MONOTONIC_COARSE; NULL restores it). */
void op_seqtrack_set_clock(op_seqtrack *t, uint64_t (*clock)(void));
void op_seqtrack_close(op_seqtrack *t);
/* time_ns: the event's detector time, which tells a detector that started its numbering again
 * (newer than anything the stream sent) from old events sent again (not newer). */
int op_seqtrack_observe(op_seqtrack *t, uint32_t stream, uint64_t seq, uint64_t time_ns);
/* The event the last op_seqtrack_observe took as new (this stream and seq; called before any
 * other observe) could not be kept by the caller (no memory): its number is new again, so that
 * a resend of it is taken instead of refused as a duplicate, and until one comes it counts as
 * missing (a gap of one, the resend then late; a late one goes back into its gap, uncounted as
 * late or early). An AHEAD event gives its place in the unconfirmed run back, and its count.
 * What the event's arrival told stays: an event of the numbering in force still ended the
 * unconfirmed run (a detector did send it), and a run it confirmed stays followed. Nothing for
 * an event that was refused, or after another observe. */
void op_seqtrack_unsee(op_seqtrack *t, uint32_t stream, uint64_t seq);
void op_seqtrack_get_stats(const op_seqtrack *t, op_seqtrack_stats *out);

/*
 * Continuity across a restart of ingest: marks reported by the previous incarnation seed this
 * one, so that events lost with it — queued in its sockets, or taken after its last report —
 * show up as gap_events instead of vanishing. A seeded stream counts everything below `next`
 * (within the window) as seen; its newest detector time and the range a restart left are the
 * mark's (newest_ns 0: unknown, and until an event of its numbering arrives a numbering started
 * again below is not followed). Seeding counts the stream, no events. 0, or -ENOSPC beyond
 * max_streams.
 */
typedef struct op_seqtrack_mark {
	uint32_t stream;
	uint64_t next;           /* one past the highest sequence seen */
	uint64_t newest_ns;      /* the detector time of the event that last moved next (0: unknown) */
	uint64_t old_lo, old_hi; /* the numbering a restart left, [old_lo, old_hi) (equal: none), */
	uint64_t old_ns;         /* and its newest time: its events sent again are too old */
	uint64_t silent_ns;      /* how long the stream had been silent when the mark was taken */
} op_seqtrack_mark;
int op_seqtrack_seed(op_seqtrack *t, const op_seqtrack_mark *m);
/* Calls fn for every settled stream's mark (one whose first event is not all of its numbering
 * seen: a lone first event may be wild, and the next ingest starts such a stream afresh);
 * returns the number of marks. */
uint32_t op_seqtrack_marks(const op_seqtrack *t, void (*fn)(void *ctx, const op_seqtrack_mark *m), void *ctx);

#endif
