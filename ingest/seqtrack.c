/*
 * seqtrack.c — see seqtrack.h.
 *
 * Per stream: `next` (one past the highest sequence seen) and a bitmap of the last `window`
 * sequence numbers below next (bit set = seen). Streams live in an open-addressing table of
 * 2·max_streams slots (linear probing) with their bitmaps preallocated in one block.
 *
 * A full table forgets the stream silent longest, once it has been silent for OP_SEQ_IDLE_NS,
 * to take a new one. Without that a detector that starts every run on a new stream id, as the
 * wire contract allows, had its events refused (`stream_limit`) from its 4,097th run on, for
 * good: the marks carried every stream ever seen into the next ingest. A forgotten stream that
 * sends again starts afresh (its first event, no gap counted for its silence).
 *
 * A jump ahead by the window or more is followed only once OP_SEQ_CONFIRM consecutive events
 * carry the new numbering (the run [run_from, run_next)) with no event of the numbering in
 * force between them (one in order, after a gap within the window, late, seen already or too
 * old ends the run).
 * Until then those events are taken as new (OP_SEQ_AHEAD) and `next` stays: one message with a
 * wild sequence number — a DAQ fault, a second detector misconfigured onto the stream — would
 * otherwise count up to 2^64 events as lost and turn every later real event into "too old",
 * for as long as the appliance ran. Events of a run that is never confirmed are stored but not
 * remembered in the bitmap: a resend of one is taken again (the store removes the copy). The
 * last OP_SEQ_AHEAD_KEEP distinct numbers taken so are kept, though, so that a run confirmed past
 * them does not count them as missing: events of the new numbering that came out of order at
 * the jump (1000, 1001, 1003, 1004, … restarts the run at 1003) had been counted lost although
 * stored. Older ones, beyond that many, still count as missing when a run passes them, and so
 * do those taken before an event of the numbering in force ended their run (end_run).
 *
 * A numbering started again a window or more below `next` (a detector that restarted its
 * counter at 0 on the same stream, against the wire contract) is followed the same way, once
 * OP_SEQ_CONFIRM consecutive events carry it, each with a detector time newer than the
 * stream's newest: old events sent again repeat their old times and stay "too old", in either
 * direction (after a restart the old numbering lies ahead). Without this the stream's every
 * later event was rejected as too old, for as long as ingest ran. The newest time is that of
 * the event that last moved `next` (not the largest ever seen: one wild timestamp would
 * otherwise stop every later restart from being followed).
 *
 * A stream's first event alone does not settle where it stands: until a second event of its
 * numbering arrives (within the window of it), a run far below is followed whatever its times.
 * Otherwise one wild *first* event — a sequence number and a detector time both far beyond the
 * real ones, a DAQ fault at its start — made every real event after it "too old", and with its
 * mark passed on to the next ingest, for good. Such a stream passes on no mark (marks are of
 * settled streams only): the next ingest starts it afresh.
 */
#include "ingest/seqtrack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct stream {
	uint64_t next;
	uint32_t id;
	uint32_t used;
	uint64_t *bits;
	uint64_t run_from, run_next; /* an unconfirmed run far ahead or behind; run_next == run_from: none */
	uint64_t newest_ns;          /* the time of the event that last moved next; */
	int newest_known;            /* 0 after a seed, until an event of its numbering arrives */
	int run_back;                /* the run is below next (a restart), not ahead */
	int settled;                 /* 0 while its first event is all of its numbering seen */
	uint64_t first;              /* the lowest sequence of its numbering seen (0 after a seed) */
	uint64_t old_lo, old_hi, old_ns; /* the numbering a restart left: [old_lo, old_hi), its newest time */
	uint64_t seen_ns;                /* the clock when it last sent (or was seeded) */
	uint64_t ahead[OP_SEQ_AHEAD_KEEP]; /* distinct numbers taken as AHEAD far ahead since the
					    * stream last took one of its numbering in force (a ring) */
	uint32_t n_ahead, ahead_head;      /* how many it holds (at most OP_SEQ_AHEAD_KEEP); the next slot */
} stream;

