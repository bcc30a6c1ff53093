/*
 * modelfile.c — read and write the event network's HDF5 file. Every shape, type and value is
 * checked before a byte reaches the kernels: a truncated, corrupt or mismatched file is
 * refused with a message naming the file, the object and what was wrong.
 */
#include "appliance/modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "uplink/escape.h"

typedef struct rd {
	hid_t f;
	const char *src;
	char *err;
	size_t errlen;
	char where[64];
} rd;

static int fail(rd *r, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* it quotes the file's own strings, which go to the journal, status and an alert north */
	op_text_printable(msg);
	snprintf(r->err, r->errlen, "model file %s: %s%s%s", r->src, r->where, r->where[0] ? ": " : "", msg);
	return -EINVAL;
}

static const char *fmt_name(int format)
{
	return format == OP_FP4_MXFP4 ? "mxfp4" : "nvfp4";
}

static const char *mode_name(int mode)
{
	return mode == OP_W4A4 ? "w4a4" : "w4a16";
}

/* One attribute holding exactly one element (a scalar, or a simple space of one point): an
 * array would be read whole into a buffer sized for one. */
static int single(hid_t a)
{
	hid_t sp = H5Aget_space(a);
	int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1;
	if (sp >= 0)
		H5Sclose(sp);
	return ok;
}

static int get_str(rd *r, hid_t obj, const char *name, char *out, size_t cap)
{
	if (H5Aexists(obj, name) <= 0)
		return fail(r, "attribute '%s' is missing", name);
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
	int rc = 0;
	if (a < 0 || t < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) > 0) {
		rc = fail(r, "attribute '%s' is not a fixed-length string", name);
	} else if (!single(a)) {
		rc = fail(r, "attribute '%s' is not a single string", name);
	} else {
		size_t n = H5Tget_size(t);
		if (n == 0 || n >= cap) {
			rc = fail(r, "attribute '%s' is %zu bytes long (at most %zu)", name, n, cap - 1);
		} else {
			/* read as stored (its own padding and character set, no conversion): a
			 * null-padded string, as h5py and numpy write them, keeps its last character */
			memset(out, 0, cap);
			if (H5Aread(a, t, out) < 0)
				rc = fail(r, "attribute '%s' cannot be read", name);
			out[n] = 0;
			for (size_t i = strlen(out); i > 0 && out[i - 1] == ' '; i--)
				out[i - 1] = 0; /* space-padded */
		}
	}
	if (t >= 0)
		H5Tclose(t);
	if (a >= 0)
		H5Aclose(a);
	return rc;
}

/* A single number into a uint32_t (mtype H5T_NATIVE_UINT32: stored as an integer, in range) or a
 * float (H5T_NATIVE_FLOAT: any number class; the callers check its range). Read as a double
 * first, so that a negative or fractional value is refused, not clamped or cut by HDF5. */
