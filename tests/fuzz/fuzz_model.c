/*
 * fuzz_model.c — the model loader against corrupted model files. The input drives edits of
 * the built-in model's file: each 8-byte record picks an HDF5 object of the file (a root
 * attribute, a layer's attribute or dataset, a normalisation vector) and overwrites part of
 * its value with fuzz bytes, or cuts the file short. The loader must then either accept a
 * model that passes op_model_check or refuse with a message naming the file — never crash,
 * leak or read out of bounds. (The bytes of HDF5's own structures are libhdf5's to parse;
 * this target aims at our validation of what those structures hold.)
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/modelfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const objs[] = {"/norm/pulse_mean", "/norm/pulse_scale", "/norm/event_mean", "/norm/event_scale",
				   "/norm/log10e", "/layers/pulse.0/bias", "/layers/pulse.0/codes", "/layers/pulse.0/scales",
				   "/layers/pulse.1/scales", "/layers/pulse.1/codes", "/layers/head.0/weight",
				   "/layers/head.2/bias"};
static const char *const attrs[][2] = {{"/", "format_version"}, {"/", "max_pulses"}, {"/", "pulse_layers"},
				       {"/", "head_layers"}, {"/", "model_id"}, {"/layers/pulse.0", "n"},
				       {"/layers/pulse.0", "k"}, {"/layers/head.1", "k"}, {"/layers/head.2", "n"},
				       {"/layers/pulse.1", "act_scale"}, {"/layers/pulse.0", "tensor_scale"},
				       {"/layers/pulse.1", "relu"}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static op_model base;
	static int have;
	char path[64], err[512];
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (!have) {
		if (op_model_load_default(&base, err, sizeof(err)) < 0)
			__builtin_trap();
		have = 1;
	}
	snprintf(path, sizeof(path), "/tmp/outpost-fuzz-model-%d.h5", (int)getpid());
	if (op_model_save(path, &base, err, sizeof(err)) < 0)
		__builtin_trap();
	long cut = -1;
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	for (size_t i = 0; f >= 0 && i + 8 <= size; i += 8) {
		const uint8_t *r = data + i;
		if (r[0] % 16 == 15) { /* cut the file */
			cut = (long)(r[1] | r[2] << 8 | r[3] << 16);
			continue;
		}
		if (r[0] & 1) { /* a dataset: overwrite 4 bytes at a chosen offset */
			hid_t d = H5Dopen2(f, objs[r[1] % (sizeof(objs) / sizeof(objs[0]))], H5P_DEFAULT);
			if (d < 0)
				continue;
			hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
			size_t n = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t);
			uint8_t *buf = malloc(n + 4);
			if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 && n >= 4) {
				size_t at = ((size_t)r[2] | (size_t)r[3] << 8) % (n - 3);
				memcpy(buf + at, r + 4, 4);
				H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
			}
			free(buf);
			H5Tclose(t), H5Sclose(sp), H5Dclose(d);
		} else { /* a numeric attribute: overwrite its value */
			size_t k = r[1] % (sizeof(attrs) / sizeof(attrs[0]));
			hid_t o = H5Oopen(f, attrs[k][0], H5P_DEFAULT);
			if (o < 0)
				continue;
			hid_t a = H5Aopen(o, attrs[k][1], H5P_DEFAULT);
			if (a >= 0) {
				hid_t t = H5Aget_type(a);
				uint8_t v[8] = {0};
				memcpy(v, r + 4, 4);
				if (H5Tget_size(t) <= 8)
					H5Awrite(a, t, v);
				H5Tclose(t);
				H5Aclose(a);
			}
			H5Oclose(o);
		}
	}
	if (f >= 0)
		H5Fclose(f);
	if (cut >= 0 && truncate(path, cut) != 0)
		cut = -1;
	op_model m;
	int rc = op_model_load(path, &m, err, sizeof(err));
	if (rc == 0) {
		char why[256];
		if (op_model_check(&m, why, sizeof(why)) < 0)
			__builtin_trap(); /* accepted something invalid */
		op_model_free(&m);
	} else if (!strstr(err, "model file")) {
		__builtin_trap(); /* an error that does not say where */
	}
	unlink(path);
	return 0;
}