struct op_seqtrack {
	stream *tab;
	uint64_t *bits;
	uint32_t slots, max_streams, nstreams;
	uint32_t words; /* window / 64 */
	op_seqtrack_stats st;
	uint64_t (*clock)(void);
	uint64_t none_idle_until; /* full, and no stream silent long enough before then */
	struct { /* what the last observe did that op_seqtrack_unsee takes back */
		int valid, verdict;
		uint32_t id;
		uint64_t seq;
		uint64_t run_from, run_next; /* the stream's run before it, */
		int run_back;
		int kept;                    /* whether it added seq to the ring of numbers taken ahead, */
		uint32_t n_ahead;            /* how many the ring held before, */
		uint64_t overwritten;        /* and the number a full ring gave up for it; */
		int early;                   /* a LATE one that was early, */
		uint64_t first;              /* and the stream's first before it */
	} last;
};

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* a few ms of resolution, nearly free */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void op_seqtrack_set_clock(op_seqtrack *t, uint64_t (*clock)(void))
{
	t->clock = clock ? clock : monotonic_ns;
}

int op_seqtrack_open(uint32_t max_streams, uint32_t window, op_seqtrack **ret)
{
	op_seqtrack *t;
	uint32_t slots = 8;

	if (max_streams == 0 || window == 0 || max_streams > (1u << 20) || window > (1u << 20))
		return -EINVAL;
	while (slots < 2 * max_streams)
		slots *= 2;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->words = (window + 63) / 64;
	t->slots = slots;
	t->clock = monotonic_ns;
	t->max_streams = max_streams;
	t->tab = calloc(slots, sizeof(stream));
	t->bits = calloc((size_t)max_streams * t->words, sizeof(uint64_t));
	if (!t->tab || !t->bits) {
		op_seqtrack_close(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

void op_seqtrack_close(op_seqtrack *t)
{
	if (!t)
		return;
	free(t->tab);
	free(t->bits);
	free(t);
}

static uint32_t home(const op_seqtrack *t, uint32_t id)
{
	return (id * 2654435761u) & (t->slots - 1);
}

/* Take slot i out of the table, moving later entries of its probe run back so that every
 * entry stays reachable from its home slot (no tombstones). */
static void unlink_slot(op_seqtrack *t, uint32_t i)
{
	const uint32_t mask = t->slots - 1;
	t->tab[i].used = 0;
	for (uint32_t j = (i + 1) & mask; t->tab[j].used; j = (j + 1) & mask) {
		uint32_t h = home(t, t->tab[j].id);
		/* j stays where it is if its home lies cyclically in (i, j] */
		if (i <= j ? (h > i && h <= j) : (h > i || h <= j))
			continue;
		t->tab[i] = t->tab[j];
		t->tab[j].used = 0;
		i = j;
	}
}

/* A full table: the bitmap of the stream silent longest, once silent for OP_SEQ_IDLE_NS, which
 * is forgotten; NULL when none has been (and until one can have been, without looking). */
static uint64_t *forget_idle(op_seqtrack *t, uint64_t now)
{
	if (now < t->none_idle_until)
		return NULL;
	uint32_t victim = UINT32_MAX;
	for (uint32_t i = 0; i < t->slots; i++)
		if (t->tab[i].used && (victim == UINT32_MAX || t->tab[i].seen_ns < t->tab[victim].seen_ns))
			victim = i;
	if (victim == UINT32_MAX)
		return NULL;
	if (now - t->tab[victim].seen_ns < OP_SEQ_IDLE_NS) {
		t->none_idle_until = t->tab[victim].seen_ns + OP_SEQ_IDLE_NS;
		return NULL;
	}
	uint64_t *bits = t->tab[victim].bits;
	unlink_slot(t, victim);
	t->nstreams--;
	t->st.streams--;
	t->st.forgotten++;
	return bits;
}

static stream *find(op_seqtrack *t, uint32_t id, int *fresh)
{
	const uint64_t now = t->clock();
	uint64_t *bits = NULL;

	*fresh = 0;
	for (uint32_t i = home(t, id);; i = (i + 1) & (t->slots - 1)) {
		stream *s = &t->tab[i];
		if (s->used && s->id == id) {
			s->seen_ns = now;
			return s;
		}
		if (s->used)
			continue;
		if (t->nstreams == t->max_streams) {
			if (!(bits = forget_idle(t, now)))
				return NULL;
			i = home(t, id) - 1; /* entries moved: probe again from the home slot */
			continue;
		}
		memset(s, 0, sizeof(*s));
		s->used = 1;
		s->id = id;
		s->bits = bits ? bits : t->bits + (size_t)t->nstreams * t->words;
		memset(s->bits, 0, t->words * sizeof(uint64_t)); /* a forgotten stream's, reused */
		s->seen_ns = now;
		t->nstreams++;
		*fresh = 1;
		return s;
	}
}

/* Bit for sequence q (q < next, next - q <= window): position (q mod window). */
static int bit_get(const op_seqtrack *t, const stream *s, uint64_t q)
{
	uint64_t b = q % ((uint64_t)t->words * 64);
	return (int)((s->bits[b / 64] >> (b % 64)) & 1);
}

static void bit_set(const op_seqtrack *t, stream *s, uint64_t q, int v)
{
	uint64_t b = q % ((uint64_t)t->words * 64);
	if (v)
		s->bits[b / 64] |= 1ull << (b % 64);
	else
		s->bits[b / 64] &= ~(1ull << (b % 64));
}

/* An event moved the stream's next: its time is the stream's newest. */
static void took(stream *s, uint64_t time_ns)
{
	s->newest_ns = time_ns;
	s->newest_known = 1;
}

/* An event of the numbering a restart left, sent again: its number in that numbering's range
 * and its time no newer than that numbering's newest (the new numbering reaching those numbers
 * later carries newer times). Wherever the number falls, ahead or within the window: one taken
 * would move the stream back onto the old numbering, or fill a gap with an old event and make
 * the real one a duplicate. Only this range: a jump ahead by a detector whose clock stepped
 * back (an RTC reset at its reboot) is still followed. */
static int left_behind(const stream *s, uint64_t seq, uint64_t time_ns)
{
	return s->old_hi > s->old_lo && seq >= s->old_lo && seq < s->old_hi && time_ns <= s->old_ns;
}

/* Starts or extends the unconfirmed run [run_from, run_next) with seq; 1 once it is confirmed. */
static int run_step(stream *s, uint64_t seq, int back)
{
	if (s->run_next == s->run_from || seq != s->run_next || s->run_back != back) {
		s->run_from = seq; /* a new run */
		s->run_back = back;
	}
	s->run_next = seq + 1;
	return s->run_next - s->run_from >= OP_SEQ_CONFIRM;
}

/* seq, far ahead, was taken (AHEAD): remembered unless it is already, the oldest of
 * OP_SEQ_AHEAD_KEEP making room */
static int keep_ahead(stream *s, uint64_t seq)
{
	for (uint32_t i = 0; i < s->n_ahead; i++)
		if (s->ahead[i] == seq)
			return 0;
	s->ahead[s->ahead_head] = seq;
	s->ahead_head = (s->ahead_head + 1) % OP_SEQ_AHEAD_KEEP;
	if (s->n_ahead < OP_SEQ_AHEAD_KEEP)
		s->n_ahead++;
	return 1;
}

/* An event of the numbering in force ended the run: what was taken ahead is forgotten, as the
 * run is (a wild number kept across that would, at some later jump, hide a real loss and make
 * the real event of its number a duplicate) */
static void end_run(stream *s)
{
	s->run_from = s->run_next = 0;
	s->n_ahead = s->ahead_head = 0;
}

/* Of the numbers kept by keep_ahead, how many lie in [lo, hi) (each is stored, not missing) */
static uint64_t kept_between(const stream *s, uint64_t lo, uint64_t hi)
{
	uint64_t c = 0;
	for (uint32_t i = 0; i < s->n_ahead; i++)
		c += s->ahead[i] >= lo && s->ahead[i] < hi;
	return c;
}

/* The confirmed run [run_from, run_next) is where the stream stands now. After a jump ahead
 * (jumped), the numbers taken ahead between where the stream was and the run (those the gap
 * did not count) that its window still covers are marked seen: a resend of one is a
 * duplicate, and it is not counted late. After a restart below, none are: those were taken in
 * the numbering left behind. */
static void follow_run(op_seqtrack *t, stream *s, uint64_t time_ns, int jumped)
{
	const uint64_t window = (uint64_t)t->words * 64, from = s->next;
	memset(s->bits, 0, t->words * sizeof(uint64_t));
	for (uint64_t q = s->run_from; q < s->run_next; q++)
		bit_set(t, s, q, 1);
	for (uint32_t i = 0; jumped && i < s->n_ahead; i++)
		if (s->ahead[i] >= from && s->ahead[i] < s->run_from && s->run_next - s->ahead[i] <= window)
			bit_set(t, s, s->ahead[i], 1);
	s->next = s->run_next;
	end_run(s);
	s->settled = 1;
	took(s, time_ns);
}

/* An event of an older numbering: too old, and a run ahead it interrupts is not confirmed. */
static int too_old(op_seqtrack *t, stream *s)
{
	if (!s->run_back)
		end_run(s);
	t->st.too_old++;
	return OP_SEQ_TOO_OLD;
}

/* seq, below next, may start or carry on a numbering started again: taken as new until
 * OP_SEQ_CONFIRM in a row confirm it, then followed (the old numbering's range kept, so that
 * its events sent again stay too old). */
static int back_run(op_seqtrack *t, stream *s, uint32_t id, uint64_t seq, uint64_t time_ns)
{
	if (s->run_back && seq >= s->run_from && seq < s->run_next) {
		t->st.duplicates++;
		return OP_SEQ_DUPLICATE;
	}
	if (!run_step(s, seq, 1)) {
		t->st.ahead++;
		return OP_SEQ_AHEAD;
	}
	t->st.restarts++;
	t->st.last_restart_stream = id;
	t->st.last_restart_from = s->next;
	t->st.last_restart_to = s->run_from;
	t->st.last_restart_lone = !s->settled;
	if (s->settled) {
		s->old_lo = s->first < s->run_next ? s->run_next : s->first; /* (never the new run's numbers) */
		s->old_hi = s->next;
		s->old_ns = s->newest_ns;
	} else { /* a lone wild event leaves no range: its time, beyond the real ones, would make a
		  * real event of its number too old; that event sent again is taken (the store
		  * removes the copy) */
		s->old_lo = s->old_hi = s->old_ns = 0;
	}
	s->first = s->run_from;
	follow_run(t, s, time_ns, 0);
	return OP_SEQ_RESTART;
}

static int observe(op_seqtrack *t, uint32_t id, uint64_t seq, uint64_t time_ns)
{
	uint64_t window = (uint64_t)t->words * 64;
	int fresh;
	stream *s;

	if (seq == UINT64_MAX) { /* the decoder refuses it: next = seq + 1 must exist */
		t->st.too_old++;
		return OP_SEQ_TOO_OLD;
	}
	s = find(t, id, &fresh);
	if (!s) {
		t->st.stream_limit++;
		return OP_SEQ_STREAM_LIMIT;
	}
	t->last.run_from = s->run_from;
	t->last.run_next = s->run_next;
	t->last.run_back = s->run_back;
	t->last.kept = 0;
	t->last.early = 0;
	t->last.first = s->first;
	if (fresh) {
		t->st.streams++;
		s->next = seq + 1;
		s->first = seq;
		s->settled = 0;
		bit_set(t, s, seq, 1);
		took(s, time_ns);
		return OP_SEQ_FIRST;
	}
	if (s->old_hi > s->old_lo && s->next > s->old_hi && s->next - s->old_hi > window)
		s->old_lo = s->old_hi = 0; /* past it by a window: "far behind and old" covers it now */
	if (left_behind(s, seq, time_ns))
		return too_old(t, s);
	if (seq >= s->next) {
		uint64_t skipped = seq - s->next;
		if (skipped >= window) { /* far ahead: follow only a confirmed run */
			if (!s->run_back && seq >= s->run_from && seq < s->run_next) {
				t->st.duplicates++;
				return OP_SEQ_DUPLICATE;
			}
			if (!run_step(s, seq, 0)) {
				t->last.n_ahead = s->n_ahead;
				t->last.overwritten = s->ahead[s->ahead_head];
				t->last.kept = keep_ahead(s, seq);
				t->st.ahead++;
				return OP_SEQ_AHEAD;
			}
			/* confirmed: the stream moved on; what it skipped is missing, but for the events
			 * taken ahead in between (unless where it was came from a lone first event, maybe
			 * wild: a zero header's 0 before 10^12 would count 10^12 events lost) */
			if (s->settled)
				t->st.gap_events_total += s->run_from - s->next - kept_between(s, s->next, s->run_from);
			else
				s->first = s->run_from;
			t->st.jumps++;
			follow_run(t, s, time_ns, 1);
			return OP_SEQ_AFTER_GAP;
		}
		end_run(s); /* the numbering in force goes on: no run is confirmed */
		s->settled = 1;
		took(s, time_ns);
		/* Clear the bits of the sequence numbers we jump over (they are now "missing"). */
		for (uint64_t q = s->next; q < seq; q++)
			bit_set(t, s, q, 0);
		bit_set(t, s, seq, 1);
		s->next = seq + 1;
		if (skipped) {
			t->st.gap_events_total += skipped;
			return OP_SEQ_AFTER_GAP;
		}
		t->st.in_order++;
		return OP_SEQ_IN_ORDER;
	}
	if (s->next - seq > window) {
		/* far behind: a numbering started again, if newer than all the stream sent, or the
		 * stream's lone first event was wild */
		if (s->settled && (!s->newest_known || time_ns <= s->newest_ns))
			return too_old(t, s);
		return back_run(t, s, id, seq, time_ns);
	}
	/* Within the window, newer than the stream's newest (an event sent again repeats its time,
	 * a late one is older): a numbering started again less than a window below, followed like
	 * one far below, whether its number was seen or lies in a gap. Before, its events up to the
	 * old place (up to a window of them) were refused as duplicates, or, on a gap, taken as late
	 * (hiding that gap's loss): a readout rebooting within its first 4,096 events, or rebooting
	 * again soon after a restart. */
	if (s->newest_known && time_ns > s->newest_ns)
		return back_run(t, s, id, seq, time_ns);
	/* an event of the numbering in force, even one seen already, ends an unconfirmed run: a
	 * restarted ingest replays its log through a tracker that has seen the events before its
	 * last report, and must not confirm a run their arrival had kept from confirming live */
	end_run(s);
	if (bit_get(t, s, seq)) {
		t->st.duplicates++;
		return OP_SEQ_DUPLICATE;
	}
	bit_set(t, s, seq, 1);
	s->settled = 1;
	if (seq < s->first) { /* before the stream's first event here: it fills no gap counted */
		s->first = seq;
		t->last.early = 1;
		t->st.early++;
		return OP_SEQ_LATE;
	}
	t->st.late_total++;
	return OP_SEQ_LATE;
}

int op_seqtrack_observe(op_seqtrack *t, uint32_t id, uint64_t seq, uint64_t time_ns)
{
	const int v = observe(t, id, seq, time_ns);
	t->last.valid = 1;
	t->last.verdict = v;
	t->last.id = id;
	t->last.seq = seq;
	return v;
}

/* The stream with this id, if tracked (the table always has an empty slot: 2·max_streams). */
static stream *lookup(op_seqtrack *t, uint32_t id)
{
	for (uint32_t i = home(t, id);; i = (i + 1) & (t->slots - 1)) {
		if (!t->tab[i].used)
			return NULL;
		if (t->tab[i].id == id)
			return &t->tab[i];
	}
}

void op_seqtrack_unsee(op_seqtrack *t, uint32_t id, uint64_t seq)
{
	stream *s;

	if (!t->last.valid || t->last.id != id || t->last.seq != seq)
		return;
	t->last.valid = 0;
	if (!(s = lookup(t, id)))
		return;
	switch (t->last.verdict) {
	case OP_SEQ_AHEAD: /* its place in the unconfirmed run, and in the ring, given back */
		t->st.ahead--;
		s->run_from = t->last.run_from;
		s->run_next = t->last.run_next;
		s->run_back = t->last.run_back;
		if (t->last.kept) {
			s->ahead_head = (s->ahead_head + OP_SEQ_AHEAD_KEEP - 1) % OP_SEQ_AHEAD_KEEP;
			if (t->last.n_ahead == OP_SEQ_AHEAD_KEEP)
				s->ahead[s->ahead_head] = t->last.overwritten;
			else
				s->n_ahead--;
		}
		break;
	case OP_SEQ_LATE: /* back in its gap (seq < next, within the window), counted as before */
		bit_set(t, s, seq, 0);
		if (t->last.early)
			t->st.early--, s->first = t->last.first;
		else
			t->st.late_total--;
		break;
	case OP_SEQ_IN_ORDER:
	case OP_SEQ_AFTER_GAP:
	case OP_SEQ_FIRST:
	case OP_SEQ_RESTART:
		/* seq < next and within the window in each case: not seen, and missing (a gap of one)
		 * until a resend fills it as a late event. next stays where the event put it (and a
		 * run it confirmed stays followed: the run's other events were kept). */
		if (t->last.verdict == OP_SEQ_IN_ORDER)
			t->st.in_order--;
		bit_set(t, s, seq, 0);
		t->st.gap_events_total++;
		break;
	default: /* refused: nothing was marked */
		break;
	}
}

void op_seqtrack_get_stats(const op_seqtrack *t, op_seqtrack_stats *out)
{
	*out = t->st;
}

int op_seqtrack_seed(op_seqtrack *t, const op_seqtrack_mark *m)
{
	int fresh;
	stream *s = find(t, m->stream, &fresh);

	if (!s)
		return -ENOSPC;
	if (fresh)
		t->st.streams++;
	s->next = m->next;
	memset(s->bits, 0xff, t->words * sizeof(uint64_t));
	end_run(s);
	s->newest_ns = m->newest_ns;
	s->newest_known = m->newest_ns != 0;
	s->first = 0;
	s->settled = 1; /* marks are of settled streams only */
	t->none_idle_until = 0; /* its silence, below, may make a stream forgettable now */
	s->old_lo = m->old_lo;
	s->old_hi = m->old_hi;
	s->old_ns = m->old_ns;
	/* its silence goes on: seeded as heard from now, every stream of a full table passed on by
	 * the previous ingest would have kept new streams out for an hour */
	s->seen_ns = s->seen_ns > m->silent_ns ? s->seen_ns - m->silent_ns : 0;
	return 0;
}

uint32_t op_seqtrack_marks(const op_seqtrack *t, void (*fn)(void *ctx, const op_seqtrack_mark *m), void *ctx)
{
	uint32_t n = 0;
	const uint64_t now = t->clock();

	for (uint32_t i = 0; i < t->slots; i++) {
		if (!t->tab[i].used)
			continue;
		const stream *s = &t->tab[i];
		if (!s->settled)
			continue; /* one event, maybe wild: the next ingest starts the stream afresh */
		op_seqtrack_mark m = {.stream = s->id, .next = s->next, .newest_ns = s->newest_known ? s->newest_ns : 0,
				      .old_lo = s->old_lo, .old_hi = s->old_hi, .old_ns = s->old_ns,
				      .silent_ns = now > s->seen_ns ? now - s->seen_ns : 0};
		fn(ctx, &m);
		n++;
	}
	return n;
}
