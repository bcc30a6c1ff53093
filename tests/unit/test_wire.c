/*
 * test_wire.c — the version-1 event message: a golden byte vector written by hand from
 * docs/wire-format.md, round trips, every single-bit flip and every truncation rejected with
 * the right reason, limits, and non-finite values.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/crc32c.h"
#include "ingest/wire.h"
#include "unit/check.h"

static const uint8_t golden_head[40] = {
	0x4F, 0x50, 0x45, 0x56,                         /* magic "OPEV" */
	0x01, 0x30, 0x01, 0x00,                         /* version 1, header 48, flags 0x0001 */
	0x07, 0x00, 0x00, 0x00,                         /* stream 7 */
	0x02, 0x00, 0x00, 0x00,                         /* 2 pulses */
	0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* sequence 42 */
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* detector time 256 ns */
	0x1C, 0x00, 0x00, 0x00,                         /* payload 28 bytes */
	0, 0, 0, 0,                                     /* payload CRC: filled in below */
};
static const uint8_t golden_payload[28] = {
	0x05, 0x00, 0x00, 0x00, 0x3F, 0x14, 0x00, 0x00, /* sensor ids 5, 5183 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x41, /* times 0.0, 10.0 */
	0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0xC0, 0x3F, /* charges 1.0, 1.5 */
	0x01, 0x00, 0x00, 0x00,                         /* flags HLC, 0 */
};

