/*
 * crc32c.h — CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the wire
 * format. A hardware path (SSE4.2 crc32 on x86-64, the ARMv8 CRC32C instructions on aarch64)
 * chosen at run time, and a portable slicing-by-8 path that defines the answer.
 * Check value: op_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef OP_INGEST_CRC32C_H
#define OP_INGEST_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Chainable: pass 0 to start, the previous result to continue. */
uint32_t op_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t op_crc32c_portable(uint32_t crc, const void *buf, size_t len);
/* "sse4.2", "armv8-crc" or "portable": the path op_crc32c uses on this machine. */
const char *op_crc32c_impl(void);

#endif