static int get_num(rd *r, hid_t obj, const char *name, hid_t mtype, void *out)
{
	if (H5Aexists(obj, name) <= 0)
		return fail(r, "attribute '%s' is missing", name);
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
	const int want_int = H5Tequal(mtype, H5T_NATIVE_UINT32) > 0;
	double v = 0;
	int rc = 0;
	if (a < 0 || t < 0 || !single(a) || (H5Tget_class(t) != H5T_INTEGER && H5Tget_class(t) != H5T_FLOAT) ||
	    H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
		rc = fail(r, "attribute '%s' is not a single number", name);
	else if (want_int && (H5Tget_class(t) != H5T_INTEGER || !(v >= 0) || v > 4294967295.0 || v != floor(v)))
		rc = fail(r, "attribute '%s' is %g: not a whole number from 0 to 4294967295", name, v);
	else if (want_int)
		*(uint32_t *)out = (uint32_t)v;
	else
		*(float *)out = (float)v; /* beyond a float's range: infinity, which the callers refuse */
	if (t >= 0)
		H5Tclose(t);
	if (a >= 0)
		H5Aclose(a);
	return rc;
}

/* Read a dataset of exactly rows × cols (cols 0: one-dimensional of rows). */
static int get_ds(rd *r, hid_t g, const char *name, hid_t mtype, hsize_t rows, hsize_t cols, void *out)
{
	if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
		return fail(r, "dataset '%s' is missing", name);
	hid_t d = H5Dopen2(g, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1, t = d >= 0 ? H5Dget_type(d) : -1;
	int rc = 0;
	hsize_t dims[2] = {0, 0};
	int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
	if (d < 0 || sp < 0 || t < 0) {
		rc = fail(r, "dataset '%s' cannot be opened", name);
	} else if (rank != (cols ? 2 : 1) || H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] != rows ||
		   (cols && dims[1] != cols)) {
		rc = fail(r, "dataset '%s' has shape %llu×%llu (rank %d), expected %llu×%llu", name,
			  (unsigned long long)dims[0], (unsigned long long)dims[1], rank, (unsigned long long)rows,
			  (unsigned long long)(cols ? cols : 1));
	} else if (H5Tget_class(t) != H5Tget_class(mtype) || H5Tget_size(t) != H5Tget_size(mtype) ||
		   (H5Tget_class(t) == H5T_INTEGER && H5Tget_sign(t) != H5Tget_sign(mtype))) {
		/* a signed int8 'codes' would be clamped at 0 by HDF5's conversion, silently */
		rc = fail(r, "dataset '%s' has the wrong element type (%s %zu-byte %s expected)", name,
			  H5Tget_class(mtype) == H5T_INTEGER ? (H5Tget_sign(mtype) == H5T_SGN_NONE ? "unsigned" : "signed")
							     : "IEEE",
			  H5Tget_size(mtype), H5Tget_class(mtype) == H5T_INTEGER ? "integers" : "floats");
	} else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
		rc = fail(r, "dataset '%s' cannot be read (truncated file?)", name);
	}
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
	if (d >= 0)
		H5Dclose(d);
	return rc;
}

static int all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