int main(void)
{
	op_pulse p[2] = {{5, 0.0f, 1.0f, OP_PULSE_F_HLC}, {5183, 10.0f, 1.5f, 0}};
	op_wire_header h = {.flags = OP_WIRE_F_SIMULATED, .stream_id = 7, .sequence = 42,
			    .detector_time_ns = 256, .pulse_count = 2};
	uint8_t msg[200], want[76];
	op_wire_header got;
	op_pulse back[2];

	/* golden vector: header fields, payload CRC, header CRC over bytes 0..39, reserved 0 */
	memcpy(want, golden_head, 40);
	memcpy(want + 48, golden_payload, 28);
	uint32_t pc = op_crc32c(0, golden_payload, 28);
	for (int i = 0; i < 4; i++)
		want[36 + i] = (uint8_t)(pc >> (8 * i));
	uint32_t hc = op_crc32c(0, want, 40);
	for (int i = 0; i < 4; i++)
		want[40 + i] = (uint8_t)(hc >> (8 * i));
	memset(want + 44, 0, 4);
	CHECK(op_wire_encoded_size(2) == 76);
	CHECK(op_wire_encode(msg, 75, &h, p) == -1);
	CHECK(op_wire_encode(msg, sizeof(msg), &h, p) == 76);
	CHECK(memcmp(msg, want, 76) == 0);

	CHECK(op_wire_decode(&got, msg, 76, 100) == OP_WIRE_OK);
	CHECK(got.stream_id == 7 && got.sequence == 42 && got.detector_time_ns == 256 && got.pulse_count == 2 &&
	      got.flags == OP_WIRE_F_SIMULATED && got.payload_bytes == 28);
	op_wire_get_pulses(back, msg, &got);
	CHECK(memcmp(back, p, sizeof(p)) == 0 || (back[0].sensor_id == 5 && back[1].sensor_id == 5183 &&
						 back[1].time_ns == 10.0f && back[1].charge_pe == 1.5f &&
						 back[0].flags == OP_PULSE_F_HLC));

	/* reserved bytes are ignored; every other single-bit flip is caught */
	int all_caught = 1;
	for (size_t bit = 0; bit < 76 * 8; bit++) {
		uint8_t m[76];
		memcpy(m, msg, 76);
		m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = op_wire_decode(&got, m, 76, 100);
		if (bit / 8 >= 44 && bit / 8 < 48)
			all_caught &= rc == OP_WIRE_OK;
		else
			all_caught &= rc < 0;
	}
	CHECK(all_caught);
	/* every truncation, and one byte too many */
	int trunc_ok = 1;
	for (size_t len = 0; len < 76; len++) {
		int rc = op_wire_decode(&got, msg, len, 100);
		trunc_ok &= len < 48 ? rc == OP_WIRE_ETRUNCATED : rc == OP_WIRE_ELENGTH;
	}
	CHECK(trunc_ok);
	msg[76] = 0;
	CHECK(op_wire_decode(&got, msg, 77, 100) == OP_WIRE_ELENGTH);
	CHECK(op_wire_decode(&got, msg, 76, 1) == OP_WIRE_ETOO_MANY_PULSES);

	/* wrong version with a valid header CRC is a version error, not a CRC error */
	uint8_t v2[76];
	memcpy(v2, msg, 76);
	v2[4] = 2;
	hc = op_crc32c(0, v2, 40);
	for (int i = 0; i < 4; i++)
		v2[40 + i] = (uint8_t)(hc >> (8 * i));
	CHECK(op_wire_decode(&got, v2, 76, 100) == OP_WIRE_EVERSION);

	/* non-finite charge */
	p[1].charge_pe = NAN;
	CHECK(op_wire_encode(msg, sizeof(msg), &h, p) == 76);
	CHECK(op_wire_decode(&got, msg, 76, 100) == OP_WIRE_EVALUE);
	p[1].charge_pe = INFINITY;
	op_wire_encode(msg, sizeof(msg), &h, p);
	CHECK(op_wire_decode(&got, msg, 76, 100) == OP_WIRE_EVALUE);
	p[1].charge_pe = 1.0f;

	/* sequence 2^64 - 1 is reserved (one past it does not exist); 2^64 - 2 is an event */
	op_wire_header hs = h;
	hs.sequence = UINT64_MAX;
	CHECK(op_wire_encode(msg, sizeof(msg), &hs, p) == 76);
	CHECK(op_wire_decode(&got, msg, 76, 100) == OP_WIRE_ESEQUENCE);
	CHECK(!strcmp(op_wire_strerror(OP_WIRE_ESEQUENCE), "reserved_sequence"));
	hs.sequence = UINT64_MAX - 1;
	op_wire_encode(msg, sizeof(msg), &hs, p);
	CHECK(op_wire_decode(&got, msg, 76, 100) == OP_WIRE_OK && got.sequence == UINT64_MAX - 1);

	/* zero and 10,000 pulses round trip */
	h.pulse_count = 0;
	CHECK(op_wire_encode(msg, sizeof(msg), &h, p) == 48);
	CHECK(op_wire_decode(&got, msg, 48, 100) == OP_WIRE_OK && got.pulse_count == 0);
	uint32_t n = 10000;
	op_pulse *big = calloc(n, sizeof(op_pulse)), *bb = calloc(n, sizeof(op_pulse));
	uint8_t *bm = malloc(op_wire_encoded_size(n));
	for (uint32_t i = 0; i < n; i++)
		big[i] = (op_pulse){i * 7, (float)i * 0.5f, (float)(i % 13) + 0.25f, (uint16_t)(i & 1)};
	h.pulse_count = n;
	CHECK(op_wire_encode(bm, op_wire_encoded_size(n), &h, big) == (long)op_wire_encoded_size(n));
	CHECK(op_wire_decode(&got, bm, op_wire_encoded_size(n), n) == OP_WIRE_OK);
	op_wire_get_pulses(bb, bm, &got);
	int same = 1;
	for (uint32_t i = 0; i < n; i++)
		same &= bb[i].sensor_id == big[i].sensor_id && bb[i].time_ns == big[i].time_ns &&
			bb[i].charge_pe == big[i].charge_pe && bb[i].flags == big[i].flags;
	CHECK(same);
	/* a message too large for ingest's limit is still named by its header (the log line of its
	 * rejection); a damaged header names nothing */
	uint32_t sid = 0;
	uint64_t sq = 0;
	CHECK(op_wire_peek_id(bm, op_wire_encoded_size(n), &sid, &sq) == 1 && sid == h.stream_id && sq == h.sequence);
	CHECK(op_wire_peek_id(bm, 48, &sid, &sq) == 1); /* the header alone is enough */
	CHECK(op_wire_peek_id(bm, 47, &sid, &sq) == 0);
	bm[20] ^= 1; /* inside the header CRC's span */
	CHECK(op_wire_peek_id(bm, op_wire_encoded_size(n), &sid, &sq) == 0);
	free(big), free(bb), free(bm);

	CHECK(!strcmp(op_wire_strerror(OP_WIRE_EPAYLOAD_CRC), "payload_crc"));
	CHECK(!strcmp(op_wire_strerror(-100), "unknown"));
	return check_finish("test_wire");
}
