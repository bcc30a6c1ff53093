/*
 * test_dedup.c — the store's duplicate table: finds what it holds, forgets the oldest first
 * when full, forgets a generation on request, and never loses a key it should still hold.
 */
#include <stdlib.h>

#include "appliance/dedup.h"
#include "unit/check.h"

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
	return check_finish("test_dedup");
}
