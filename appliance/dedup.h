/*
 * dedup.h — the store's memory of which (stream, sequence) it already holds, and where.
 *
 * Delivery between stages is at-least-once, so the store sees an event again whenever ingest
 * resends it. This table answers "have I got it, and in which segment generation?" so the
 * store writes each event once and acknowledges a resent one correctly. Bounded: it holds the
 * most recent `capacity` keys and forgets the oldest first (only recent events can be resent:
 * ingest's window is far smaller than the capacity the store asks for).
 *
 * An event is identified by (stream, sequence, detector time): a resent event repeats all
 * three, while a detector that restarts its run and its sequence numbers sends new events
 * with old sequence numbers but new times — those are new events, not duplicates.
 */
#ifndef OP_APPLIANCE_DEDUP_H
#define OP_APPLIANCE_DEDUP_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_dedup op_dedup;

int op_dedup_open(size_t capacity, op_dedup **ret);
void op_dedup_close(op_dedup *d);
/* 1 and *gen if present, else 0. */
int op_dedup_find(const op_dedup *d, uint32_t stream, uint64_t seq, uint64_t t, uint64_t *gen);
/* Insert (must not be present); evicts the oldest key when full. */
void op_dedup_insert(op_dedup *d, uint32_t stream, uint64_t seq, uint64_t t, uint64_t gen);
/* Forget every key of generation gen (its segment could not be sealed). */
void op_dedup_forget_gen(op_dedup *d, uint64_t gen);
size_t op_dedup_size(const op_dedup *d);

/*
 * After a restart: remember what the sealed segments in dirs[0..ndirs) (at most 8) hold, the
 * newest `capacity` rows by the files' names across all of them, so that the oldest are
 * the ones the table forgets first. Removes sidecars whose segment never arrived (a crash
 * between the two renames of a seal). Returns the rows remembered.
 */
size_t op_dedup_recover(op_dedup *d, const char *const *dirs, int ndirs, size_t capacity);

#endif
