/*
 * north.h — outpost-north's receiver: takes segments offered by appliances, appends their
 * chunks, and confirms a file only once it is durable and its SHA-256 matches the offer.
 * Never logs: the caller reads op_north_stats and the event callback.
 */
#ifndef OP_UPLINK_NORTH_H
#define OP_UPLINK_NORTH_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_north op_north;

/* An appliance's name (its key file's stem: a file name less ".pub", at most 251 bytes) with
 * its terminator:
 * kept whole, as two names that differ only late would otherwise be one in the ledger, and
 * the ledger's owner of a file decides who may replace it. A ledger line holds it, a name
 * (OP_XFER_NAME_MAX), a sha256 and three numbers. */
#define OP_NORTH_WHO_MAX 256
#define OP_NORTH_LEDGER_LINE 1024

typedef struct op_north_config {
	const char *bind_endpoint;
	const char *dir;         /* final files, sidecars and ledger.tsv; partials in dir/.partial/ */
	uint64_t max_file_bytes; /* offers above this are refused (0 = 64 GiB) */
	uint32_t max_partials;   /* concurrent transfers (0 = 16) */
	/* after a second failed sync in a row, files are refused (no bytes sent for nothing) for
	 * this long, doubled with each further failure, at most an hour (0 = 60 s) */
	uint64_t sync_pause_ns;
	/* CURVE (curve.h): north's secret key and the directory of accepted appliances' .pub files;
	 * NULL: plaintext, every peer accepted (tests, a north on the same host) */
	const char *curve_secret_z85;
	const char *authorized_dir;
} op_north_config;

typedef struct op_north_stats {
	uint64_t files_received, bytes_received, rows_received, rejected, naks, reconfirmed;
	uint64_t recovered; /* ledger lines written at start for files published just before a death */
	uint64_t peers_refused; /* connections whose key is not authorised */
	uint64_t pings;
	uint64_t crc_errors; /* chunks whose CRC32C did not match: not written, asked again */
	uint64_t partials, partial_bytes; /* transfers in progress now, and the bytes they hold */
	uint64_t partials_expired, partial_bytes_expired; /* partial files untouched for 30 days, removed */
	uint64_t bytes_read_back;        /* hashed from the disk: what partials held when this north opened them
					  * (the rest is hashed as it arrives), a slice per chunk received */
	uint64_t bytes_hashed_at_commit; /* of those, read at COMMIT (holding every transfer up meanwhile) */
	uint64_t partials_discarded, partial_bytes_discarded; /* partials north could not vouch for (fsync failed
							       * or a read-back failed): removed, sent again */
	uint64_t sync_failures;      /* failed syncs of a partial in a row (0 after a good one) */
	uint64_t offers_paused;      /* offers refused while a failing disk pauses north */
	uint64_t name_conflicts;     /* offers refused: another appliance's file holds the name */
	uint64_t offers_no_room;     /* offers refused: no room on the disk for the whole file */
	uint64_t partial_reserved;   /* bytes the transfers in progress have reserved and not yet received */
} op_north_stats;

/* Called once per file made durable: name, size, sha256, rows (-1 if it does not open as a
 * segment: stored anyway, the checksum is the contract), the appliance that sent it (its key's
 * name under CURVE, "-" in plaintext). */
typedef void (*op_north_cb)(void *ctx, const char *name, uint64_t size, const char *sha, long rows,
			    const char *appliance);
/* Called for each refusal, with the reason. */
typedef void (*op_north_reject_cb)(void *ctx, const char *name, const char *reason);

int op_north_open(void *zmq_ctx, const op_north_config *cfg, op_north **ret);
void op_north_close(op_north *n);
void op_north_set_callbacks(op_north *n, op_north_cb on_file, op_north_reject_cb on_reject, void *ctx);
int op_north_step(op_north *n, int timeout_ms);
void op_north_get_stats(const op_north *n, op_north_stats *out);

#endif
