/*
 * geometry.h — where each sensor (DOM) is: sensor id → position in IceCube coordinates (m).
 * The IceCube-86 table is embedded in the binary (ingest/data/geometry_icecube86.csv, see
 * PROVENANCE.md there). Lookups are O(1) into a dense array. Never logs.
 */
#ifndef OP_INGEST_GEOMETRY_H
#define OP_INGEST_GEOMETRY_H
#include <stddef.h>
#include <stdint.h>

#include "ingest/wire.h"

typedef struct op_geometry op_geometry;

/* Pulses placed in the detector, structure of arrays: what the reconstructions read.
 * flags may be NULL when the caller does not keep them. */
typedef struct op_placed_pulses {
	float *x, *y, *z, *t, *q;
	uint16_t *flags;
} op_placed_pulses;

/* Parse "sensor_id,string,dom,x_m,y_m,z_m" CSV with a header line. -EINVAL on a malformed
 * line (its 1-based number in *bad_line when not NULL). */
int op_geometry_load_csv(const char *text, size_t len, op_geometry **ret, int *bad_line);
/* The embedded IceCube-86 table. */
int op_geometry_default(op_geometry **ret);
void op_geometry_close(op_geometry *g);
/* 0 and xyz, or -ENOENT for a sensor not in the table. */
int op_geometry_position(const op_geometry *g, uint32_t sensor_id, float xyz[3]);
uint32_t op_geometry_count(const op_geometry *g);
/*
 * Place n pulses: each whose sensor is in the table is written, in order, from index `at` of
 * dst (which has room for n more). Returns how many were placed; the others named sensors the
 * table does not know (the caller counts them).
 */
uint32_t op_geometry_place(const op_geometry *g, const op_pulse *p, uint32_t n, const op_placed_pulses *dst,
			   size_t at);
/* Largest sensor id + 1 (ids are dense in IceCube-86). */
uint32_t op_geometry_id_limit(const op_geometry *g);

#endif
