/*
 * test_modelfile.c — the event network's file and forward pass.
 *  - the built-in model loads, passes its checks and reconstructs simulated tracks in every
 *    precision (directions are unit vectors, scores in [0, 1]);
 *  - save → load round trips give bit-identical outputs (FP32 and FP4 layers);
 *  - a file cut short anywhere, or with a corrupted value, is refused with a message that
 *    names the file and the layer or object;
 *  - outputs do not depend on the batch an event arrives in, nor on the thread count.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/modelfile.h"
#include "check.h"
#include "sim_events.h"
#include <hdf5.h>

enum { NE = 300 };
static op_reco_event ev[NE];
static op_reco_out guess[NE];


static void run(const op_model *m, op_reco_out *out, int threads, size_t batch)
{
	op_model_ws *ws[4];
	for (int i = 0; i < 4; i++)
		ws[i] = op_model_ws_new();
	for (size_t e = 0; e < NE; e += batch)
		CHECK(op_model_run(m, ws, threads, ev + e, guess + e, out + e, NE - e < batch ? NE - e : batch) == 0);
	for (int i = 0; i < 4; i++)
		op_model_ws_free(ws[i]);
}

static int same_out(const op_reco_out *a, const op_reco_out *b)
{
	for (int e = 0; e < NE; e++)
		if (memcmp(a[e].dir, b[e].dir, sizeof(a[e].dir)) || memcmp(&a[e].log10_energy_gev, &b[e].log10_energy_gev, 4) ||
		    memcmp(&a[e].track_score, &b[e].track_score, 4))
			return 0;
	return 1;
}

/* Rewrite one dataset or attribute of a saved file. */
static void poke_f32(const char *path, const char *obj, const char *ds, float v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, obj, H5P_DEFAULT);
	hid_t d = H5Dopen2(g, ds, H5P_DEFAULT), sp = H5Dget_space(d);
	hssize_t n = H5Sget_simple_extent_npoints(sp);
	float *buf = malloc((size_t)n * sizeof(float));
	H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	buf[n / 2] = v;
	H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	free(buf);
	H5Sclose(sp), H5Dclose(d), H5Gclose(g), H5Fclose(f);
}

static void poke_u8(const char *path, const char *obj, const char *ds, uint8_t v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, obj, H5P_DEFAULT);
	hid_t d = H5Dopen2(g, ds, H5P_DEFAULT), sp = H5Dget_space(d);
	hssize_t n = H5Sget_simple_extent_npoints(sp);
	uint8_t *buf = malloc((size_t)n);
	H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	buf[0] = v;
	H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	free(buf);
	H5Sclose(sp), H5Dclose(d), H5Gclose(g), H5Fclose(f);
}

/* Replace a string attribute of obj (a fixed-length string, as the writer makes them). */
static void poke_str(const char *path, const char *obj, const char *name, const char *v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Oopen(f, obj, H5P_DEFAULT);
	H5Adelete(g, name);
	hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
	H5Tset_size(t, strlen(v) + 1);
	hid_t a = H5Acreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
	H5Awrite(a, t, v);
	H5Aclose(a), H5Sclose(sp), H5Tclose(t), H5Oclose(g), H5Fclose(f);
}

static void poke_u32_attr(const char *path, const char *obj, const char *name, uint32_t v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Oopen(f, obj, H5P_DEFAULT);
	hid_t a = H5Aopen(g, name, H5P_DEFAULT);
	H5Awrite(a, H5T_NATIVE_UINT32, &v);
	H5Aclose(a), H5Oclose(g), H5Fclose(f);
}

/* Replace attribute `name` of obj with one of the given file type, space and value. */
static void poke_attr(const char *path, const char *obj, const char *name, hid_t type, hid_t space, const void *v)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Oopen(f, obj, H5P_DEFAULT);
	H5Adelete(g, name);
	hid_t a = H5Acreate2(g, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
	H5Awrite(a, type, v);
	H5Aclose(a), H5Oclose(g), H5Fclose(f);
}

static void poke_num(const char *path, const char *obj, const char *name, hid_t type, const void *v)
{
	hid_t sp = H5Screate(H5S_SCALAR);
	poke_attr(path, obj, name, type, sp, v);
	H5Sclose(sp);
}