static int load_layer(rd *r, hid_t layers, const char *name, op_model_layer *l, const op_model *m)
{
	hid_t g = H5Lexists(layers, name, H5P_DEFAULT) > 0 ? H5Gopen2(layers, name, H5P_DEFAULT) : -1;
	snprintf(r->where, sizeof(r->where), "layer %s", name);
	if (g < 0)
		return fail(r, "group /layers/%s is missing", name);
	char prec[16], mode[16], fmt[16];
	uint32_t n = 0, k = 0, relu = 0;
	float act_scale = 1, tensor_scale = 1;
	float *w = NULL, *bias = NULL;
	uint8_t *codes = NULL, *scales = NULL;
	int rc = get_str(r, g, "precision", prec, sizeof(prec));
	rc = rc ? rc : get_num(r, g, "n", H5T_NATIVE_UINT32, &n);
	rc = rc ? rc : get_num(r, g, "k", H5T_NATIVE_UINT32, &k);
	rc = rc ? rc : get_num(r, g, "relu", H5T_NATIVE_UINT32, &relu);
	if (!rc && (n == 0 || k == 0 || n > 4096 || k > 4096))
		rc = fail(r, "shape %u×%u out of range (1..4096)", n, k);
	if (!rc && !(bias = malloc(n * sizeof(float))))
		rc = fail(r, "out of memory");
	rc = rc ? rc : get_ds(r, g, "bias", H5T_NATIVE_FLOAT, n, 0, bias);
	if (!rc && !all_finite(bias, n))
		rc = fail(r, "bias holds a NaN or infinity");
	if (!rc && !strcmp(prec, "fp32")) {
		if (!(w = malloc((size_t)n * k * sizeof(float))))
			rc = fail(r, "out of memory");
		rc = rc ? rc : get_ds(r, g, "weight", H5T_NATIVE_FLOAT, n, k, w);
		if (!rc && !all_finite(w, (size_t)n * k))
			rc = fail(r, "weight holds a NaN or infinity");
		if (!rc && op_model_layer_fp32(l, name, n, k, w, bias, relu != 0) < 0)
			rc = fail(r, "out of memory");
	} else if (!rc && !strcmp(prec, "fp4")) {
		int format = 0, lmode = 0;
		rc = get_str(r, g, "format", fmt, sizeof(fmt));
		rc = rc ? rc : get_str(r, g, "mode", mode, sizeof(mode));
		rc = rc ? rc : get_num(r, g, "act_scale", H5T_NATIVE_FLOAT, &act_scale);
		rc = rc ? rc : get_num(r, g, "tensor_scale", H5T_NATIVE_FLOAT, &tensor_scale);
		if (!rc) {
			format = !strcmp(fmt, "nvfp4") ? OP_FP4_NVFP4 : !strcmp(fmt, "mxfp4") ? OP_FP4_MXFP4 : 0;
			lmode = !strcmp(mode, "w4a4") ? OP_W4A4 : !strcmp(mode, "w4a16") ? OP_W4A16 : 0;
			if (!format)
				rc = fail(r, "format '%s' is not nvfp4 or mxfp4", fmt);
			else if (!lmode)
				rc = fail(r, "mode '%s' is not w4a4 or w4a16", mode);
			else if (!(act_scale > 0) || !isfinite(act_scale) || !(tensor_scale > 0) || !isfinite(tensor_scale))
				rc = fail(r, "act_scale %g / tensor_scale %g must be positive and finite", act_scale,
					  tensor_scale);
		}
		uint32_t bl = format ? op_fp4_block(format) : 16, kp = (k + bl - 1) / bl * bl, nb = kp / bl;
		op_fp4_tensor t = {0};
		if (!rc && op_fp4_tensor_alloc(&t, format, n, kp) < 0)
			rc = fail(r, "out of memory");
		rc = rc ? rc : get_ds(r, g, "codes", H5T_NATIVE_UINT8, n, kp / 2, t.codes);
		rc = rc ? rc : get_ds(r, g, "scales", H5T_NATIVE_UINT8, n, nb, t.scales);
		for (size_t i = 0; !rc && i < (size_t)n * nb; i++) {
			uint8_t s = t.scales[i];
			if (format == OP_FP4_NVFP4 ? ((s & 0x80u) || s == 0x7fu) : s == 0xffu)
				rc = fail(r, "block scale %zu (row %zu) is 0x%02x: not a valid %s scale", i, i / nb, s,
					  fmt);
		}
		if (!rc) { /* the largest weight (6 × the largest block scale, as the kernels hold it, and
			    * that × tensor_scale) and the W4A4 rescale (act_scale × tensor_scale, and its
			    * inverse) must be finite floats: an MXFP4 scale of 2^126 passes the code check
			    * and gives infinite weights, whatever tensor_scale (the kernels apply it last) */
			double smax = 0;
			for (size_t i = 0; i < (size_t)n * nb; i++) {
				double sv = format == OP_FP4_NVFP4 ? op_e4m3_to_float(t.scales[i]) : op_e8m0_to_float(t.scales[i]);
				smax = sv > smax ? sv : smax;
			}
			const double wmax = 6.0 * smax * tensor_scale, alpha = (double)act_scale * tensor_scale;
			if (6.0 * smax > FLT_MAX || wmax > FLT_MAX)
				rc = fail(r, "the largest weight (6 × block scale %g × tensor_scale %g) is beyond a float's range",
					  smax, tensor_scale);
			else if (act_scale < FLT_MIN || alpha < FLT_MIN || alpha > FLT_MAX)
				rc = fail(r, "act_scale %g with tensor_scale %g is out of a float's normal range", act_scale,
					  tensor_scale);
		}
		for (uint32_t row = 0; !rc && row < n; row++) /* padding columns must be zero codes */
			for (uint32_t c = k; c < kp; c++)
				if (op_e2m1_doubled(op_fp4_code(&t, row, c)) != 0)
					rc = fail(r, "row %u: padding column %u holds a non-zero code", row, c);
		if (!rc) {
			t.tensor_scale = tensor_scale;
			memset(l, 0, sizeof(*l));
			snprintf(l->name, sizeof(l->name), "%s", name);
			l->precision = OP_MODEL_FP4;
			l->mode = lmode;
			if (op_fp4_linear_init(&l->lin, &t, k, bias, relu != 0, act_scale, m->mx_mode) < 0)
				rc = fail(r, "out of memory");
		}
		op_fp4_tensor_free(&t);
	} else if (!rc) {
		rc = fail(r, "precision '%s' is not fp32 or fp4", prec);
	}
	free(w);
	free(bias);
	free(codes);
	free(scales);
	H5Gclose(g);
	if (!rc)
		r->where[0] = 0;
	return rc;
}

