/*
 * modelfile.h — the event network's HDF5 file (docs/model-format.md): load with full
 * validation, save atomically. Kept out of kernels/ so that kernels/ needs nothing but libc.
 */
#ifndef OP_APPLIANCE_MODELFILE_H
#define OP_APPLIANCE_MODELFILE_H
#include <stddef.h>

#include "kernels/model.h"

#define OP_MODEL_FORMAT_VERSION 1

/* 0 or negative errno; on failure err says what and where ("model file F: layer head.1: ..."). */
int op_model_load(const char *path, op_model *m, char *err, size_t errlen);
/* The same from a file image in memory (the fuzz target). */
int op_model_load_image(const void *buf, size_t len, op_model *m, char *err, size_t errlen);
/* The model built into the programs (kernels/models/event-v1.h5). */
int op_model_load_default(op_model *m, char *err, size_t errlen);
/* Write path via path.tmp + fsync + rename. */
int op_model_save(const char *path, const op_model *m, char *err, size_t errlen);

#endif
