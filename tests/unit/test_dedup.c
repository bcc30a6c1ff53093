/*
 * test_dedup.c — the store's duplicate table: finds what it holds, forgets the oldest first
 * when full, forgets a generation on request, and never loses a key it should still hold; after
 * a restart it remembers the newest rows of the sealed segments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/dedup.h"
#include "unit/check.h"
#include "uplink/segment.h"

/* A sealed segment `name` in dir holding the events n0 .. n0 + n - 1 of stream 5 */
static int seal_rows(const char *tmp, const char *dir, const char *name, uint64_t n0, size_t n)
{
	char seg[300], hex[65];
	snprintf(seg, sizeof(seg), "%s/segments", tmp);
	mkdir(seg, 0750);
	op_segment_meta meta = {.model_name = "test", .config_hash = "00112233aabbccdd", .software_version = "test",
				.site = "pole", .chunk_rows = 64, .deflate_level = 1};
	op_segment *s = NULL;
	op_result_row r[64];
	memset(r, 0, sizeof(r));
	for (size_t i = 0; i < n; i++)
		r[i].stream_id = 5, r[i].sequence = n0 + i, r[i].detector_time_ns = 1000 * (n0 + i);
	if (op_segment_create(seg, name, &meta, &s) < 0)
		return -1;
	if (op_segment_append(s, r, n) < 0 || op_segment_seal(s, dir, hex) < 0)
		return -1;
	return 0;
}

static int holds(op_dedup *d, uint64_t q)
{
	uint64_t g;
	return op_dedup_find(d, 5, q, 1000 * q, &g);
}

/* The table holds exactly the keys lo..hi-1 of those 0..hi-1 sealed: the newest, the oldest forgotten. */
static int holds_just(op_dedup *d, uint64_t lo, uint64_t hi)
{
	for (uint64_t q = 0; q < hi; q++)
		if (holds(d, q) != (q >= lo)) {
			fprintf(stderr, "key %llu %s\n", (unsigned long long)q, q >= lo ? "forgotten" : "still held");
			return 0;
		}
	return 1;
}