static int load_from(rd *r, op_model *m)
{
	char s[64];
	uint32_t ver = 0;
	int rc;
	memset(m, 0, sizeof(*m));
	rc = get_num(r, r->f, "format_version", H5T_NATIVE_UINT32, &ver);
	if (!rc && ver != OP_MODEL_FORMAT_VERSION)
		rc = fail(r, "format_version %u; this build reads version %d", ver, OP_MODEL_FORMAT_VERSION);
	rc = rc ? rc : get_str(r, r->f, "network", s, sizeof(s));
	if (!rc && strcmp(s, "outpost-event") != 0)
		rc = fail(r, "network '%s' is not outpost-event", s);
	rc = rc ? rc : get_str(r, r->f, "features", s, sizeof(s));
	if (!rc && strcmp(s, "outpost-features-v1") != 0)
		rc = fail(r, "features '%s': this build computes outpost-features-v1", s);
	/* what the rest of the network is: this build computes one kind */
	static const char *const fixed[][2] = {{"pooling", "mean_max"},
					       {"activation", "relu"},
					       {"outputs", "dir_dx,dir_dy,dir_dz,log10_energy,track_logit"}};
	for (size_t i = 0; !rc && i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		rc = get_str(r, r->f, fixed[i][0], s, sizeof(s));
		if (!rc && strcmp(s, fixed[i][1]) != 0)
			rc = fail(r, "%s '%s': this build computes %s", fixed[i][0], s, fixed[i][1]);
	}
	rc = rc ? rc : get_str(r, r->f, "name", m->name, sizeof(m->name));
	/* The name goes into every result segment (declared UTF-8) and, as a line, into the stage's
	 * report to the supervisor: a control character (a newline above all) or a byte that is not
	 * UTF-8 becomes '?'. Not refused: a file that loaded before must not now put the site in
	 * safe mode, LineFit only, for its name. */
	if (!rc)
		op_text_printable(m->name);
	rc = rc ? rc : get_num(r, r->f, "model_id", H5T_NATIVE_UINT32, &m->id);
	if (!rc && m->id < 16)
		rc = fail(r, "model_id %u is reserved for LineFit variants (use 16 or more)", m->id);
	rc = rc ? rc : get_str(r, r->f, "mx_scale_mode", s, sizeof(s));
	if (!rc) {
		if (!strcmp(s, "floor"))
			m->mx_mode = OP_MX_SCALE_FLOOR;
		else if (!strcmp(s, "ceil"))
			m->mx_mode = OP_MX_SCALE_CEIL;
		else
			rc = fail(r, "mx_scale_mode '%s' is not floor or ceil", s);
	}
	rc = rc ? rc : get_num(r, r->f, "max_pulses", H5T_NATIVE_UINT32, &m->max_pulses);
	rc = rc ? rc : get_num(r, r->f, "pulse_features", H5T_NATIVE_UINT32, &m->n_pulse_feat);
	rc = rc ? rc : get_num(r, r->f, "event_features", H5T_NATIVE_UINT32, &m->n_event_feat);
	rc = rc ? rc : get_num(r, r->f, "pulse_layers", H5T_NATIVE_UINT32, &m->n_pulse_layers);
	rc = rc ? rc : get_num(r, r->f, "head_layers", H5T_NATIVE_UINT32, &m->n_head_layers);
	if (!rc && (m->n_pulse_feat != OP_FEAT_PULSE || m->n_event_feat != OP_FEAT_EVENT))
		rc = fail(r, "%u pulse / %u event features; this build computes %u / %u", m->n_pulse_feat,
			  m->n_event_feat, OP_FEAT_PULSE, OP_FEAT_EVENT);
	if (!rc && (m->n_pulse_layers < 1 || m->n_pulse_layers > OP_MODEL_MAX_LAYERS || m->n_head_layers < 1 ||
		    m->n_head_layers > OP_MODEL_MAX_LAYERS))
		rc = fail(r, "layer counts %u + %u out of range 1..%d", m->n_pulse_layers, m->n_head_layers,
			  OP_MODEL_MAX_LAYERS);
	if (!rc && H5Aexists(r->f, "provenance") > 0)
		rc = get_str(r, r->f, "provenance", m->provenance, sizeof(m->provenance));
	hid_t norm = -1, layers = -1;
	if (!rc) {
		norm = H5Lexists(r->f, "norm", H5P_DEFAULT) > 0 ? H5Gopen2(r->f, "norm", H5P_DEFAULT) : -1;
		if (norm < 0)
			rc = fail(r, "group /norm is missing");
	}
	float le[2] = {0, 0};
	snprintf(r->where, sizeof(r->where), "/norm");
	rc = rc ? rc : get_ds(r, norm, "pulse_mean", H5T_NATIVE_FLOAT, OP_FEAT_PULSE, 0, m->pulse_mean);
	rc = rc ? rc : get_ds(r, norm, "pulse_scale", H5T_NATIVE_FLOAT, OP_FEAT_PULSE, 0, m->pulse_scale);
	rc = rc ? rc : get_ds(r, norm, "event_mean", H5T_NATIVE_FLOAT, OP_FEAT_EVENT, 0, m->event_mean);
	rc = rc ? rc : get_ds(r, norm, "event_scale", H5T_NATIVE_FLOAT, OP_FEAT_EVENT, 0, m->event_scale);
	rc = rc ? rc : get_ds(r, norm, "log10e", H5T_NATIVE_FLOAT, 2, 0, le);
	m->log10e_mean = le[0], m->log10e_scale = le[1];
	if (!rc)
		r->where[0] = 0;
	if (norm >= 0)
		H5Gclose(norm);
	if (!rc) {
		layers = H5Lexists(r->f, "layers", H5P_DEFAULT) > 0 ? H5Gopen2(r->f, "layers", H5P_DEFAULT) : -1;
		if (layers < 0)
			rc = fail(r, "group /layers is missing");
	}
	int any_fp4 = 0;
	for (uint32_t i = 0; !rc && i < m->n_pulse_layers + m->n_head_layers; i++) {
		char nm[32];
		int head = i >= m->n_pulse_layers;
		uint32_t j = head ? i - m->n_pulse_layers : i;
		snprintf(nm, sizeof(nm), "%s.%u", head ? "head" : "pulse", j);
		op_model_layer *l = head ? &m->head[j] : &m->pulse[j];
		rc = load_layer(r, layers, nm, l, m);
		if (!rc && l->precision == OP_MODEL_FP4) {
			if (any_fp4 && (l->lin.w.format != m->format || l->mode != m->mode))
				rc = fail(r, "layer %s is %s %s, the layers before it %s %s: one FP4 recipe per model", nm,
					  fmt_name(l->lin.w.format), mode_name(l->mode), fmt_name(m->format),
					  mode_name(m->mode));
			any_fp4 = 1;
			m->format = l->lin.w.format;
			m->mode = l->mode;
		}
	}
	if (layers >= 0)
		H5Gclose(layers);
	m->precision = any_fp4 ? OP_MODEL_FP4 : OP_MODEL_FP32;
	/* the root's summary (what reports and operators read) must say what the layers are */
	static const char *const summary[3] = {"precision", "fp4_format", "mode"};
	const char *is[3] = {any_fp4 ? "fp4" : "fp32", any_fp4 ? fmt_name(m->format) : "none",
			     any_fp4 ? mode_name(m->mode) : "fp32"};
	for (int i = 0; !rc && i < 3; i++) {
		rc = get_str(r, r->f, summary[i], s, sizeof(s));
		if (!rc && strcmp(s, is[i]) != 0)
			rc = fail(r, "%s '%s', but the layers are %s", summary[i], s, is[i]);
	}
	if (!rc) {
		char why[256];
		if (op_model_check(m, why, sizeof(why)) < 0)
			rc = fail(r, "%s", why);
	}
	if (rc)
		op_model_free(m);
	return rc;
}

