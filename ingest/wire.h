/*
 * wire.h — version 1 of the outpost event message (docs/wire-format.md is the byte table).
 *
 * One detector event per ZeroMQ message, little-endian:
 *   a 48-byte header, then the pulses as four arrays (structure of arrays):
 *   sensor_id u32[n], time_ns f32[n] (relative to the header's detector time),
 *   charge_pe f32[n], flags u16[n]  — 14 bytes per pulse.
 *
 * The decoder trusts nothing: every length is checked against the message size before use,
 * both CRC32Cs are verified, and every rejection has its own error code so that ingest can
 * count drops by reason. It never allocates, never logs, never aborts.
 */
#ifndef OP_INGEST_WIRE_H
#define OP_INGEST_WIRE_H
#include <stddef.h>
#include <stdint.h>

#define OP_WIRE_MAGIC 0x5645504Fu /* bytes "OPEV" */
#define OP_WIRE_VERSION 1
#define OP_WIRE_HEADER_BYTES 48
#define OP_WIRE_PULSE_BYTES 14
/* Hard ceiling of the format (the configured limit is usually far lower). */
#define OP_WIRE_MAX_PULSES (1u << 24)

enum op_wire_flag {
	OP_WIRE_F_SIMULATED = 1u << 0, /* produced by a simulator, not the detector */
	OP_WIRE_F_REPLAY = 1u << 1,    /* replayed from a file */
};

enum op_pulse_flag {
	OP_PULSE_F_HLC = 1u << 0, /* hard local coincidence */
};

typedef struct op_wire_header {
	uint16_t flags;
	uint32_t stream_id;
	uint64_t sequence;
	uint64_t detector_time_ns;
	uint32_t pulse_count;
	uint32_t payload_bytes;  /* = pulse_count * OP_WIRE_PULSE_BYTES */
	uint32_t payload_crc32c; /* CRC32C (Castagnoli) of the payload bytes */
} op_wire_header;

typedef struct op_pulse {
	uint32_t sensor_id;
	float time_ns; /* relative to detector_time_ns */
	float charge_pe;
	uint16_t flags;
} op_pulse;

/* Decoder verdicts. 0 is success; each negative value is one drop reason. */
enum op_wire_error {
	OP_WIRE_OK = 0,
	OP_WIRE_ETRUNCATED = -1,     /* shorter than the header */
	OP_WIRE_EMAGIC = -2,         /* not an outpost event */
	OP_WIRE_EVERSION = -3,       /* a version this build does not speak */
	OP_WIRE_EHEADER_CRC = -4,    /* header bytes damaged */
	OP_WIRE_ELENGTH = -5,        /* payload length disagrees with pulse count or message size */
	OP_WIRE_ETOO_MANY_PULSES = -6, /* over the configured limit */
	OP_WIRE_EPAYLOAD_CRC = -7,   /* payload bytes damaged */
	OP_WIRE_EVALUE = -8,         /* a pulse time or charge is not finite */
	OP_WIRE_ESEQUENCE = -9,      /* sequence 2^64 - 1, reserved: one past it does not exist */
};
#define OP_WIRE_NERR 10 /* number of verdicts including OK; index = -error */

/* Short stable name of a verdict, used as the drop-counter label ("payload_crc", ...). */
const char *op_wire_strerror(int err);

/* Bytes needed to encode an event with this many pulses. */
size_t op_wire_encoded_size(uint32_t pulse_count);

/*
 * Encode header h (payload_bytes and payload_crc32c are computed, h is not modified) and
 * pulses[0..h->pulse_count) into buf.  Returns bytes written, or -1 if cap is too small.
 */
long op_wire_encode(uint8_t *buf, size_t cap, const op_wire_header *h, const op_pulse *pulses);

/*
 * Validate a whole message and fill *h. Checks, in order: size, magic, version, header CRC,
 * lengths, max_pulses, payload CRC, finite values, reserved sequence. Returns OP_WIRE_OK or an
 * op_wire_error. From OP_WIRE_ELENGTH on (the header CRC passed) h->stream_id and h->sequence
 * are set even on failure: the rejection can name them.
 */
int op_wire_decode(op_wire_header *h, const uint8_t *msg, size_t len, uint32_t max_pulses);

/* The stream and sequence of a message whose header is sound (size, magic, version and header
 * CRC), whatever follows it: 1 with them set, else 0. For naming a message rejected before it
 * is decoded (one over ingest.max_message_bytes). */
int op_wire_peek_id(const uint8_t *msg, size_t len, uint32_t *stream_id, uint64_t *sequence);

/* Copy the pulses of a message that op_wire_decode accepted into out[0..h->pulse_count). */
void op_wire_get_pulses(op_pulse *out, const uint8_t *msg, const op_wire_header *h);

#endif
