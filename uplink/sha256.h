/*
 * sha256.h — SHA-256 (FIPS 180-4) for segment checksums and custody transfer.
 * Plain C, no dependencies; the north side and the appliance both use it.
 */
#ifndef OP_UPLINK_SHA256_H
#define OP_UPLINK_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_sha256 {
	uint32_t h[8];
	uint64_t bytes;
	uint8_t buf[64];
	size_t used;
} op_sha256;

void op_sha256_init(op_sha256 *s);
void op_sha256_update(op_sha256 *s, const void *data, size_t len);
void op_sha256_final(op_sha256 *s, uint8_t digest[32]);
/* 64 lowercase hex characters and a NUL. */
void op_sha256_hex(const uint8_t digest[32], char hex[65]);
/* The hex SHA-256 of len bytes at data. */
void op_sha256_buf_hex(const void *data, size_t len, char hex[65]);
/* Hash a whole file; 0 or negative errno. */
int op_sha256_file(const char *path, char hex[65]);

#endif