int op_model_load(const char *path, op_model *m, char *err, size_t errlen)
{
	rd r = {.src = path, .err = err, .errlen = errlen};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (access(path, R_OK) != 0) {
		snprintf(err, errlen, "model file %s: %s", path, strerror(errno));
		memset(m, 0, sizeof(*m));
		return -ENOENT;
	}
	r.f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (r.f < 0) {
		memset(m, 0, sizeof(*m));
		return fail(&r, "not a readable HDF5 file (truncated or corrupt?)");
	}
	int rc = load_from(&r, m);
	H5Fclose(r.f);
	return rc;
}

int op_model_load_image(const void *buf, size_t len, op_model *m, char *err, size_t errlen)
{
	rd r = {.src = "(memory)", .err = err, .errlen = errlen};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	memset(m, 0, sizeof(*m));
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_fapl_core(fapl, 1 << 16, 0);
	H5Pset_file_image(fapl, (void *)buf, len);
	r.f = H5Fopen("outpost-model-image", H5F_ACC_RDONLY, fapl);
	H5Pclose(fapl);
	if (r.f < 0)
		return fail(&r, "not a readable HDF5 file (truncated or corrupt?)");
	int rc = load_from(&r, m);
	H5Fclose(r.f);
	return rc;
}

extern const unsigned char op_default_model_h5[];
extern const size_t op_default_model_h5_len;

