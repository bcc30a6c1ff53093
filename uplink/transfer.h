/*
 * transfer.h — the custody-transfer protocol between the appliance's uplink (ZeroMQ DEALER,
 * connects) and outpost-north (ROUTER, binds). docs/uplink-protocol.md is the full description.
 *
 * Every message is multi-part: frame 0 the command (ASCII), frame 1 the segment name, then:
 *   OFFER     u64 size | 64 hex sha256 | u32 protocol version   → HAVE or CONFIRMED or REJECTED
 *   HAVE      u64 offset north already holds
 *   CHUNK     u64 offset | bytes | u32 CRC32C of the bytes       → ACK or NAK or REJECTED
 *   ACK       u64 offset after the chunk
 *   NAK       u64 offset north expects (north appends only at exactly its offset)
 *   COMMIT    (nothing)                                          → CONFIRMED or REJECTED or NAK
 *   CONFIRMED 64 hex sha256 of the file north has made durable
 *   REJECTED  reason text
 *   PING      (empty name)                                       → PONG (keepalive)
 * Numbers are fixed-width little-endian. Names are validated on both ends (north writes files
 * named by what it receives: this is a security boundary).
 */
#ifndef OP_UPLINK_TRANSFER_H
#define OP_UPLINK_TRANSFER_H
#include <stddef.h>
#include <stdint.h>

#define OP_XFER_VERSION 2u /* 2: a CRC32C per chunk */
#define OP_XFER_NAME_MAX 200
#define OP_XFER_CHUNK_MAX (64u << 20)

/* 1 when name is a safe file name to ship: [A-Za-z0-9._-], 1..OP_XFER_NAME_MAX, not starting
 * with '.', and not one of the names the two ends keep for themselves (*.sha256 sidecars,
 * north's *.part and *.commit, ledger.tsv). Results are .h5, alerts and telemetry .json; bulk
 * files may be anything an operator places in outbox/bulk/. */
int op_xfer_name_ok(const char *name, size_t len);

static inline void op_xfer_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void op_xfer_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t op_xfer_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t op_xfer_get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
