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

/*
 * Priority classes, each a directory of files with .sha256 sidecars:
 *   alert      outbox/alert/      strict priority: preempts whatever is being sent, at the next chunk
 *   telemetry  outbox/telemetry/  \
 *   results    outbox/            > weighted sharing of what alerts leave, by bytes sent (shares below)
 *   bulk       outbox/bulk/       /  so the lowest class never gets less than its share when busy
 * FIFO (oldest name first) within a class. A preempted transfer resumes where north has it.
 */
enum { OP_UPLINK_ALERT, OP_UPLINK_TELEMETRY, OP_UPLINK_RESULTS, OP_UPLINK_BULK, OP_UPLINK_CLASSES };
extern const char *const op_uplink_class_names[OP_UPLINK_CLASSES];

typedef struct op_uplink_config {
	const char *outbox_dir;
	const char *quarantine_dir; /* local files that fail their own checksum go here */
	const char *north_endpoint; /* "": local only — the disk reserve and the figures, nothing sent */
	size_t chunk_bytes;         /* default 1 MiB */
	uint32_t window;            /* chunks in flight (default 16); under a cap, at least 2 s of it */
	uint64_t timeout_ns;        /* no reply this long: reconnect and resume */
	uint64_t retry_ns;          /* wait before reconnecting */
	/* Confirmed files move here instead of being deleted (NULL: deleted), and are removed
	 * sent_keep_ns after their confirmation. The store reads them at its start: an event it
	 * sealed but could not acknowledge before dying may be sent again by ingest after the
	 * segment already went north, and must not be written twice. */
	const char *sent_dir;
	uint64_t sent_keep_ns;
	/* The most time one step spends checking a file before evicting it (0: 200 ms); a check
	 * not finished goes on at the next step. */
	uint64_t evict_slice_ns;
	/* The link budget. rate_bps: a token-bucket cap on every byte this end puts on the wire,
	 * retransmits and keepalives included (0: none); chunks shrink to half a second of it.
	 * daily_quota: bytes per UTC day (0: none), counted the same way and kept in quota_file
	 * (written before each chunk, so a crash does not forget what was sent). */
	uint64_t rate_bps, daily_quota;
	const char *quota_file;
	/* Bytes of each day's quota only alerts may spend: results, telemetry and bulk stop that
	 * far short of daily_quota, so a day's data cannot leave an alert nothing (at most half the
	 * quota is kept; 0: none) */
	uint64_t alert_reserve;
	/* link windows, UTC: "HH:MM-HH:MM; …" (wrapping over midnight; NULL or "": always open).
	 * Outside them nothing is sent, keepalives included, and north's silence is no timeout. */
	const char *windows;
	/* Disk: keep disk_reserve bytes free on the outbox's file system (0: no reserve). When free
	 * space falls below it, files are evicted: first those older than max_age_s (any class but
	 * alerts; 0: none expire), then by class, lowest priority first (bulk, telemetry, results;
	 * oldest first within a class), never alerts and never the file being sent. Each eviction is
	 * counted and reported north as a tombstone (an alert file naming what was lost). */
	uint64_t disk_reserve;
	uint64_t max_age_s;
	/* shares of telemetry, results and bulk in percent (0 each: 20, 70, 10) */
	uint32_t share_pct[OP_UPLINK_CLASSES];
	/* CURVE (curve.h): this appliance's key pair and north's public key, Z85; NULL: plaintext */
	const char *curve_public_z85, *curve_secret_z85, *north_public_z85;
	/* site.name: in the names of tombstones (NULL or "": "site"), so that two sites evicting a
	 * bulk file of one name send north two tombstones, not one name twice */
	const char *site;
} op_uplink_config;

