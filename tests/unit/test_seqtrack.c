/*
 * test_seqtrack.c — in order, gaps, late arrivals, duplicates, too old, stream limit: exact
 * verdicts and counters.
 */
#include <errno.h>

#include "ingest/seqtrack.h"
#include "unit/check.h"

struct seen {
	uint32_t n, stream[4];
	uint64_t next[4];
};

static void collect(void *ctx, uint32_t stream, uint64_t next)
{
	struct seen *s = ctx;
	s->stream[s->n] = stream;
	s->next[s->n++] = next;
}

int main(void)
{
	op_seqtrack *t = NULL;
	op_seqtrack_stats st;

	CHECK(op_seqtrack_open(0, 64, &t) < 0 && t == NULL);
	CHECK(op_seqtrack_open(2, 100, &t) == 0); /* window rounds up to 128 */
	CHECK(op_seqtrack_observe(t, 1, 10) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 1, 11) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 1, 11) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 15) == OP_SEQ_AFTER_GAP); /* 12, 13, 14 missing */
	CHECK(op_seqtrack_observe(t, 1, 13) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 13) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 10) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 2, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 3, 0) == OP_SEQ_STREAM_LIMIT);
	/* a jump of more than the window (128) is followed once four consecutive events confirm it
	 * with none of the numbering in force between them; until then they are new (AHEAD) and the
	 * stream stays where it was */
	CHECK(op_seqtrack_observe(t, 1, 1000) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1001) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1001) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 14) == OP_SEQ_LATE); /* the old numbering goes on: the run ends */
	CHECK(op_seqtrack_observe(t, 1, 1000) == OP_SEQ_AHEAD); /* a new run (the store removes the copy) */
	CHECK(op_seqtrack_observe(t, 1, 1001) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1002) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1003) == OP_SEQ_AFTER_GAP); /* 16..999 missing: 984 */
	CHECK(op_seqtrack_observe(t, 1, 1002) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 12) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 1, 990) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 1004 - 128) == OP_SEQ_LATE); /* oldest still in the window */
	CHECK(op_seqtrack_observe(t, 1, 1004 - 129) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 1, 1004) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.streams, 2);
	CHECK_EQ_U64(st.in_order, 2);
	CHECK_EQ_U64(st.gap_events_total, 3 + 984);
	CHECK_EQ_U64(st.late_total, 4);
	CHECK_EQ_U64(st.duplicates, 5);
	CHECK_EQ_U64(st.too_old, 2);
	CHECK_EQ_U64(st.stream_limit, 1);
	CHECK_EQ_U64(st.ahead, 5);
	CHECK_EQ_U64(st.jumps, 1);
	op_seqtrack_close(t);
	op_seqtrack_close(NULL);

	/* A second detector misconfigured onto a stream, its numbering far ahead and interleaved
	 * with the real one: its events are stored (AHEAD), and the stream is never taken over */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 6, 0) == OP_SEQ_FIRST);
	int real = 1, other = 1;
	for (uint64_t k = 1; k < 50; k++) {
		real &= op_seqtrack_observe(t, 6, k) == OP_SEQ_IN_ORDER;
		other &= op_seqtrack_observe(t, 6, 5000000 + k) == OP_SEQ_AHEAD;
	}
	CHECK(real);
	CHECK(other);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.jumps, 0);
	CHECK_EQ_U64(st.gap_events_total, 0);
	op_seqtrack_close(t);

	/* One message far ahead (a DAQ fault) and a stray one at the top of the range: the stream
	 * goes on, no events are counted as lost, and the tracker neither hangs nor wraps (a repeated
	 * 2^64 - 2 had made the loop over the skipped numbers run 2^64 times). */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 4, 100) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 4, 100 + 1000000000000ull) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX - 1) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX - 1) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX) == OP_SEQ_TOO_OLD); /* the decoder refuses it first */
	CHECK(op_seqtrack_observe(t, 5, UINT64_MAX) == OP_SEQ_TOO_OLD); /* and it starts no stream */
	for (uint64_t q = 101; q < 1101; q++)
		CHECK(op_seqtrack_observe(t, 4, q) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.in_order, 1000);
	CHECK_EQ_U64(st.gap_events_total, 0);
	CHECK_EQ_U64(st.too_old, 2);
	CHECK_EQ_U64(st.streams, 1);
	CHECK_EQ_U64(st.ahead, 2);
	CHECK_EQ_U64(st.jumps, 0);
	op_seqtrack_close(t);

	/* Continuity across an ingest restart: the marks of one tracker seed the next, so events
	 * lost in between (here 500..504) count as gap_events, and what the old one saw is a
	 * duplicate rather than a new first event. */
	op_seqtrack *a = NULL, *b = NULL;
	CHECK(op_seqtrack_open(4, 128, &a) == 0 && op_seqtrack_open(4, 128, &b) == 0);
	for (uint64_t q = 0; q < 500; q++)
		op_seqtrack_observe(a, 7, q);
	op_seqtrack_observe(a, 9, 41);
	struct seen seen = {0};
	CHECK(op_seqtrack_marks(a, collect, &seen) == 2 && seen.n == 2);
	for (uint32_t i = 0; i < seen.n; i++)
		CHECK(op_seqtrack_seed(b, seen.stream[i], seen.next[i]) == 0);
	CHECK(op_seqtrack_observe(b, 7, 499) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(b, 7, 505) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(b, 9, 42) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(b, &st);
	CHECK_EQ_U64(st.gap_events_total, 5);
	CHECK_EQ_U64(st.streams, 2);
	CHECK(op_seqtrack_seed(b, 1, 1) == 0 && op_seqtrack_seed(b, 2, 1) == 0);
	CHECK(op_seqtrack_seed(b, 3, 1) == -ENOSPC); /* bounded like observe */
	op_seqtrack_close(a);
	op_seqtrack_close(b);
	return check_finish("test_seqtrack");
}
