/*
 * test_seqtrack.c — in order, gaps, late arrivals, duplicates, too old, stream limit: exact
 * verdicts and counters.
 */
#include "ingest/seqtrack.h"
#include "unit/check.h"

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
	CHECK(op_seqtrack_observe(t, 1, 1000) == OP_SEQ_AFTER_GAP); /* 16..999 missing: 984 */
	CHECK(op_seqtrack_observe(t, 1, 14) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 1, 990) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 1001 - 128) == OP_SEQ_LATE); /* oldest still in the window */
	CHECK(op_seqtrack_observe(t, 1, 1001 - 129) == OP_SEQ_TOO_OLD);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.streams, 2);
	CHECK_EQ_U64(st.in_order, 1);
	CHECK_EQ_U64(st.gap_events_total, 3 + 984);
	CHECK_EQ_U64(st.late_total, 3);
	CHECK_EQ_U64(st.duplicates, 3);
	CHECK_EQ_U64(st.too_old, 2);
	CHECK_EQ_U64(st.stream_limit, 1);
	op_seqtrack_close(t);
	op_seqtrack_close(NULL);
	return check_finish("test_seqtrack");
}