typedef struct op_uplink_stats {
	uint64_t files_confirmed, bytes_sent, bytes_confirmed, resumes, timeouts, rejected, quarantined,
		naks, vanished;
	uint64_t files_pending, bytes_pending; /* in outbox/, as of the last scan */
	struct op_uplink_class_stats {
		uint64_t files_pending, bytes_pending, bytes_sent, files_confirmed;
		double oldest_age_s; /* of its oldest waiting file (by mtime), 0 when none */
	} cls[OP_UPLINK_CLASSES];
	uint64_t preemptions; /* transfers set aside for an alert */
	int in_window;        /* 1 when the link windows allow sending now */
	uint64_t evicted_expired, evicted_disk_full, evicted_bytes, tombstones, tombstones_failed;
	uint64_t leftovers_removed; /* a crash's .tmp files and orphaned sidecars removed (sender.c) */
	uint64_t files_held;        /* refused by north lately, held back while the others go (refused()) */
	uint64_t files_refused;     /* of the files north refused, those refused about the file alone (its name
				     * taken): waiting here until renamed; forgotten once north confirms them or they go */
	uint64_t quarantine_failed; /* files that did not match their sidecar and could not be moved */
	uint64_t replaced_while_sent; /* confirmed files whose name held a new file by then: the new one stays */
	uint64_t disk_free;   /* bytes free on the outbox's file system at the last check */
	uint64_t answers_ignored;   /* north's answers the protocol does not allow (sender.c, odd_answer) */
	char last_ignored_answer[160]; /* the last of them: "CMD NAME [VALUE]: why" */
	int last_error;                        /* negative errno of the last local failure, or 0 */
	uint64_t local_errors;                 /* local failures: reading, moving, the quota file */
	char last_local_error[320];            /* "WHAT PATH: reason" of the last of them */
	char last_quarantined[256];            /* name of the last file moved to quarantine */
	int link_up;                           /* north answered within the timeout (keepalive) */
	uint64_t pings, reconnects;
	uint64_t disconnects;       /* connections that broke under a transfer (noticed at once) */
	uint64_t bytes_acked;         /* chunk bytes north acknowledged */
	uint64_t bytes_retransmitted; /* chunk bytes sent and never acknowledged (not in flight): sent again */
	uint64_t wire_bytes;        /* every byte put on the wire (estimate, see sender.c) */
	uint64_t quota_used;        /* today's (UTC) */
	int quota_exhausted;        /* nothing more is sent until UTC midnight */
	uint64_t connections;       /* connections made and attempts that failed, each charged (sender.c) */
	int quota_parked;           /* no connection: the quota has no room for one until UTC midnight */
	uint64_t rate_waits;        /* times a chunk waited for the cap */
	uint64_t alerts_stalled;    /* alerts set aside mid-transfer: the day's quota could not carry the rest */
	uint64_t refusals_running;  /* north's refusals since it last confirmed a file (not those about the file alone) */
	uint64_t refused_files_only; /* refusals about the file alone (its name taken): the file held, nothing spaced */
	double spaced_s;            /* after them, seconds until the next file may start (0: none) */
	uint64_t alert_reserve;     /* of the daily quota, kept for alerts (the configured, at most half) */
	char last_refusal[240];     /* "NAME: north's reason" of the last refusal ("" before any) */
	char last_file_refusal[240]; /* the same, of the last refusal about the file alone */
} op_uplink_stats;

/* Parse link windows: the number of ranges (minutes after UTC midnight, end exclusive) put in
 * ranges, or -1 with the reason in err. */
int op_uplink_windows_parse(const char *text, uint16_t ranges[][2], int max, char *err, size_t errcap);

/* `in` in the characters a name north accepts (letters, digits, '-'; any other as '_'), into
 * out (cap bytes, always terminated): the site's part of the names the appliance makes. */
void op_uplink_name_part(const char *in, char *out, size_t cap);

/* Queue `data` for north as dir/name, in the order the sender relies on: the data under a
 * temporary name and fsynced, its NAME.sha256 sidecar written and fsynced, the data renamed into
 * place, the directory fsynced. 0; 1 when the file is in place (it will be sent) but the
 * directory fsync failed (a power cut could take it back); or a negative errno, and nothing is
 * left. A crash between the steps leaves a .NAME.tmp or an orphaned sidecar, which the sender
 * removes once they are ten minutes old. */
int op_uplink_publish(const char *dir, const char *name, const void *data, size_t len);

int op_uplink_open(void *zmq_ctx, const op_uplink_config *cfg, op_uplink **ret);
void op_uplink_close(op_uplink *u);
/* Bounded work: wait up to timeout_ms for replies, handle them, send what the window allows.
 * Returns 0, or a negative errno for a failure the caller should see (the state is kept). */
int op_uplink_step(op_uplink *u, int timeout_ms);
void op_uplink_get_stats(const op_uplink *u, op_uplink_stats *out);

#endif
