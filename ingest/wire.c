/*
 * wire.c — encoder and decoder of the version-1 event message (docs/wire-format.md).
 *
 * The decoder reads every field with explicit little-endian byte loads (any host, no unaligned
 * access) and checks every length against the message size before touching the payload.
 * It must never read past `len`, never allocate, never log.
 */
#include "ingest/wire.h"

#include <math.h>
#include <string.h>

#include "ingest/crc32c.h"

/* Header byte offsets (docs/wire-format.md). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_HEADER_BYTES = 5,
	OFF_FLAGS = 6,
	OFF_STREAM = 8,
	OFF_PULSES = 12,
	OFF_SEQUENCE = 16,
	OFF_TIME = 24,
	OFF_PAYLOAD_BYTES = 32,
	OFF_PAYLOAD_CRC = 36,
	OFF_HEADER_CRC = 40,
	OFF_RESERVED = 44,
	HEADER_CRC_SPAN = 40,
};

_Static_assert(OFF_RESERVED + 4 == OP_WIRE_HEADER_BYTES, "header layout");
_Static_assert(OP_WIRE_PULSE_BYTES == 4 + 4 + 4 + 2, "pulse layout");

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
	return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void st32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void st64(uint8_t *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

const char *op_wire_strerror(int err)
{
	static const char *const names[OP_WIRE_NERR] = {
		"ok", "truncated", "bad_magic", "bad_version", "header_crc",
		"bad_length", "too_many_pulses", "payload_crc", "bad_value", "reserved_sequence",
	};
	if (err > 0 || -err >= OP_WIRE_NERR)
		return "unknown";
	return names[-err];
}

size_t op_wire_encoded_size(uint32_t pulse_count)
{
	return OP_WIRE_HEADER_BYTES + (size_t)pulse_count * OP_WIRE_PULSE_BYTES;
}

long op_wire_encode(uint8_t *buf, size_t cap, const op_wire_header *h, const op_pulse *pulses)
{
	uint32_t n = h->pulse_count;
	size_t size = op_wire_encoded_size(n);
	uint8_t *pay = buf + OP_WIRE_HEADER_BYTES;

	if (n > OP_WIRE_MAX_PULSES || cap < size)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		st32(pay + 4 * (size_t)i, pulses[i].sensor_id);
		st32(pay + 4 * ((size_t)n + i), f2u(pulses[i].time_ns));
		st32(pay + 4 * (2 * (size_t)n + i), f2u(pulses[i].charge_pe));
		st16(pay + 12 * (size_t)n + 2 * (size_t)i, pulses[i].flags);
	}
	st32(buf + OFF_MAGIC, OP_WIRE_MAGIC);
	buf[OFF_VERSION] = OP_WIRE_VERSION;
	buf[OFF_HEADER_BYTES] = OP_WIRE_HEADER_BYTES;
	st16(buf + OFF_FLAGS, h->flags);
	st32(buf + OFF_STREAM, h->stream_id);
	st32(buf + OFF_PULSES, n);
	st64(buf + OFF_SEQUENCE, h->sequence);
	st64(buf + OFF_TIME, h->detector_time_ns);
	st32(buf + OFF_PAYLOAD_BYTES, (uint32_t)(size - OP_WIRE_HEADER_BYTES));
	st32(buf + OFF_PAYLOAD_CRC, op_crc32c(0, pay, size - OP_WIRE_HEADER_BYTES));
	st32(buf + OFF_HEADER_CRC, op_crc32c(0, buf, HEADER_CRC_SPAN));
	st32(buf + OFF_RESERVED, 0);
	return (long)size;
}

int op_wire_decode(op_wire_header *h, const uint8_t *msg, size_t len, uint32_t max_pulses)
{
	uint32_t n, payload;
	const uint8_t *pay;

	if (len < OP_WIRE_HEADER_BYTES)
		return OP_WIRE_ETRUNCATED;
	if (ld32(msg + OFF_MAGIC) != OP_WIRE_MAGIC)
		return OP_WIRE_EMAGIC;
	if (msg[OFF_VERSION] != OP_WIRE_VERSION)
		return OP_WIRE_EVERSION;
	if (ld32(msg + OFF_HEADER_CRC) != op_crc32c(0, msg, HEADER_CRC_SPAN))
		return OP_WIRE_EHEADER_CRC;
	h->stream_id = ld32(msg + OFF_STREAM); /* trusted from here on, for naming a rejection */
	h->sequence = ld64(msg + OFF_SEQUENCE);
	n = ld32(msg + OFF_PULSES);
	payload = ld32(msg + OFF_PAYLOAD_BYTES);
	if (msg[OFF_HEADER_BYTES] != OP_WIRE_HEADER_BYTES || n > OP_WIRE_MAX_PULSES ||
	    (uint64_t)payload != (uint64_t)n * OP_WIRE_PULSE_BYTES ||
	    (uint64_t)len != OP_WIRE_HEADER_BYTES + (uint64_t)payload)
		return OP_WIRE_ELENGTH;
	if (n > max_pulses)
		return OP_WIRE_ETOO_MANY_PULSES;
	pay = msg + OP_WIRE_HEADER_BYTES;
	if (ld32(msg + OFF_PAYLOAD_CRC) != op_crc32c(0, pay, payload))
		return OP_WIRE_EPAYLOAD_CRC;
	/* Times and charges: finite floats only (exponent bits not all ones). */
	for (size_t i = 0; i < 2 * (size_t)n; i++) {
		if ((ld32(pay + 4 * ((size_t)n + i)) & 0x7f800000u) == 0x7f800000u)
			return OP_WIRE_EVALUE;
	}
	/* sequence accounting keeps "one past the highest seen", which 2^64 - 1 has not */
	if (h->sequence == UINT64_MAX)
		return OP_WIRE_ESEQUENCE;
	h->flags = ld16(msg + OFF_FLAGS);
	h->stream_id = ld32(msg + OFF_STREAM);
	h->sequence = ld64(msg + OFF_SEQUENCE);
	h->detector_time_ns = ld64(msg + OFF_TIME);
	h->pulse_count = n;
	h->payload_bytes = payload;
	h->payload_crc32c = ld32(msg + OFF_PAYLOAD_CRC);
	return OP_WIRE_OK;
}

int op_wire_peek_id(const uint8_t *msg, size_t len, uint32_t *stream_id, uint64_t *sequence)
{
	if (len < OP_WIRE_HEADER_BYTES || ld32(msg + OFF_MAGIC) != OP_WIRE_MAGIC || msg[OFF_VERSION] != OP_WIRE_VERSION ||
	    ld32(msg + OFF_HEADER_CRC) != op_crc32c(0, msg, HEADER_CRC_SPAN))
		return 0;
	*stream_id = ld32(msg + OFF_STREAM);
	*sequence = ld64(msg + OFF_SEQUENCE);
	return 1;
}

void op_wire_get_pulses(op_pulse *out, const uint8_t *msg, const op_wire_header *h)
{
	const uint8_t *pay = msg + OP_WIRE_HEADER_BYTES;
	size_t n = h->pulse_count;

	for (size_t i = 0; i < n; i++) {
		out[i].sensor_id = ld32(pay + 4 * i);
		out[i].time_ns = u2f(ld32(pay + 4 * (n + i)));
		out[i].charge_pe = u2f(ld32(pay + 4 * (2 * n + i)));
		out[i].flags = ld16(pay + 12 * n + 2 * i);
	}
}
