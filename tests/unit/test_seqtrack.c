/*
 * test_seqtrack.c — in order, gaps, late arrivals, duplicates, too old, stream limit: exact
 * verdicts and counters.
 */
#include <errno.h>

#include "ingest/seqtrack.h"
#include "unit/check.h"

struct seen {
	uint32_t n, stream[4];
	uint64_t next[4], newest[4];
	op_seqtrack_mark mark[4];
};

static void collect(void *ctx, const op_seqtrack_mark *m)
{
	struct seen *s = ctx;
	s->mark[s->n] = *m;
	s->stream[s->n] = m->stream;
	s->newest[s->n] = m->newest_ns;
	s->next[s->n++] = m->next;
}

#define SEC 1000000000ull
static uint64_t fake_now;
static uint64_t fake_clock(void)
{
	return fake_now;
}

/* op_seqtrack_marks → op_seqtrack_seed, as an ingest restart passes them on */
struct seed_ctx {
	op_seqtrack *into;
	int failed;
};

static void seed_into(void *ctx, const op_seqtrack_mark *m)
{
	struct seed_ctx *sa = ctx;
	sa->failed += op_seqtrack_seed(sa->into, m) != 0;
}

static int seed(op_seqtrack *t, uint32_t stream, uint64_t next, uint64_t newest_ns)
{
	op_seqtrack_mark m = {.stream = stream, .next = next, .newest_ns = newest_ns};
	return op_seqtrack_seed(t, &m);
}

