/*
 * geometry.h — where each sensor (DOM) is: sensor id → position in IceCube coordinates (m).
 * The IceCube-86 table is embedded in the binary (ingest/data/geometry_icecube86.csv, see
 * PROVENANCE.md there). Lookups are O(1) into a dense array. Never logs.
 */
#ifndef OP_INGEST_GEOMETRY_H
#define OP_INGEST_GEOMETRY_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_geometry op_geometry;

/* Parse "sensor_id,string,dom,x_m,y_m,z_m" CSV with a header line. -EINVAL on a malformed
 * line (its 1-based number in *bad_line when not NULL). */
int op_geometry_load_csv(const char *text, size_t len, op_geometry **ret, int *bad_line);
/* The embedded IceCube-86 table. */
int op_geometry_default(op_geometry **ret);
void op_geometry_close(op_geometry *g);
/* 0 and xyz, or -ENOENT for a sensor not in the table. */
int op_geometry_position(const op_geometry *g, uint32_t sensor_id, float xyz[3]);
uint32_t op_geometry_count(const op_geometry *g);
/* Largest sensor id + 1 (ids are dense in IceCube-86). */
uint32_t op_geometry_id_limit(const op_geometry *g);

#endif
