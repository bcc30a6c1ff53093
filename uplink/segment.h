/*
 * segment.h — one HDF5 result segment: the unit the store writes, seals and the uplink ships.
 * Layout: docs/result-format.md.
 *
 * State diagram of a segment:
 *
 *   op_segment_create ──▶ OPEN (segments/<name>.h5) ──append/flush──▶ OPEN
 *          OPEN ──op_segment_seal──▶ SEALED (outbox/<name>.h5 + outbox/<name>.h5.sha256)
 *          OPEN ──op_segment_abandon / crash──▶ file left in segments/ (never in outbox/)
 *
 * Invariants:
 *  1. A file appears in outbox/ only complete: seal = write → H5Fflush → close → fsync file →
 *     write+fsync the .sha256 sidecar → rename sidecar, then the .h5, into outbox/ → fsync
 *     outbox/. Only after op_segment_seal returns 0 may the caller acknowledge the rows upstream.
 *  2. Every row in a sealed file was appended exactly once by the caller (dedup is the caller's).
 *  3. Library code: never logs, never exits; errors are negative errno values.
 */
#ifndef OP_UPLINK_SEGMENT_H
#define OP_UPLINK_SEGMENT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One result row: one event. Field order = HDF5 compound member order. */
typedef struct op_result_row {
	uint32_t stream_id;
	uint32_t n_pulses;
	uint64_t sequence;
	uint64_t detector_time_ns;
	float dir_x, dir_y, dir_z;  /* unit vector, direction of travel */
	float zenith_rad, azimuth_rad; /* where it came from */
	float log10_energy_gev;
	float track_score;
	float guess_dir_x, guess_dir_y, guess_dir_z; /* the first guess the model started from */
	uint32_t model_id;
	uint32_t flags; /* op_reco_status bits | op_result_flag bits */
} op_result_row;

#define OP_RESULT_ROW_BYTES 72u /* packed size in the file */

enum op_result_flag {
	OP_RESULT_F_UNKNOWN_SENSOR = 1u << 16, /* some pulses named sensors not in the geometry */
	OP_RESULT_F_SIMULATED = 1u << 17,      /* event came from a simulator */
	OP_RESULT_F_REPLAY = 1u << 18,         /* event was replayed from a file */
	OP_RESULT_F_SAFE_MODE = 1u << 19,      /* appliance in safe mode: LineFit only, network off */
	OP_RESULT_F_POWER_FAILSAFE = 1u << 20, /* inferred under the power fail-safe (no power reading) */
};

typedef struct op_segment op_segment;

typedef struct op_segment_meta {
	const char *model_name;
	const char *config_hash;      /* hex */
	const char *software_version;
	const char *site;
	uint32_t chunk_rows;          /* HDF5 chunk size in rows (0 = default 4096) */
	int deflate_level;            /* 0..9, 0 = no compression */
} op_segment_meta;

/* Create segments_dir/<name>.h5 (must not exist). */
int op_segment_create(const char *segments_dir, const char *name, const op_segment_meta *meta,
		      op_segment **ret);
int op_segment_append(op_segment *s, const op_result_row *rows, size_t n);
/* H5Fflush: rows reach the OS (not durable until seal). */
int op_segment_flush(op_segment *s);
uint64_t op_segment_rows(const op_segment *s);
uint64_t op_segment_bytes(const op_segment *s); /* file size on disk, approximate */
/*
 * Seal into outbox_dir following invariant 1, then free s (also on error: the file stays in
 * segments/ and the error is returned). sha256_hex receives 64 hex chars + NUL.
 */
int op_segment_seal(op_segment *s, const char *outbox_dir, char sha256_hex[65]);
/* fsync a directory: renames into it are durable once this returns 0. -errno. */
int op_segment_sync_dir(const char *dir);
/* mkdir, then fsync its parent: the fsyncs of what is later put into it would not keep the
 * directory's own entry through a power cut (state_dir wiped or new, the first segments,
 * confirmed files in sent/, north's received files). 0 (created, or there already: then the
 * parent's fsync is best effort) or -errno. */
int op_segment_mkdir(const char *path, mode_t mode);
/* Close without sealing (used on shutdown paths that must not publish). Accepts NULL. */
void op_segment_abandon(op_segment *s);

/* Read back the rows of a segment file (sealed or left open by a crash): those its last flush
 * vouched for (attribute rows_flushed), all of them in a file without it. */
int op_segment_read(const char *path, op_result_row **rows, size_t *n);
/* 1 when the filesystem of dir has under 1 MiB or under 16 inodes free: a failed write there is
 * a full disk (-ENOSPC), and a writer paused for it waits until this is 0. */
int op_segment_space_low(const char *dir);
/* Row count recorded in a readable segment, or negative errno: -EIO when it does not open as
 * one, -ECHILD when reading it crashed the reader, -ETIMEDOUT when it took over 10 s, another
 * (-EAGAIN, -EMFILE, ...) when no child process could be started. Read in a child process
 * (segment.c says why). */
long op_segment_count_rows(const char *path);
/* A string attribute of a readable segment (`model`, `config_hash`, ...) into buf, NUL-ended and
 * cut to cap - 1 bytes; negative errno (-ENOENT when the file has no such attribute). */
int op_segment_read_attr(const char *path, const char *name, char *buf, size_t cap);

#endif