int main(void)
{
	op_seqtrack *t = NULL;
	op_seqtrack_stats st;

	CHECK(op_seqtrack_open(0, 64, &t) < 0 && t == NULL);
	CHECK(op_seqtrack_open(2, 100, &t) == 0); /* window rounds up to 128 */
	CHECK(op_seqtrack_observe(t, 1, 10, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 1, 11, 0) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 1, 11, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 15, 0) == OP_SEQ_AFTER_GAP); /* 12, 13, 14 missing */
	CHECK(op_seqtrack_observe(t, 1, 13, 0) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 13, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 10, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 2, 0, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 3, 0, 0) == OP_SEQ_STREAM_LIMIT);
	/* a jump of more than the window (128) is followed once four consecutive events confirm it
	 * with none of the numbering in force between them; until then they are new (AHEAD) and the
	 * stream stays where it was */
	CHECK(op_seqtrack_observe(t, 1, 1000, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1001, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1001, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 14, 0) == OP_SEQ_LATE); /* the old numbering goes on: the run ends */
	CHECK(op_seqtrack_observe(t, 1, 1000, 0) == OP_SEQ_AHEAD); /* a new run (the store removes the copy) */
	CHECK(op_seqtrack_observe(t, 1, 1001, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1002, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1003, 0) == OP_SEQ_AFTER_GAP); /* 16..999 missing: 984 */
	CHECK(op_seqtrack_observe(t, 1, 1002, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 12, 0) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 1, 990, 0) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 1004 - 128, 0) == OP_SEQ_LATE); /* oldest still in the window */
	CHECK(op_seqtrack_observe(t, 1, 1004 - 129, 0) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 1, 1004, 0) == OP_SEQ_IN_ORDER);
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

	/* The new numbering out of order right at the jump: 1003 restarts the run, which 1006
	 * confirms from 1003 on. 1000 and 1001 were taken (stored) and 1002 comes late: only
	 * 12 … 999 are missing, 988, not 990 as when the run's start was counted from 1003 and the
	 * two taken ahead forgotten. Sent again, 1000 is a duplicate (it is stored). */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 1, 10, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 1, 11, 0) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 1, 1000, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1001, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1003, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1004, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1005, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1006, 0) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(t, 1, 1002, 0) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 1, 1000, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 1, 1007, 0) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.gap_events_total - st.late_total, 988);
	CHECK_EQ_U64(st.duplicates, 1);
	op_seqtrack_close(t);

	/* A wild number taken ahead, then the numbering in force goes on: it is forgotten. A jump
	 * confirmed later just past it counts its number missing, and the real event of that number,
	 * arriving late, is taken (kept, it was refused as a duplicate: lost). */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 1, 10, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 1, 11, 0) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 1, 5050, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 12, 0) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 1, 5100, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 5101, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 5102, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 5103, 0) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(t, 1, 5050, 0) == OP_SEQ_LATE);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.gap_events_total, 5100 - 13);
	CHECK_EQ_U64(st.late_total, 1);
	op_seqtrack_close(t);

	/* More than OP_SEQ_AHEAD_KEEP numbers taken ahead before the jump is confirmed: the last 16
	 * taken are kept (the run's own first three among them: 1014 … 1038 of the twenty below),
	 * the older ones count as missing */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 1, 10, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 1, 11, 0) == OP_SEQ_IN_ORDER);
	for (uint64_t q = 0; q < 20; q++) /* 1000, 1002, …, 1038: never four in a row */
		CHECK(op_seqtrack_observe(t, 1, 1000 + 2 * q, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1100, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1101, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1102, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 1, 1103, 0) == OP_SEQ_AFTER_GAP);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.gap_events_total, 1100 - 12 - 13);
	op_seqtrack_close(t);

	/* A second detector misconfigured onto a stream, its numbering far ahead and interleaved
	 * with the real one: its events are stored (AHEAD), and the stream is never taken over */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 6, 0, 0) == OP_SEQ_FIRST);
	int real = 1, other = 1;
	for (uint64_t k = 1; k < 50; k++) {
		real &= op_seqtrack_observe(t, 6, k, 0) == OP_SEQ_IN_ORDER;
		other &= op_seqtrack_observe(t, 6, 5000000 + k, 0) == OP_SEQ_AHEAD;
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
	CHECK(op_seqtrack_observe(t, 4, 100, 0) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 4, 100 + 1000000000000ull, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX - 1, 0) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX - 1, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 4, UINT64_MAX, 0) == OP_SEQ_TOO_OLD); /* the decoder refuses it first */
	CHECK(op_seqtrack_observe(t, 5, UINT64_MAX, 0) == OP_SEQ_TOO_OLD); /* and it starts no stream */
	for (uint64_t q = 101; q < 1101; q++)
		CHECK(op_seqtrack_observe(t, 4, q, 0) == OP_SEQ_IN_ORDER);
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
		op_seqtrack_observe(a, 7, q, 0);
	op_seqtrack_observe(a, 9, 41, 0);
	struct seen seen = {0};
	CHECK(op_seqtrack_marks(a, collect, &seen) == 1 && seen.n == 1); /* 9 has its first event alone */
	op_seqtrack_observe(a, 9, 40, 0);
	seen.n = 0;
	CHECK(op_seqtrack_marks(a, collect, &seen) == 2 && seen.n == 2);
	for (uint32_t i = 0; i < seen.n; i++)
		CHECK(seed(b, seen.stream[i], seen.next[i], 0) == 0);
	CHECK(op_seqtrack_observe(b, 7, 499, 0) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(b, 7, 505, 0) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(b, 9, 42, 0) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(b, &st);
	CHECK_EQ_U64(st.gap_events_total, 5);
	CHECK_EQ_U64(st.streams, 2);
	CHECK(seed(b, 1, 1, 0) == 0 && seed(b, 2, 1, 0) == 0);
	CHECK(seed(b, 3, 1, 0) == -ENOSPC); /* bounded like observe */
	op_seqtrack_close(a);
	op_seqtrack_close(b);

	/* A detector restarted its counter at 0 on the same stream (its clock goes on): followed
	 * once four events in a row, each newer than any the stream sent, confirm it; before, every
	 * later event was too old for as long as ingest ran. Old events sent again (old times) stay
	 * too old, a run broken by the old numbering is not followed, and after a seed (an ingest
	 * restart: the newest time unknown) nothing is followed until the stream's numbering is
	 * seen again. */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	uint64_t ns = 1000;
	for (uint64_t q = 5000; q < 5200; q++)
		CHECK(op_seqtrack_observe(t, 3, q, ns += 10) != OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 3, 10, 1500) == OP_SEQ_TOO_OLD);  /* an old one sent again */
	for (uint64_t q = 10; q < 20; q++) /* a burst of old ones sent again: never a restart */
		CHECK(op_seqtrack_observe(t, 3, q, 1000 + 10 * q) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 3, 0, ns + 1000) == OP_SEQ_AHEAD); /* the detector restarted */
	CHECK(op_seqtrack_observe(t, 3, 1, ns + 1010) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 3, 5200, ns += 10) == OP_SEQ_IN_ORDER); /* the old numbering: run ends */
	CHECK(op_seqtrack_observe(t, 3, 2, ns + 1020) == OP_SEQ_AHEAD);      /* a new run from 2 */
	CHECK(op_seqtrack_observe(t, 3, 3, ns + 1030) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 3, 4, ns + 1040) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 3, 5, ns + 1050) == OP_SEQ_RESTART);
	CHECK(op_seqtrack_observe(t, 3, 6, ns + 1060) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 3, 8, ns + 1080) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(t, 3, 7, ns + 1070) == OP_SEQ_LATE);
	/* the old numbering, now far ahead, sent again with its old times: too old, never a jump */
	for (uint64_t q = 5000; q < 5010; q++)
		CHECK(op_seqtrack_observe(t, 3, q, 1000 + 10 * (q - 4999)) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 3, 9, ns + 1090) == OP_SEQ_IN_ORDER);
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.restarts, 1);
	CHECK_EQ_U64(st.jumps, 0);
	CHECK_EQ_U64(st.gap_events_total, 1); /* 7, late: nothing lost */
	CHECK(st.last_restart_stream == 3 && st.last_restart_from == 5201 && st.last_restart_to == 2);
	CHECK_EQ_U64(st.too_old, 21);
	/* the marks carry the newest time to the next ingest: a restart is followed after it too */
	struct seen m3 = {0};
	CHECK(op_seqtrack_marks(t, collect, &m3) == 1 && m3.next[0] == 10 && m3.newest[0] == ns + 1090);
	op_seqtrack *t2 = NULL, *t3 = NULL;
	CHECK(op_seqtrack_open(4, 128, &t2) == 0 && op_seqtrack_open(4, 128, &t3) == 0);
	for (uint64_t q = 7000; q < 7100; q++)
		op_seqtrack_observe(t2, 5, q, 100000 + q);
	struct seen m5 = {0};
	CHECK(op_seqtrack_marks(t2, collect, &m5) == 1 && m5.next[0] == 7100 && m5.newest[0] == 107099);
	CHECK(seed(t3, 5, m5.next[0], m5.newest[0]) == 0);
	CHECK(op_seqtrack_observe(t3, 5, 7050, 107050) == OP_SEQ_DUPLICATE);
	for (uint64_t q = 0; q < 4; q++) /* the detector rebooted while ingest restarted */
		CHECK(op_seqtrack_observe(t3, 5, q, 200000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	op_seqtrack_close(t2);
	op_seqtrack_close(t3);
	CHECK(seed(t, 3, 9000, 0) == 0); /* a mark without a time (an older ingest's) */
	for (uint64_t q = 0; q < 6; q++)
		CHECK(op_seqtrack_observe(t, 3, q, ns + 5000 + q) == OP_SEQ_TOO_OLD);
	CHECK(op_seqtrack_observe(t, 3, 9000, ns + 6000) == OP_SEQ_IN_ORDER);
	for (uint64_t q = 0; q < 3; q++)
		CHECK(op_seqtrack_observe(t, 3, q, ns + 7000 + q) == OP_SEQ_AHEAD);
	CHECK(op_seqtrack_observe(t, 3, 3, ns + 7003) == OP_SEQ_RESTART);
	/* one wild timestamp does not stop later restarts: the newest time is the last event's */
	CHECK(op_seqtrack_observe(t, 3, 4, UINT64_MAX - 5) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 3, 5, ns + 7005) == OP_SEQ_IN_ORDER);
	for (uint64_t q = 0; q < 200; q++)
		CHECK(op_seqtrack_observe(t, 3, 6 + q, ns + 7006 + q) == OP_SEQ_IN_ORDER);
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 3, q, ns + 8000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	op_seqtrack_close(t);

	/* An event older than the one that started a stream fills no gap: not late, so that
	 * missing = gap_events - late_events never goes below what was lost. */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	CHECK(op_seqtrack_observe(t, 8, 101, 2) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 8, 100, 1) == OP_SEQ_LATE);
	CHECK(op_seqtrack_observe(t, 8, 100, 1) == OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 8, 103, 4) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(t, 8, 102, 3) == OP_SEQ_LATE);
	op_seqtrack_get_stats(t, &st);
	CHECK(st.early == 1 && st.late_total == 1 && st.gap_events_total == 1);
	/* A run a replay sees interleaved with events seen already (a restarted ingest, seeded at
	 * 104, replaying its log: 100…103 were taken before the report, another numbering's
	 * W…W+3 between them) is not confirmed, as it was not live. */
	CHECK(seed(t, 9, 104, 0) == 0);
	const uint64_t W = 900000;
	for (uint64_t k = 0; k < 4; k++) {
		CHECK(op_seqtrack_observe(t, 9, W + k, 10 + k) == OP_SEQ_AHEAD);
		CHECK(op_seqtrack_observe(t, 9, 100 + k, 0) == OP_SEQ_DUPLICATE);
	}
	CHECK(op_seqtrack_observe(t, 9, 104, 20) == OP_SEQ_IN_ORDER); /* the stream is where it was */
	op_seqtrack_get_stats(t, &st);
	CHECK_EQ_U64(st.jumps, 0);
	op_seqtrack_close(t);

	/* After a restart, a number of the old numbering sent again with its old time is too old
	 * even within a window above the new place (it would fill a gap with an old event and make
	 * the real one a duplicate); the new numbering reaching those numbers, newer, goes on. A
	 * jump ahead by a detector whose clock stepped back is followed all the same. */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	for (uint64_t q = 1000; q < 1100; q++)
		CHECK(op_seqtrack_observe(t, 2, q, 10000 + q) != OP_SEQ_TOO_OLD);
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 2, q, 20000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	for (uint64_t q = 4; q < 950; q++)
		CHECK(op_seqtrack_observe(t, 2, q, 20000 + q) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 2, 1050, 11050) == OP_SEQ_TOO_OLD);
	{ /* the range a restart left passes to the next ingest with the marks */
		struct seen m2 = {0};
		op_seqtrack *t4 = NULL;
		CHECK(op_seqtrack_marks(t, collect, &m2) == 1 && m2.mark[0].old_lo == 1000 && m2.mark[0].old_hi == 1100);
		CHECK(op_seqtrack_open(4, 128, &t4) == 0 && op_seqtrack_seed(t4, &m2.mark[0]) == 0);
		CHECK(op_seqtrack_observe(t4, 2, 1060, 11060) == OP_SEQ_TOO_OLD);
		CHECK(op_seqtrack_observe(t4, 2, 950, 20950) == OP_SEQ_IN_ORDER);
		op_seqtrack_close(t4);
	}
	CHECK(op_seqtrack_observe(t, 2, 960, 20960) == OP_SEQ_AFTER_GAP);
	CHECK(op_seqtrack_observe(t, 2, 955, 20955) == OP_SEQ_LATE);
	for (uint64_t q = 961; q < 1120; q++)
		CHECK(op_seqtrack_observe(t, 2, q, 20000 + q) == OP_SEQ_IN_ORDER);
	/* (stream 2 still holds the old range: a jump with older times is followed past it) */
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 2, 10000 + q, 100 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_AFTER_GAP));
	op_seqtrack_close(t);

	/* A wild first event — its number and its time both far beyond the real ones — does not
	 * settle the stream: four real events in a row far below it are followed whatever their
	 * times (before, every real event was too old, and its mark kept it so after an ingest
	 * restart). It leaves no old range: the real event of its number, reached later with an
	 * older time, is taken. A stream settled by a second event still refuses a burst of old
	 * events; a lone first event passes on no mark. */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	const uint64_t wild = 1000, wild_ns = UINT64_MAX / 2;
	CHECK(op_seqtrack_observe(t, 6, wild, wild_ns) == OP_SEQ_FIRST);
	struct seen m6 = {0};
	CHECK(op_seqtrack_marks(t, collect, &m6) == 0);
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 6, q, 5000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	op_seqtrack_get_stats(t, &st);
	CHECK(st.restarts == 1 && st.last_restart_lone == 1 && st.last_restart_from == wild + 1 && st.last_restart_to == 0);
	CHECK_EQ_U64(st.too_old, 0);
	for (uint64_t q = 4; q < 1100; q++)
		CHECK(op_seqtrack_observe(t, 6, q, 5000 + q) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_marks(t, collect, &m6) == 1 && m6.mark[0].next == 1100 && m6.mark[0].old_lo == m6.mark[0].old_hi);
	op_seqtrack_get_stats(t, &st);
	CHECK(st.gap_events_total == 0 && st.too_old == 0);
	CHECK(op_seqtrack_observe(t, 7, 5000, 10000) == OP_SEQ_FIRST);
	CHECK(op_seqtrack_observe(t, 7, 5001, 10001) == OP_SEQ_IN_ORDER);
	for (uint64_t q = 0; q < 8; q++) /* settled: old events sent again stay too old */
		CHECK(op_seqtrack_observe(t, 7, q, 1000 + q) == OP_SEQ_TOO_OLD);
	op_seqtrack_get_stats(t, &st);
	CHECK(st.restarts == 1 && st.too_old == 8);
	/* A wild first event far *below* the real numbering (a zero header's 0): the jump to the
	 * real one is followed with no gap counted (before: 10^12 events "lost"), and the stream's
	 * first is the real one's */
	CHECK(op_seqtrack_observe(t, 8, 0, 1) == OP_SEQ_FIRST);
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 8, wild * wild + q, 100 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_AFTER_GAP));
	CHECK(op_seqtrack_observe(t, 8, wild * wild - 2, 99) == OP_SEQ_LATE); /* before its first: early */
	op_seqtrack_get_stats(t, &st);
	CHECK(st.gap_events_total == 0 && st.jumps == 1 && st.early == 1);
	/* a seeded stream is settled: a burst of old events far below stays too old */
	CHECK(seed(t, 9, 5000, 10000) == 0);
	for (uint64_t q = 0; q < 8; q++)
		CHECK(op_seqtrack_observe(t, 9, q, 500 + q) == OP_SEQ_TOO_OLD);
	op_seqtrack_close(t);

	/* A numbering started again less than a window below (a readout rebooting within its first
	 * 4,096 events): its numbers were seen, but its times are newer than any the stream sent,
	 * where an event sent again repeats its time. Followed once four in a row confirm it;
	 * before, its events up to the old place were refused as duplicates. */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	for (uint64_t q = 0; q < 100; q++)
		CHECK(op_seqtrack_observe(t, 4, q, 1000 + q) != OP_SEQ_DUPLICATE);
	CHECK(op_seqtrack_observe(t, 4, 50, 1050) == OP_SEQ_DUPLICATE); /* sent again: its own time */
	CHECK(op_seqtrack_observe(t, 4, 0, 9000) == OP_SEQ_AHEAD);       /* the reboot */
	CHECK(op_seqtrack_observe(t, 4, 60, 1060) == OP_SEQ_DUPLICATE); /* the old numbering: run ends */
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 4, q, 9000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	for (uint64_t q = 4; q < 150; q++)
		CHECK(op_seqtrack_observe(t, 4, q, 9000 + q) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 4, 70, 1070) == OP_SEQ_TOO_OLD); /* the old numbering's, sent again */
	CHECK(op_seqtrack_observe(t, 4, 140, 9140) == OP_SEQ_DUPLICATE); /* the new one's */
	op_seqtrack_get_stats(t, &st);
	CHECK(st.restarts == 1 && st.last_restart_from == 100 && st.last_restart_to == 0 && st.too_old == 1);
	op_seqtrack_close(t);
	/* the same over an old numbering that lost an event: the new numbering's event landing on
	 * that gap is part of the restart, not a late arrival (which hid the loss: missing 0) */
	CHECK(op_seqtrack_open(4, 128, &t) == 0);
	for (uint64_t q = 0; q < 100; q++)
		if (q != 2)
			op_seqtrack_observe(t, 4, q, 1000 + q);
	for (uint64_t q = 0; q < 4; q++)
		CHECK(op_seqtrack_observe(t, 4, q, 9000 + q) == (q < 3 ? OP_SEQ_AHEAD : OP_SEQ_RESTART));
	op_seqtrack_get_stats(t, &st);
	CHECK(st.gap_events_total == 1 && st.late_total == 0 && st.last_restart_to == 0);
	op_seqtrack_close(t);

	/* A full table forgets the stream silent longest, once silent for an hour, to take a new
	 * one: a detector that starts each run on a new stream id is not refused from its
	 * max_streams+1-th run on. Streams that still send are never forgotten, and every stream
	 * kept is found where it was after the table moved entries (a thousand ids through 64). */
	CHECK(op_seqtrack_open(2, 128, &t) == 0);
	op_seqtrack_set_clock(t, fake_clock);
	fake_now = 1000;
	CHECK(op_seqtrack_observe(t, 1, 0, 1) == OP_SEQ_FIRST && op_seqtrack_observe(t, 1, 1, 2) == OP_SEQ_IN_ORDER);
	CHECK(op_seqtrack_observe(t, 2, 0, 1) == OP_SEQ_FIRST && op_seqtrack_observe(t, 2, 1, 2) == OP_SEQ_IN_ORDER);
	fake_now += 600 * SEC;
	CHECK(op_seqtrack_observe(t, 3, 0, 3) == OP_SEQ_STREAM_LIMIT); /* nobody silent for an hour */
	CHECK(op_seqtrack_observe(t, 2, 2, 3) == OP_SEQ_IN_ORDER);
	fake_now += 3000 * SEC + 1;
	CHECK(op_seqtrack_observe(t, 3, 0, 4) == OP_SEQ_FIRST); /* 1 silent 3,600 s: forgotten */
	op_seqtrack_get_stats(t, &st);
	CHECK(st.forgotten == 1 && st.streams == 2 && st.stream_limit == 1);
	CHECK(op_seqtrack_observe(t, 2, 3, 5) == OP_SEQ_IN_ORDER && op_seqtrack_observe(t, 3, 1, 5) == OP_SEQ_IN_ORDER);
	struct seen m7 = {0}; /* a forgotten stream passes on no mark */
	CHECK(op_seqtrack_marks(t, collect, &m7) == 2 && m7.stream[0] != 1 && m7.stream[1] != 1);
	CHECK(op_seqtrack_observe(t, 1, 2, 5) == OP_SEQ_STREAM_LIMIT); /* 2 and 3 send */
	op_seqtrack_close(t);
	CHECK(op_seqtrack_open(64, 128, &t) == 0);
	op_seqtrack_set_clock(t, fake_clock);
	int lost = 0;
	for (uint32_t run = 0; run < 1000; run++) {
		fake_now += 3601 * SEC; /* each run an hour and more after the last */
		/* two home slots of the 128, in no regular order: long probe runs, and a forgotten
		 * entry's slot not always taken again by the next new one */
		uint32_t id = run * 128u + ((run * 2654435761u >> 28) & 1 ? 3 : 70);
		lost += op_seqtrack_observe(t, id, 0, 1) != OP_SEQ_FIRST;
		lost += op_seqtrack_observe(t, 5, run, 1 + run) != (run ? OP_SEQ_IN_ORDER : OP_SEQ_FIRST);
		for (uint32_t back = 1; back <= 40 && back <= run; back++) /* the last 40 runs, still known */
			lost += op_seqtrack_observe(t, (run - back) * 128u + (((run - back) * 2654435761u >> 28) & 1 ? 3 : 70), 0,
						    1) != OP_SEQ_DUPLICATE;
	}
	op_seqtrack_get_stats(t, &st);
	CHECK(lost == 0 && st.streams == 64 && st.forgotten == 1001 - 64 && st.stream_limit == 0);
	op_seqtrack_close(t);

	/* Forgetting the stream in the table's last slot: the one after it, in slot 0 and at home
	 * there, stays (the probe run wraps); the forgotten one's bitmap, reused, starts empty
	 * (an early event of the new stream is not a duplicate of the old one's numbers). */
	{
		uint32_t at_end = 0, at_0 = 0; /* ids whose home is slot 127, and slot 0, of 128 */
		while (((at_end * 2654435761u) & 127) != 127)
			at_end++;
		while (((at_0 * 2654435761u) & 127) != 0 || at_0 == 0)
			at_0++;
		CHECK(op_seqtrack_open(64, 128, &t) == 0);
		op_seqtrack_set_clock(t, fake_clock);
		fake_now = 100 * 3600 * SEC;
		for (uint64_t q = 0; q < 128; q++) /* every bit of its bitmap set */
			op_seqtrack_observe(t, at_end, q, 1 + q);
		fake_now += 2 * 3600 * SEC;
		CHECK(op_seqtrack_observe(t, at_0, 0, 1) == OP_SEQ_FIRST && op_seqtrack_observe(t, at_0, 1, 2) == OP_SEQ_IN_ORDER);
		for (uint32_t k = 0; k < 62; k++) /* the rest of the table, away from slots 127 and 0 */
			CHECK(op_seqtrack_observe(t, 1000 + 2 * k, 0, 1) == OP_SEQ_FIRST);
		fake_now += 3600 * SEC + 1;
		CHECK(op_seqtrack_observe(t, 77777, 200, 1) == OP_SEQ_FIRST); /* forgets at_end */
		op_seqtrack_get_stats(t, &st);
		CHECK(st.forgotten == 1);
		CHECK(op_seqtrack_observe(t, at_0, 1, 2) == OP_SEQ_DUPLICATE); /* still known */
		CHECK(op_seqtrack_observe(t, 77777, 150, 1) == OP_SEQ_LATE);   /* early, not a duplicate */
		op_seqtrack_close(t);
	}

	/* A full table passed to the next ingest: each stream's silence goes with its mark, so a
	 * new stream still takes the place of one silent for an hour (before, seeded as heard from
	 * that moment, all 64 kept every new stream out for an hour) */
	{
		op_seqtrack *full = NULL, *next_t = NULL;
		CHECK(op_seqtrack_open(64, 128, &full) == 0 && op_seqtrack_open(64, 128, &next_t) == 0);
		op_seqtrack_set_clock(full, fake_clock);
		op_seqtrack_set_clock(next_t, fake_clock);
		for (uint32_t k = 0; k < 64; k++)
			CHECK(op_seqtrack_observe(full, 500 + k, 0, 1) == OP_SEQ_FIRST &&
			      op_seqtrack_observe(full, 500 + k, 1, 2) == OP_SEQ_IN_ORDER);
		fake_now += 10 * 3600 * SEC;
		struct seed_ctx sa = {next_t, 0};
		CHECK(op_seqtrack_marks(full, seed_into, &sa) == 64 && sa.failed == 0);
		CHECK(op_seqtrack_observe(next_t, 9999, 0, 1) == OP_SEQ_FIRST);
		op_seqtrack_get_stats(next_t, &st);
		CHECK(st.forgotten == 1 && st.stream_limit == 0 && st.streams == 64);
		op_seqtrack_close(full);
		op_seqtrack_close(next_t);
	}

	/* An event ingest took but could not keep (no memory for it: rejected_no_memory) is not
	 * marked seen: the detector's resend of it is taken, not refused as a duplicate, and until
	 * then it counts as missing. Before, the resend was a duplicate and the event lost for good. */
	{
		op_seqtrack *u = NULL;
		CHECK(op_seqtrack_open(4, 128, &u) == 0);
		CHECK(op_seqtrack_observe(u, 1, 10, 1) == OP_SEQ_FIRST);
		op_seqtrack_unsee(u, 1, 10);
		CHECK(op_seqtrack_observe(u, 1, 11, 2) == OP_SEQ_IN_ORDER);
		op_seqtrack_unsee(u, 1, 11);
		op_seqtrack_get_stats(u, &st);
		CHECK_EQ_U64(st.gap_events_total - st.late_total, 2); /* both missing, */
		CHECK(op_seqtrack_observe(u, 1, 11, 2) == OP_SEQ_LATE);     /* until sent again */
		CHECK(op_seqtrack_observe(u, 1, 10, 1) == OP_SEQ_LATE);
		CHECK(op_seqtrack_observe(u, 1, 11, 2) == OP_SEQ_DUPLICATE); /* kept now: a copy is a duplicate */
		CHECK(op_seqtrack_observe(u, 1, 14, 3) == OP_SEQ_AFTER_GAP);
		op_seqtrack_unsee(u, 1, 14);
		CHECK(op_seqtrack_observe(u, 1, 13, 3) == OP_SEQ_LATE);
		op_seqtrack_unsee(u, 1, 13);
		op_seqtrack_unsee(u, 1, 13); /* again: nothing more to take back */
		CHECK(op_seqtrack_observe(u, 1, 14, 3) == OP_SEQ_LATE);
		CHECK(op_seqtrack_observe(u, 1, 12, 3) == OP_SEQ_LATE);
		CHECK(op_seqtrack_observe(u, 1, 13, 3) == OP_SEQ_LATE);
		op_seqtrack_get_stats(u, &st);
		CHECK_EQ_U64(st.gap_events_total, st.late_total); /* all sent again: nothing missing */
		CHECK_EQ_U64(st.late_total, 5); /* the five kept late, not the one taken back */
		CHECK_EQ_U64(st.in_order, 0);  /* 11 was not kept in order: it came late */
		/* far ahead: its place in the unconfirmed run given back, so that its resend carries
		 * the run on instead of being a duplicate of it */
		CHECK(op_seqtrack_observe(u, 1, 1000, 4) == OP_SEQ_AHEAD);
		CHECK(op_seqtrack_observe(u, 1, 1001, 5) == OP_SEQ_AHEAD);
		op_seqtrack_unsee(u, 1, 1001);
		CHECK(op_seqtrack_observe(u, 1, 1001, 5) == OP_SEQ_AHEAD);
		CHECK(op_seqtrack_observe(u, 1, 1002, 6) == OP_SEQ_AHEAD);
		CHECK(op_seqtrack_observe(u, 1, 1003, 7) == OP_SEQ_AFTER_GAP); /* confirmed: 15 … 999 missing */
		op_seqtrack_get_stats(u, &st);
		CHECK_EQ_U64(st.gap_events_total - st.late_total, 985);
		/* a refused event (a duplicate) takes nothing back */
		CHECK(op_seqtrack_observe(u, 1, 1002, 6) == OP_SEQ_DUPLICATE);
		op_seqtrack_unsee(u, 1, 1002);
		CHECK(op_seqtrack_observe(u, 1, 1002, 6) == OP_SEQ_DUPLICATE);
		op_seqtrack_close(u);
	}
	return check_finish("test_seqtrack");
}
