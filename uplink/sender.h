/*
 * sender.h — the appliance side of custody transfer: ships sealed segments from outbox/ to
 * outpost-north, oldest first, and deletes a local copy only after north confirmed it holds a
 * file with the same SHA-256 (docs/uplink-protocol.md). Never logs.
 */
#ifndef OP_UPLINK_SENDER_H
#define OP_UPLINK_SENDER_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_uplink op_uplink;

typedef struct op_uplink_config {
	const char *outbox_dir;
	const char *quarantine_dir; /* local files that fail their own checksum go here */
	const char *north_endpoint;
	size_t chunk_bytes;         /* default 1 MiB */
	uint32_t window;            /* chunks in flight (default 8): a long link needs several */
	uint64_t timeout_ns;        /* no reply this long: reconnect and resume */
	uint64_t retry_ns;          /* wait before reconnecting */
	/* Confirmed files move here instead of being deleted (NULL: deleted), and are removed
	 * sent_keep_ns after their confirmation. The store reads them at its start: an event it
	 * sealed but could not acknowledge before dying may be sent again by ingest after the
	 * segment already went north, and must not be written twice. */
	const char *sent_dir;
	uint64_t sent_keep_ns;
	/* CURVE (curve.h): this appliance's key pair and north's public key, Z85; NULL: plaintext */
	const char *curve_public_z85, *curve_secret_z85, *north_public_z85;
} op_uplink_config;

typedef struct op_uplink_stats {
	uint64_t files_confirmed, bytes_sent, bytes_confirmed, resumes, timeouts, rejected, quarantined,
		naks, vanished;
	uint64_t files_pending, bytes_pending; /* in outbox/, as of the last scan */
	int last_error;                        /* negative errno of the last local failure, or 0 */
	int link_up;                           /* north answered within the timeout (keepalive) */
	uint64_t pings, reconnects;
} op_uplink_stats;

int op_uplink_open(void *zmq_ctx, const op_uplink_config *cfg, op_uplink **ret);
void op_uplink_close(op_uplink *u);
/* Bounded work: wait up to timeout_ms for replies, handle them, send what the window allows.
 * Returns 0, or a negative errno for a failure the caller should see (the state is kept). */
int op_uplink_step(op_uplink *u, int timeout_ms);
void op_uplink_get_stats(const op_uplink *u, op_uplink_stats *out);

#endif