/* Rewrite dataset ds of obj with its values as signed bytes (what a packer using numpy's int8
 * would write). */
static void poke_int8_ds(const char *path, const char *obj, const char *ds)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), g = H5Gopen2(f, obj, H5P_DEFAULT);
	hid_t d = H5Dopen2(g, ds, H5P_DEFAULT), sp = H5Dget_space(d);
	hssize_t n = H5Sget_simple_extent_npoints(sp);
	uint8_t *buf = malloc((size_t)n);
	H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	H5Dclose(d);
	H5Ldelete(g, ds, H5P_DEFAULT);
	d = H5Dcreate2(g, ds, H5T_STD_I8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(d, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
	free(buf);
	H5Sclose(sp), H5Dclose(d), H5Gclose(g), H5Fclose(f);
}

/* The model with every FP4 layer quantized again as MXFP4 (from its decoded weights). */
static int mxfp4_copy(const op_model *m, op_model *mx)
{
	*mx = *m;
	mx->format = OP_FP4_MXFP4;
	for (uint32_t p = 0; p < 2; p++) {
		const op_model_layer *src = p ? m->head : m->pulse;
		op_model_layer *dst = p ? mx->head : mx->pulse;
		const uint32_t nl = p ? m->n_head_layers : m->n_pulse_layers;
		for (uint32_t i = 0; i < nl; i++) {
			const op_fp4_linear *L = &src[i].lin;
			if (src[i].precision != OP_MODEL_FP4) {
				memset(&dst[i], 0, sizeof(dst[i])); /* not shared with m: copied */
				if (op_model_layer_fp32(&dst[i], src[i].name, L->n, L->k, L->wdec, L->bias, L->relu) < 0)
					return -1;
				continue;
			}
			float *w = malloc((size_t)L->n * L->k * sizeof(float));
			if (!w)
				return -1;
			for (uint32_t r = 0; r < L->n; r++)
				for (uint32_t c = 0; c < L->k; c++)
					w[(size_t)r * L->k + c] = L->wdec[(size_t)r * L->w.cols + c] * L->w.tensor_scale;
			int rc = op_model_layer_quantize(&dst[i], src[i].name, L->n, L->k, w, L->bias, L->relu, OP_FP4_MXFP4,
							 src[i].mode, m->mx_mode, 0.0f, NULL);
			free(w);
			if (rc < 0)
				return -1;
		}
	}
	return 0;
}

static int refused(const char *path, const char *must_contain)
{
	op_model m;
	char err[512] = "";
	int rc = op_model_load(path, &m, err, sizeof(err));
	if (rc == 0) {
		op_model_free(&m);
		fprintf(stderr, "accepted a bad file (%s)\n", must_contain);
		return 0;
	}
	if (!strstr(err, "model file") || !strstr(err, must_contain)) {
		fprintf(stderr, "message '%s' lacks '%s'\n", err, must_contain);
		return 0;
	}
	return 1;
}

int main(void)
{
	char dir[] = "/tmp/outpost-model-XXXXXX", path[256], bad[256], err[512];
	op_model m, back;
	op_reco_out *o1 = calloc(NE, sizeof(*o1)), *o2 = calloc(NE, sizeof(*o2));
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/m.h5", dir);
	snprintf(bad, sizeof(bad), "%s/bad.h5", dir);
	sim_events(ev, guess, NE, 5, 1.0, 5000, 0);

	CHECK(op_model_load_default(&m, err, sizeof(err)) == 0);
	if (check_failures) {
		fprintf(stderr, "%s\n", err);
		return check_finish("test_modelfile");
	}
	CHECK(m.precision == OP_MODEL_FP4 && m.id >= 16);
	run(&m, o1, 1, NE);
	int units = 1, scores = 1, finite = 0;
	for (int e = 0; e < NE; e++) {
		if (!isfinite(o1[e].dir[0]))
			continue;
		finite++;
		double n2 = o1[e].dir[0] * o1[e].dir[0] + o1[e].dir[1] * o1[e].dir[1] + o1[e].dir[2] * o1[e].dir[2];
		units &= fabs(n2 - 1) < 1e-5;
		scores &= o1[e].track_score >= 0 && o1[e].track_score <= 1;
	}
	CHECK(finite > NE * 9 / 10);
	CHECK(units);
	CHECK(scores);
	/* batch composition and threads change nothing */
	run(&m, o2, 3, 37);
	CHECK(same_out(o1, o2));
	/* and neither does the kernel rung: the whole network on the scalar reference gives the
	 * same bits as on the best rung of this machine */
	setenv("OUTPOST_KERNEL_RUNG", "scalar", 1);
	run(&m, o2, 1, NE);
	unsetenv("OUTPOST_KERNEL_RUNG");
	CHECK(same_out(o1, o2));

	/* A batch whose working buffers do not fit (a burst of large events, a machine short of
	 * memory) is run in parts, with the same results; refused only when one event does not
	 * fit. Before, the whole batch failed, the infer stage exited, and ingest sent it again. */
	{
		uint32_t wmax = 0;
		for (uint32_t l = 0; l < m.n_pulse_layers; l++)
			wmax = m.pulse[l].lin.n > wmax ? m.pulse[l].lin.n : wmax;
		/* the whole batch needs two buffers of this (a layer's input and output): half fits */
		const size_t limit = (op_model_batch_pulses(&m, ev, NE) + 1) * wmax * sizeof(float);
		op_model_ws *lim[1] = {op_model_ws_new()}, *tiny[1] = {op_model_ws_new()};
		op_model_ws_set_limit(lim[0], limit);
		memset(o2, 0, NE * sizeof(*o2));
		CHECK(op_model_run(&m, lim, 1, ev, guess, o2, NE) == 0);
		CHECK(same_out(o1, o2));
		op_model_ws_set_limit(tiny[0], 1024);
		CHECK(op_model_run(&m, tiny, 1, ev, guess, o2, 1) == -ENOMEM);
		op_model_ws_free(lim[0]);
		op_model_ws_free(tiny[0]);
	}

	/* an event whose times are finite but 6.8e38 ns apart: its features overflow; it comes out
	 * degenerate with NaN outputs (not what a ReLU makes of a NaN: finite and flagged OK),
	 * and the events around it are untouched */
	{
		const uint32_t e = 7, np = ev[e].n;
		float *t = malloc(np * sizeof(float));
		const float *keep = ev[e].t_ns;
		for (uint32_t i = 0; i < np; i++)
			t[i] = i ? -3.4e38f : 3.4e38f;
		ev[e].t_ns = t;
		run(&m, o2, 1, NE);
		ev[e].t_ns = keep;
		free(t);
		CHECK((o2[e].status & OP_RECO_DEGENERATE) && isnan(o2[e].dir[0]) && isnan(o2[e].log10_energy_gev));
		int others = 1;
		for (int i = 0; i < NE; i++)
			if (i != (int)e && (memcmp(o1[i].dir, o2[i].dir, sizeof(o1[i].dir)) || o1[i].status != o2[i].status))
				others = 0;
		CHECK(others);
	}

	/* round trip */
	CHECK(op_model_save(path, &m, err, sizeof(err)) == 0);
	CHECK(op_model_load(path, &back, err, sizeof(err)) == 0);
	run(&back, o2, 2, 64);
	CHECK(same_out(o1, o2));
	CHECK(strcmp(back.provenance, m.provenance) == 0 && back.id == m.id);
	op_model_free(&back);

	/* truncation anywhere is refused, never crashes */
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *img = malloc((size_t)size);
	CHECK(fread(img, 1, (size_t)size, f) == (size_t)size);
	fclose(f);
	int cut_ok = 1;
	for (int k = 1; k < 12; k++) {
		long cut = size * k / 12;
		FILE *g = fopen(bad, "wb");
		fwrite(img, 1, (size_t)cut, g);
		fclose(g);
		cut_ok &= refused(bad, "");
		op_model mm;
		cut_ok &= op_model_load_image(img, (size_t)cut, &mm, err, sizeof(err)) < 0;
	}
	CHECK(cut_ok);
	free(img);

	/* corrupted values name what is wrong and where */
	struct {
		const char *obj, *ds, *expect;
		float v;
	} fcases[] = {{"/layers/head.1", "bias", "layer head.1: bias holds a NaN", NAN},
		      {"/norm", "pulse_scale", "normalisation", 0.0f}};
	for (size_t i = 0; i < sizeof(fcases) / sizeof(fcases[0]); i++) {
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_f32(bad, fcases[i].obj, fcases[i].ds, fcases[i].v);
		CHECK(refused(bad, fcases[i].expect));
	}
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_u8(bad, "/layers/pulse.1", "scales", m.format == OP_FP4_NVFP4 ? 0x7f : 0xff);
	CHECK(refused(bad, "layer pulse.1: block scale 0"));
	/* attributes as other writers make them: a null-padded string of exactly its length (h5py,
	 * numpy 'S') loads whole; an array where one string belongs is refused, not read past the
	 * buffer; a signed, fractional or negative number where a count belongs is refused, not
	 * clamped or cut */
	{
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
		H5Tset_size(t, strlen("outpost-event"));
		H5Tset_strpad(t, H5T_STR_NULLPAD);
		poke_attr(bad, "/", "network", t, sp, "outpost-event");
		op_model mm;
		int lr = op_model_load(bad, &mm, err, sizeof(err));
		if (lr != 0)
			fprintf(stderr, "null-padded string refused: %s\n", err);
		CHECK(lr == 0);
		if (lr == 0)
			op_model_free(&mm);
		H5Sclose(sp), H5Tclose(t);
		char many[8][16]; /* 128 bytes, for a 64-byte buffer */
		for (int i = 0; i < 8; i++)
			snprintf(many[i], sizeof(many[i]), "outpost-event");
		hsize_t eight = 8;
		t = H5Tcopy(H5T_C_S1), sp = H5Screate_simple(1, &eight, NULL);
		H5Tset_size(t, 16);
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_attr(bad, "/", "network", t, sp, many);
		CHECK(refused(bad, "attribute 'network' is not a single string"));
		H5Sclose(sp), H5Tclose(t);
		const double frac = 16.9;
		const int32_t neg = -5;
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_num(bad, "/layers/pulse.1", "k", H5T_IEEE_F64LE, &frac);
		CHECK(refused(bad, "layer pulse.1: attribute 'k' is 16.9: not a whole number"));
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_num(bad, "/", "model_id", H5T_STD_I32LE, &neg);
		CHECK(refused(bad, "attribute 'model_id' is -5"));
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_int8_ds(bad, "/layers/pulse.1", "codes");
		CHECK(refused(bad, "layer pulse.1: dataset 'codes' has the wrong element type"));
	}
	/* scales that pass the code check but give weights or a rescale beyond a float */
	{
		const float huge = 1e36f, tiny = 1e-40f;
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_num(bad, "/layers/pulse.1", "tensor_scale", H5T_IEEE_F32LE, &huge);
		CHECK(refused(bad, "layer pulse.1: the largest weight"));
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_u8(bad, "/layers/pulse.1", "scales", m.format == OP_FP4_NVFP4 ? 0x7e : 0xfe);
		if (m.format == OP_FP4_MXFP4)
			CHECK(refused(bad, "layer pulse.1: the largest weight"));
		CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
		poke_num(bad, "/layers/pulse.1", "act_scale", H5T_IEEE_F32LE, &tiny);
		CHECK(refused(bad, "layer pulse.1: act_scale"));
	}
	/* MXFP4: a block scale of 2^126 gives weights of 6 · 2^126, beyond a float as the kernels
	 * hold them (tensor_scale is applied last), whatever tensor_scale says; 2^125 does not.
	 * Before, tensor_scale 0.5 let 2^126 through and every event's outputs were NaN. */
	{
		op_model mx;
		if (mxfp4_copy(&m, &mx) != 0) { /* (its layers in part m's: not freed) */
			CHECK(!"an MXFP4 copy of the model");
			return check_finish("test_modelfile");
		}
		const float half = 0.5f;
		CHECK(op_model_save(bad, &mx, err, sizeof(err)) == 0);
		op_model mback;
		CHECK(op_model_load(bad, &mback, err, sizeof(err)) == 0 && mback.pulse[1].lin.w.format == OP_FP4_MXFP4);
		op_model_free(&mback);
		poke_u8(bad, "/layers/pulse.1", "scales", 0xfd); /* 2^126 */
		poke_num(bad, "/layers/pulse.1", "tensor_scale", H5T_IEEE_F32LE, &half);
		CHECK(refused(bad, "layer pulse.1: the largest weight"));
		CHECK(op_model_save(bad, &mx, err, sizeof(err)) == 0);
		poke_u8(bad, "/layers/pulse.1", "scales", 0xfc); /* 2^125: 6 · 2^125 is a float */
		poke_num(bad, "/layers/pulse.1", "tensor_scale", H5T_IEEE_F32LE, &half);
		CHECK(op_model_load(bad, &mback, err, sizeof(err)) == 0);
		op_model_free(&mback);
		op_model_free(&mx);
	}
	/* a network this build does not compute, and a summary that misstates the layers: refused,
	 * not run as something else */
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "activation", "gelu");
	CHECK(refused(bad, "activation 'gelu': this build computes relu"));
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "pooling", "attention");
	CHECK(refused(bad, "pooling 'attention'"));
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "outputs", "dir_dx,dir_dy,dir_dz,track_logit,log10_energy");
	CHECK(refused(bad, "outputs '"));
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "mode", m.mode == OP_W4A4 ? "w4a16" : "w4a4");
	CHECK(refused(bad, m.mode == OP_W4A4 ? "mode 'w4a16', but the layers are w4a4" : "mode 'w4a4', but the layers are w4a16"));
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/layers/pulse.1", "mode", m.mode == OP_W4A4 ? "w4a16" : "w4a4");
	CHECK(refused(bad, "layer pulse.1 is"));
	/* a name with a newline would read as a second line of the infer stage's report, a Latin-1
	 * one would be false UTF-8 in every segment: both load, their bytes as '?' */
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "name", "event-v1\nc rows_stored 1");
	CHECK(op_model_load(bad, &back, err, sizeof(err)) == 0 && !strcmp(back.name, "event-v1?c rows_stored 1"));
	op_model_free(&back);
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "name", "mod\xe9le-v2");
	CHECK(op_model_load(bad, &back, err, sizeof(err)) == 0 && !strcmp(back.name, "mod?le-v2"));
	op_model_free(&back);
	/* the file's own strings are quoted in errors without their control characters (a newline
	 * would forge a journal line) */
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_str(bad, "/", "activation", "gelu\noutpostd: model OK");
	CHECK(refused(bad, "activation 'gelu?outpostd: model OK'"));
	/* a ReLU on the last layer would clamp the direction correction and the track logit */
	CHECK(op_model_save(bad, &m, err, sizeof(err)) == 0);
	poke_u32_attr(bad, "/layers/head.2", "relu", 1);
	CHECK(refused(bad, "the last layer head.2 has a ReLU"));
	/* an FP32 copy of the network with a shape that does not chain */
	op_model m32;
	memset(&m32, 0, sizeof(m32));
	m32 = m;
	memset(m32.pulse, 0, sizeof(m32.pulse));
	memset(m32.head, 0, sizeof(m32.head));
	for (uint32_t i = 0; i < m.n_pulse_layers + m.n_head_layers; i++) {
		int head = i >= m.n_pulse_layers;
		uint32_t j = head ? i - m.n_pulse_layers : i;
		const op_model_layer *src = head ? &m.head[j] : &m.pulse[j];
		op_model_layer *dst = head ? &m32.head[j] : &m32.pulse[j];
		float *w = malloc((size_t)src->lin.n * src->lin.k * sizeof(float));
		for (uint32_t r = 0; r < src->lin.n; r++)
			for (uint32_t c = 0; c < src->lin.k; c++)
				w[(size_t)r * src->lin.k + c] = src->lin.wdec[(size_t)r * src->lin.w.cols + c] * src->lin.w.tensor_scale;
		CHECK(op_model_layer_fp32(dst, src->name, src->lin.n, src->lin.k, w, src->lin.bias, src->lin.relu) == 0);
		free(w);
	}
	m32.precision = OP_MODEL_FP32;
	CHECK(op_model_save(path, &m32, err, sizeof(err)) == 0);
	CHECK(op_model_load(path, &back, err, sizeof(err)) == 0);
	op_model_free(&back);
	m32.head[1].lin.k += 1; /* head.1 no longer takes head.0's outputs */
	char why[256];
	CHECK(op_model_check(&m32, why, sizeof(why)) < 0 && strstr(why, "head.1"));
	m32.head[1].lin.k -= 1;
	op_model_free(&m32);
	op_model_free(&m);
	unlink(path), unlink(bad), rmdir(dir);
	free(o1), free(o2);
	return check_finish("test_modelfile");
}
