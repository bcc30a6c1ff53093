/*
 * fuzz_wire.c — libFuzzer target for the event decoder. Any input must be either rejected
 * with a reason or decoded into pulses that re-encode to exactly the same bytes (the reserved
 * word aside, which the decoder ignores and the encoder writes as zero).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	op_wire_header h;
	int rc = op_wire_decode(&h, data, size, 1u << 20);

	if (rc > 0 || rc <= -OP_WIRE_NERR)
		abort(); /* every verdict must be one the counters know */
	if (rc != OP_WIRE_OK)
		return 0;
	op_pulse *p = malloc((h.pulse_count ? h.pulse_count : 1) * sizeof(op_pulse));
	uint8_t *again = malloc(size);
	op_wire_get_pulses(p, data, &h);
	if (op_wire_encode(again, size, &h, p) != (long)size || memcmp(again, data, 44) != 0 ||
	    memcmp(again + 48, data + 48, size - 48) != 0)
		abort();
	free(p);
	free(again);
	return 0;
}