int op_model_load_default(op_model *m, char *err, size_t errlen)
{
	int rc = op_model_load_image(op_default_model_h5, op_default_model_h5_len, m, err, errlen);
	if (rc < 0) {
		char inner[400];
		snprintf(inner, sizeof(inner), "%s", err);
		snprintf(err, errlen, "built-in model: %s", inner);
	}
	return rc;
}

/* ---- writing ------------------------------------------------------------------------------- */

static int put_str(hid_t obj, const char *name, const char *v)
{
	hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
	H5Tset_size(t, strlen(v) ? strlen(v) : 1);
	hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
	int rc = a >= 0 && H5Awrite(a, t, v[0] ? v : " ") >= 0 ? 0 : -EIO;
	if (a >= 0)
		H5Aclose(a);
	H5Sclose(sp);
	H5Tclose(t);
	return rc;
}

static int put_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
	hid_t sp = H5Screate(H5S_SCALAR);
	hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
	int rc = a >= 0 && H5Awrite(a, mtype, v) >= 0 ? 0 : -EIO;
	if (a >= 0)
		H5Aclose(a);
	H5Sclose(sp);
	return rc;
}

static int put_ds(hid_t g, const char *name, hid_t ftype, hid_t mtype, hsize_t rows, hsize_t cols, const void *v)
{
	hsize_t dims[2] = {rows, cols};
	hid_t sp = H5Screate_simple(cols ? 2 : 1, dims, NULL);
	hid_t d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	int rc = d >= 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0 ? 0 : -EIO;
	if (d >= 0)
		H5Dclose(d);
	H5Sclose(sp);
	return rc;
}

