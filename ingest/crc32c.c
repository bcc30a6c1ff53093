/*
 * crc32c.c — CRC32C, portable and hardware paths. See crc32c.h.
 * The portable path is the reference; the test compares both on every length and alignment.
 * Never allocates; the tables are built once, on first use, and are read-only afterwards.
 */
#include "ingest/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t op_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
		lo ^= crc;
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
		      table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		      table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
static int hw_ok(void)
{
	return __builtin_cpu_supports("sse4.2");
}
static const char hw_name[] = "sse4.2";
#elif defined(__aarch64__)
__attribute__((target("+crc"))) static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;

	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_aarch64_crc32cx(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_aarch64_crc32cb(c, *p++);
	return ~c;
}
static int hw_ok(void)
{
	return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}
static const char hw_name[] = "armv8-crc";
#endif

#if defined(__x86_64__) || defined(__aarch64__)
static int use_hw = -1;

uint32_t op_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (use_hw < 0)
		use_hw = hw_ok(); /* idempotent: a race only computes the same answer twice */
	return use_hw ? crc_hw(crc, buf, len) : op_crc32c_portable(crc, buf, len);
}

const char *op_crc32c_impl(void)
{
	return hw_ok() ? hw_name : "portable";
}
#else
uint32_t op_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return op_crc32c_portable(crc, buf, len);
}

const char *op_crc32c_impl(void)
{
	return "portable";
}
#endif