int main(void)
{
	op_dedup *d = NULL;
	uint64_t gen = 0;

	CHECK(op_dedup_open(0, &d) == -22 && d == NULL);
	CHECK(op_dedup_open(1000, &d) == 0);

	/* Insert 1000 keys across 3 streams; all are found with their generation. */
	for (uint64_t i = 0; i < 1000; i++)
		op_dedup_insert(d, (uint32_t)(i % 3), i, 1000 + (i), i / 100);
	int all = 1;
	for (uint64_t i = 0; i < 1000; i++)
		all &= op_dedup_find(d, (uint32_t)(i % 3), i, 1000 + (i), &gen) == 1 && gen == i / 100;
	CHECK(all);
	CHECK(!op_dedup_find(d, 1, 0, 1000 + (0), &gen)); /* (stream 0, seq 0) exists, (1, 0) does not */
	CHECK_EQ_U64(op_dedup_size(d), 1000);

	/* Full: 250 more evict exactly the 250 oldest. */
	for (uint64_t i = 1000; i < 1250; i++)
		op_dedup_insert(d, (uint32_t)(i % 3), i, 1000 + (i), 99);
	int oldest_gone = 1, rest_kept = 1;
	for (uint64_t i = 0; i < 250; i++)
		oldest_gone &= !op_dedup_find(d, (uint32_t)(i % 3), i, 1000 + (i), &gen);
	for (uint64_t i = 250; i < 1250; i++)
		rest_kept &= op_dedup_find(d, (uint32_t)(i % 3), i, 1000 + (i), &gen);
	CHECK(oldest_gone);
	CHECK(rest_kept);
	CHECK_EQ_U64(op_dedup_size(d), 1000);

	/* Forget generation 99 (a segment that could not be sealed): only those go. */
	op_dedup_forget_gen(d, 99);
	int gen_gone = 1, others = 1;
	for (uint64_t i = 1000; i < 1250; i++)
		gen_gone &= !op_dedup_find(d, (uint32_t)(i % 3), i, 1000 + (i), &gen);
	for (uint64_t i = 250; i < 1000; i++)
		others &= op_dedup_find(d, (uint32_t)(i % 3), i, 1000 + (i), &gen) && gen == i / 100;
	CHECK(gen_gone);
	CHECK(others);
	CHECK_EQ_U64(op_dedup_size(d), 750);

	/* Heavy churn with colliding sequences on many streams keeps exactly the newest window. */
	op_dedup_close(d);
	CHECK(op_dedup_open(4096, &d) == 0);
	for (uint64_t i = 0; i < 100000; i++)
		op_dedup_insert(d, (uint32_t)(i & 63), i >> 6, 1000 + (i >> 6), 1);
	int window = 1;
	for (uint64_t i = 100000 - 4096; i < 100000; i++)
		window &= op_dedup_find(d, (uint32_t)(i & 63), i >> 6, 1000 + (i >> 6), &gen);
	CHECK(window);
	CHECK(!op_dedup_find(d, 0, 0, 1000 + (0), &gen));
	CHECK_EQ_U64(op_dedup_size(d), 4096);
	/* The same stream and sequence at another detector time is another event (a detector that
	 * restarted its sequence numbers), not a duplicate. */
	CHECK(op_dedup_find(d, (uint32_t)(99999 & 63), 99999 >> 6, 1000 + (99999 >> 6), &gen));
	CHECK(!op_dedup_find(d, (uint32_t)(99999 & 63), 99999 >> 6, 7, &gen));
	op_dedup_close(d);
	op_dedup_close(NULL);

	/* A generation forgotten (its segment could not be sealed) and one of its keys taken again:
	 * when the eviction order reaches the forgotten copy it must not take the new one along */
	CHECK(op_dedup_open(4, &d) == 0);
	for (uint64_t q = 1; q <= 4; q++)
		op_dedup_insert(d, 5, q, 1000 * q, 1);
	op_dedup_forget_gen(d, 1);
	op_dedup_insert(d, 5, 4, 4000, 2); /* key 4 again, while its old copy waits in the queue */
	op_dedup_insert(d, 5, 5, 5000, 2);
	op_dedup_insert(d, 5, 6, 6000, 2);
	op_dedup_insert(d, 5, 7, 7000, 2); /* evicts the forgotten copy of key 4 */
	CHECK(holds(d, 4) && holds(d, 5) && holds(d, 6) && holds(d, 7));
	op_dedup_close(d);

	/* After a restart, with more sealed rows than the table holds (10): sent/ has events 0-5,
	 * outbox/ 6-11 and, newest, 12-17. The table keeps 8-17 — above all the newest segment's,
	 * which ingest resends when the store died between sealing it and acknowledging; taking
	 * the newest file first had let the older file's keys evict 12 and 13. */
	char tmp[] = "/tmp/outpost-test-dedup-XXXXXX", out[300], sent[300], orphan[400];
	CHECK(mkdtemp(tmp) != NULL);
	snprintf(out, sizeof(out), "%s/outbox", tmp);
	snprintf(sent, sizeof(sent), "%s/sent", tmp);
	mkdir(out, 0750);
	mkdir(sent, 0750);
	CHECK(seal_rows(tmp, sent, "seg-0001", 0, 6) == 0);
	CHECK(seal_rows(tmp, out, "seg-0002", 6, 6) == 0);
	CHECK(seal_rows(tmp, out, "seg-0003", 12, 6) == 0);
	snprintf(orphan, sizeof(orphan), "%s/seg-0000.h5.sha256", out); /* its segment never arrived */
	FILE *f = fopen(orphan, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	const char *const dirs[2] = {out, sent};
	CHECK(op_dedup_open(10, &d) == 0);
	CHECK_EQ_U64(op_dedup_recover(d, dirs, 2, 10), 10);
	CHECK(holds_just(d, 8, 18));
	CHECK(access(orphan, F_OK) != 0);
	op_dedup_close(d);
	/* room for all: every row, sent/ too */
	CHECK(op_dedup_open(100, &d) == 0);
	CHECK_EQ_U64(op_dedup_recover(d, dirs, 2, 100), 18);
	CHECK(holds(d, 0) && holds(d, 17));
	op_dedup_close(d);
	/* The newest segment in sent/ (confirmed north while an older one, refused there, waits in
	 * outbox/), more rows in outbox/ than the table holds: the newest rows are still the ones
	 * kept, wherever they lie (outbox/ read whole first had filled the table with 0-11) */
	CHECK(seal_rows(tmp, out, "seg-0004", 18, 6) == 0);
	CHECK(seal_rows(tmp, sent, "seg-0005", 24, 6) == 0);
	CHECK(op_dedup_open(10, &d) == 0);
	CHECK_EQ_U64(op_dedup_recover(d, dirs, 2, 10), 10);
	CHECK(holds_just(d, 20, 30));
	op_dedup_close(d);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -r -- '%s'", tmp);
	CHECK(system(cmd) == 0);
	return check_finish("test_dedup");
}
