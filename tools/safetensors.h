/*
 * safetensors.h — read the safetensors format PyTorch users export: an 8-byte little-endian
 * header length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__":
 * {string: string}}, then the raw tensor bytes. Only what outpost-quantize needs: F32 tensors
 * of rank ≤ 2 and the string metadata. Every offset is checked against the file.
 */
#ifndef OP_TOOLS_SAFETENSORS_H
#define OP_TOOLS_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#define OP_ST_MAX 64

typedef struct op_st_tensor {
	char name[64];
	char dtype[8];
	uint32_t rank;
	uint64_t shape[2];
	uint64_t begin, end; /* byte offsets into the data section */
} op_st_tensor;

typedef struct op_safetensors {
	uint8_t *file;
	size_t size, data_off;
	op_st_tensor t[OP_ST_MAX];
	int n;
	char meta_key[OP_ST_MAX][64], meta_val[OP_ST_MAX][512];
	int n_meta;
} op_safetensors;

/* 0 or -1 with err filled ("FILE: byte N: ..."). */
int op_st_open(const char *path, op_safetensors *st, char *err, size_t errlen);
void op_st_close(op_safetensors *st);
/* A copy of an F32 tensor's values (malloc'ed), or NULL with err. rows/cols from its shape
 * (rank 1: rows = 1). */
float *op_st_f32(const op_safetensors *st, const char *name, uint64_t *rows, uint64_t *cols, char *err, size_t errlen);
const char *op_st_meta(const op_safetensors *st, const char *key);

#endif
