/*
 * wal.h — ingest's write-ahead log: what the ingest window holds survives the ingest process.
 *
 * Ingest appends, before it reports anything that depends on them: every accepted event ('E',
 * its serial and wire message), the serials acknowledged as durable ('A') or given up ('D'),
 * and a checkpoint for each report it sends ('R', the report's number). The files live in the
 * run directory (tmpfs: they outlive a process, not the machine), named
 * wal-<incarnation>-<k>.log, rotated at a size and deleted once every event in them is freed
 * (but for the files from the one with the second-newest report checkpoint on).
 *
 * A restarted ingest replays its predecessor's files: the events never freed are resent (the
 * store deduplicates), and what the predecessor did after the last report the supervisor
 * received — events accepted, acknowledged, dropped — is counted exactly once. A record cut
 * short by the death of the writer (or failing its CRC32C) ends the replay of its file.
 *
 * Record: u32 payload length, u8 type, payload, u32 CRC32C of type and payload; little-endian.
 */
#ifndef OP_INGEST_WAL_H
#define OP_INGEST_WAL_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_wal op_wal;

/* Start this incarnation's log in dir (created if needed). 0 or -errno. Every other call
 * accepts a NULL log and does nothing (ingest runs on without one, and says so). */
int op_wal_open(const char *dir, uint64_t incarnation, uint64_t rotate_bytes, op_wal **ret);
/* Close; with remove, delete this incarnation's files (a clean stop: nothing to replay). */
void op_wal_close(op_wal *w, int remove);

/* Appends (buffered until op_wal_flush). buf starts with the 8-byte serial. */
void op_wal_event(op_wal *w, const uint8_t *buf, size_t len);
void op_wal_acked(op_wal *w, uint64_t serial);
void op_wal_dropped(op_wal *w, uint64_t serial);
void op_wal_report(op_wal *w, uint64_t report_seq);
/* Write what is buffered; rotate; delete files whose events all lie below tail (the oldest
 * serial still held), keeping the two newest and those from the second-newest checkpoint on. 0 or -errno: on the first failure the log deletes its files and keeps
 * nothing more (a successor then counts what was held as lost rather than trust a log with a
 * hole); the caller reports it. */
int op_wal_flush(op_wal *w, uint64_t tail);
/* Bytes of the files kept only because an event in them is not freed yet (all but the two
 * newest, which are kept anyway, and those kept for a report checkpoint alone): one event held
 * long (resent again and again) keeps every file after it. Ingest stops reading at ingest.window_bytes of them, so that the log (in
 * memory, on a tmpfs) stays bounded as the window is. */
uint64_t op_wal_pinned_bytes(const op_wal *w);
/* 1 while the log is kept (opened, no write failed). */
int op_wal_ok(const op_wal *w);
/* Delete every file in dir that is not incarnation's (after a replay was taken over; also when
 * this incarnation's own log could not be opened: what it took over is counted from its own
 * reports then, and the predecessor's files left behind would be taken over again by the next
 * outpostd, counted twice). */
void op_wal_remove_others(const char *dir, uint64_t incarnation);

typedef struct op_wal_replay_result {
	int found;                /* the predecessor's files and its report checkpoint were found */
	uint64_t events, freed;   /* E records read; of them freed (A or D) */
	uint64_t after_accepted;  /* after the checkpoint: events accepted */
	uint64_t after_acked;     /* … acknowledged as durable */
	uint64_t after_dropped;   /* … given up */
	uint64_t torn;            /* files whose last record was cut short or corrupt */
	uint32_t files;           /* the incarnation's files found (0: no log at all) */
} op_wal_replay_result;

/*
 * Replay incarnation's files in dir against the report numbered report_seq (0: before its
 * first report). fn is called for every event record in serial order, with live = 1 for those
 * never freed (to resend) and 0 for the others (their sequence numbers still count); msg is
 * the wire message without the serial. 0 or -errno.
 */
int op_wal_replay(const char *dir, uint64_t incarnation, uint64_t report_seq,
		  void (*fn)(void *ctx, const uint8_t *msg, size_t len, int live), void *ctx,
		  op_wal_replay_result *res);

#endif
