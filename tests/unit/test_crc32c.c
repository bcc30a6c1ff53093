/*
 * test_crc32c.c — CRC32C against published check values (RFC 3720 B.4 and the "123456789"
 * check), and the hardware path equal to the portable one on every length 0..1024 at every
 * alignment 0..7, and across chained calls.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest/crc32c.h"
#include "unit/check.h"

int main(void)
{
	uint8_t buf[1100], zeros[32] = {0}, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	CHECK_EQ_U64(op_crc32c(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ_U64(op_crc32c_portable(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ_U64(op_crc32c(0, zeros, 32), 0x8A9136AAu);
	CHECK_EQ_U64(op_crc32c(0, ones, 32), 0x62A8AB43u);
	CHECK_EQ_U64(op_crc32c(0, inc, 32), 0x46DD794Eu);
	CHECK_EQ_U64(op_crc32c(0, "", 0), 0);

	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	int same = 1;
	for (size_t align = 0; align < 8; align++)
		for (size_t len = 0; len <= 1024; len++)
			same &= op_crc32c(0, buf + align, len) == op_crc32c_portable(0, buf + align, len);
	CHECK(same);
	/* chaining: crc(a || b) == crc(crc(a), b) */
	uint32_t whole = op_crc32c(0, buf, 1000);
	CHECK_EQ_U64(op_crc32c(op_crc32c(0, buf, 333), buf + 333, 667), whole);
	CHECK_EQ_U64(op_crc32c_portable(op_crc32c_portable(0, buf, 5), buf + 5, 995), whole);
	fprintf(stderr, "crc32c path on this machine: %s\n", op_crc32c_impl());
	return check_finish("test_crc32c");
}