static int save_layer(hid_t layers, const op_model_layer *l)
{
	const op_fp4_linear *L = &l->lin;
	hid_t g = H5Gcreate2(layers, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (g < 0)
		return -EIO;
	uint32_t relu = (uint32_t)L->relu;
	int rc = put_num(g, "n", H5T_STD_U32LE, H5T_NATIVE_UINT32, &L->n);
	rc |= put_num(g, "k", H5T_STD_U32LE, H5T_NATIVE_UINT32, &L->k);
	rc |= put_num(g, "relu", H5T_STD_U32LE, H5T_NATIVE_UINT32, &relu);
	rc |= put_ds(g, "bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, L->n, 0, L->bias);
	if (l->precision == OP_MODEL_FP32) {
		rc |= put_str(g, "precision", "fp32");
		rc |= put_ds(g, "weight", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, L->n, L->k, L->wdec);
	} else {
		uint32_t bl = op_fp4_block(L->w.format);
		rc |= put_str(g, "precision", "fp4");
		rc |= put_str(g, "format", fmt_name(L->w.format));
		rc |= put_str(g, "mode", mode_name(l->mode));
		rc |= put_num(g, "act_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &L->act_scale);
		rc |= put_num(g, "tensor_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &L->w.tensor_scale);
		rc |= put_ds(g, "codes", H5T_STD_U8LE, H5T_NATIVE_UINT8, L->n, L->w.cols / 2, L->w.codes);
		rc |= put_ds(g, "scales", H5T_STD_U8LE, H5T_NATIVE_UINT8, L->n, L->w.cols / bl, L->w.scales);
	}
	H5Gclose(g);
	return rc ? -EIO : 0;
}

int op_model_save(const char *path, const op_model *m, char *err, size_t errlen)
{
	char tmp[4096];
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	hid_t f = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0) {
		snprintf(err, errlen, "model file %s: cannot create %s", path, tmp);
		return -EIO;
	}
	uint32_t ver = OP_MODEL_FORMAT_VERSION;
	const char *prec = m->precision == OP_MODEL_FP4 ? "fp4" : "fp32";
	int rc = put_num(f, "format_version", H5T_STD_U32LE, H5T_NATIVE_UINT32, &ver);
	rc |= put_str(f, "network", "outpost-event");
	rc |= put_str(f, "features", "outpost-features-v1");
	rc |= put_str(f, "name", m->name);
	rc |= put_num(f, "model_id", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->id);
	rc |= put_str(f, "precision", prec);
	rc |= put_str(f, "fp4_format", m->precision != OP_MODEL_FP4 ? "none" : fmt_name(m->format));
	rc |= put_str(f, "mode", m->precision != OP_MODEL_FP4 ? "fp32" : mode_name(m->mode));
	rc |= put_str(f, "mx_scale_mode", m->mx_mode == OP_MX_SCALE_CEIL ? "ceil" : "floor");
	rc |= put_str(f, "pooling", "mean_max");
	rc |= put_str(f, "activation", "relu");
	rc |= put_str(f, "outputs", "dir_dx,dir_dy,dir_dz,log10_energy,track_logit");
	rc |= put_num(f, "max_pulses", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->max_pulses);
	rc |= put_num(f, "pulse_features", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->n_pulse_feat);
	rc |= put_num(f, "event_features", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->n_event_feat);
	rc |= put_num(f, "pulse_layers", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->n_pulse_layers);
	rc |= put_num(f, "head_layers", H5T_STD_U32LE, H5T_NATIVE_UINT32, &m->n_head_layers);
	rc |= put_str(f, "provenance", m->provenance);
	hid_t norm = H5Gcreate2(f, "norm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	float le[2] = {m->log10e_mean, m->log10e_scale};
	rc |= put_ds(norm, "pulse_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, OP_FEAT_PULSE, 0, m->pulse_mean);
	rc |= put_ds(norm, "pulse_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, OP_FEAT_PULSE, 0, m->pulse_scale);
	rc |= put_ds(norm, "event_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, OP_FEAT_EVENT, 0, m->event_mean);
	rc |= put_ds(norm, "event_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, OP_FEAT_EVENT, 0, m->event_scale);
	rc |= put_ds(norm, "log10e", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, 0, le);
	H5Gclose(norm);
	hid_t layers = H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	for (uint32_t i = 0; i < m->n_pulse_layers; i++)
		rc |= save_layer(layers, &m->pulse[i]);
	for (uint32_t i = 0; i < m->n_head_layers; i++)
		rc |= save_layer(layers, &m->head[i]);
	H5Gclose(layers);
	if (H5Fclose(f) < 0)
		rc = -EIO;
	int fd = rc ? -1 : open(tmp, O_RDONLY);
	if (rc || fd < 0 || fsync(fd) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "model file %s: writing failed (%s)", path, strerror(errno ? errno : EIO));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return -EIO;
	}
	close(fd);
	return 0;
}
