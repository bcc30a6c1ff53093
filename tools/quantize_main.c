/*
 * outpost-quantize — FP32 weights (safetensors) + the architecture description (YAML) →
 * an outpost model file (HDF5, docs/model-format.md) in NVFP4, MXFP4 or FP32.
 *
 *   outpost-quantize --weights M.safetensors --arch M.arch.yaml --out MODEL.h5
 *                    [--format nvfp4|mxfp4|fp32] [--mode w4a4|w4a16] [--mx-scale floor|ceil]
 *                    [--name NAME] [--id N] [--fp32-layers NAME,NAME,...]
 *
 * --fp32-layers keeps the named layers in FP32 (the others in --format): the head's per-event
 * layers are a tenth of the network's work, and FP4 there costs the energy estimate the most
 * (docs/accuracy.md).
 * MXFP4 block scales round up by default (ceil: nothing clips; the shipped model is trained
 * for it); --mx-scale floor gives OCP v1.0's floored shared exponent.
 * Prints, per layer, its shape and the relative RMS error of the quantized weights, and the
 * activation scale chosen from the range recorded in training.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "appliance/modelfile.h"
#include "tools/safetensors.h"
#include "uplink/sha256.h"

#define MAXK 16
typedef struct arch {
	char key[MAXK][32];
	char val[MAXK][8][32]; /* scalar in [0], or a sequence */
	int nval[MAXK], seq[MAXK];
	int n;
	int line[MAXK];
} arch;

static int arch_load(const char *path, arch *a, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, rc = 0, in_seq = 0, want_key = 1;
	memset(a, 0, sizeof(*a));
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	yaml_parser_initialize(&p);
	yaml_parser_set_input_file(&p, f);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			snprintf(err, errlen, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1, p.problem_mark.column + 1,
				 p.problem ? p.problem : "YAML error");
			rc = -1;
			break;
		}
		int type = ev.type;
		size_t line = ev.start_mark.line + 1;
		if (type == YAML_MAPPING_START_EVENT) {
			if (++depth > 1) {
				snprintf(err, errlen, "%s:%zu: nested mappings are not part of the description", path, line);
				rc = -1;
			}
		} else if (type == YAML_SEQUENCE_START_EVENT) {
			if (want_key || in_seq || a->n == 0) { /* (a list at the top: no key yet) */
				snprintf(err, errlen, "%s:%zu: a list can only be a value", path, line);
				rc = -1;
			} else {
				in_seq = 1;
				a->seq[a->n - 1] = 1;
			}
		} else if (type == YAML_SEQUENCE_END_EVENT) {
			in_seq = 0;
			want_key = 1;
		} else if (type == YAML_SCALAR_EVENT) {
			const char *v = (const char *)ev.data.scalar.value;
			if (want_key) {
				if (a->n >= MAXK) {
					snprintf(err, errlen, "%s:%zu: too many keys", path, line);
					rc = -1;
				} else {
					snprintf(a->key[a->n], 32, "%s", v);
					a->line[a->n] = (int)line;
					a->n++;
					want_key = 0;
				}
			} else {
				int k = a->n - 1;
				if (a->nval[k] >= 8) {
					snprintf(err, errlen, "%s:%zu: list too long (8 at most)", path, line);
					rc = -1;
				} else {
					snprintf(a->val[k][a->nval[k]++], 32, "%s", v);
				}
				if (!in_seq)
					want_key = 1;
			}
		}
		yaml_event_delete(&ev);
		if (rc || type == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&p);
	fclose(f);
	return rc;
}

static const char *arch_get(const arch *a, const char *key, int *idx)
{
	for (int i = 0; i < a->n; i++)
		if (!strcmp(a->key[i], key)) {
			if (idx)
				*idx = i;
			return a->nval[i] ? a->val[i][0] : "";
		}
	return NULL;
}

/* whether name is one of the comma-separated list */
static int in_list(const char *list, const char *name)
{
	const size_t n = strlen(name);
	for (const char *k = list; *k;) {
		size_t len = strcspn(k, ",");
		if (len == n && !strncmp(k, name, n))
			return 1;
		k += len + (k[len] == ',');
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: outpost-quantize --weights M.safetensors --arch M.arch.yaml --out MODEL.h5\n"
			"                        [--format nvfp4|mxfp4|fp32] [--mode w4a4|w4a16] [--mx-scale floor|ceil]\n"
			"                        [--fp32-layers NAME,NAME,...]\n"
			"                        [--name NAME] [--id N]\n");
}

int main(int argc, char **argv)
{
	const char *wpath = NULL, *apath = NULL, *out = NULL, *fmt = "nvfp4", *mode = "w4a4", *mxs = "ceil",
		   *name = NULL, *keep32 = "";
	uint32_t id = 0;
	char err[512], cmd[1024] = "";
	for (int i = 1; i < argc; i++) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", l ? " " : "", argv[i]);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--weights"))
			wpath = v;
		else if (!strcmp(a, "--arch"))
			apath = v;
		else if (!strcmp(a, "--out"))
			out = v;
		else if (!strcmp(a, "--format"))
			fmt = v;
		else if (!strcmp(a, "--mode"))
			mode = v;
		else if (!strcmp(a, "--mx-scale"))
			mxs = v;
		else if (!strcmp(a, "--name"))
			name = v;
		else if (!strcmp(a, "--id")) {
			/* result rows name their network by it; 0-15 are LineFit's variants */
			char *end;
			unsigned long long x = isdigit((unsigned char)v[0]) ? strtoull(v, &end, 0) : 0;
			if (!isdigit((unsigned char)v[0]) || *end || (x && x < 16) || x > UINT32_MAX) {
				fprintf(stderr, "outpost-quantize: --id %s: a number from 16 to %u, or 0 for the default "
						"(1-15 are reserved for LineFit's variants)\n", v, UINT32_MAX);
				return 2;
			}
			id = (uint32_t)x;
		} else if (!strcmp(a, "--fp32-layers"))
			keep32 = v;
		else {
			usage();
			return 2;
		}
	}
	int format = !strcmp(fmt, "nvfp4") ? OP_FP4_NVFP4 : !strcmp(fmt, "mxfp4") ? OP_FP4_MXFP4 : !strcmp(fmt, "fp32") ? 0 : -1;
	int lmode = !strcmp(mode, "w4a4") ? OP_W4A4 : !strcmp(mode, "w4a16") ? OP_W4A16 : -1;
	int mx_mode = !strcmp(mxs, "floor") ? OP_MX_SCALE_FLOOR : !strcmp(mxs, "ceil") ? OP_MX_SCALE_CEIL : -1;
	if (!wpath || !apath || !out || format < 0 || lmode < 0 || mx_mode < 0) {
		usage();
		return 2;
	}
	arch a;
	if (arch_load(apath, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpost-quantize: %s\n", err);
		return 1;
	}
	static const char *required[] = {"network", "features", "pulse_features", "event_features", "max_pulses",
					 "pulse_layers", "pooling", "head_layers", "activation", "outputs"};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!arch_get(&a, required[i], NULL)) {
			fprintf(stderr, "outpost-quantize: %s: key '%s' is missing\n", apath, required[i]);
			return 1;
		}
	if (strcmp(arch_get(&a, "network", NULL), "outpost-event") || strcmp(arch_get(&a, "features", NULL), "outpost-features-v1") ||
	    strcmp(arch_get(&a, "pooling", NULL), "mean_max") || strcmp(arch_get(&a, "activation", NULL), "relu")) {
		fprintf(stderr, "outpost-quantize: %s: this build knows network outpost-event, features "
				"outpost-features-v1, pooling mean_max, activation relu\n", apath);
		return 1;
	}
	/* the head's outputs, in the order the appliance reads them: another order would load and
	 * read energy as a direction */
	static const char *const outputs[] = {"dir_dx", "dir_dy", "dir_dz", "log10_energy", "track_logit"};
	int oi;
	arch_get(&a, "outputs", &oi);
	int outputs_ok = a.nval[oi] == 5;
	for (int i = 0; i < 5 && outputs_ok; i++)
		outputs_ok = !strcmp(a.val[oi][i], outputs[i]);
	if (!outputs_ok) {
		fprintf(stderr, "outpost-quantize: %s:%d: outputs must be [dir_dx, dir_dy, dir_dz, log10_energy, "
				"track_logit], in that order (the order the appliance reads them in)\n",
			apath, a.line[oi]);
		return 1;
	}
	/* the layers' names are the model file's groups (layers/pulse.0, …), which the loader finds
	 * by these names */
	for (int part = 0; part < 2; part++) {
		int ki;
		arch_get(&a, part ? "head_layers" : "pulse_layers", &ki);
		for (int l = 0; l < a.nval[ki]; l++) {
			char want[24];
			snprintf(want, sizeof(want), "%s.%d", part ? "head" : "pulse", l);
			if (strcmp(a.val[ki][l], want)) {
				fprintf(stderr, "outpost-quantize: %s:%d: %s: layer %d is named '%s'; the model file "
						"names them %s.0, %s.1, … in order (name the tensors so: %s.weight, "
						"%s.bias, %s.act_amax)\n",
					apath, a.line[ki], part ? "head_layers" : "pulse_layers", l, a.val[ki][l],
					part ? "head" : "pulse", part ? "head" : "pulse", want, want, want);
				return 1;
			}
		}
	}
	op_safetensors st;
	if (op_st_open(wpath, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpost-quantize: %s\n", err);
		return 1;
	}
	op_model m;
	memset(&m, 0, sizeof(m));
	m.n_pulse_feat = (uint32_t)atoi(arch_get(&a, "pulse_features", NULL));
	m.n_event_feat = (uint32_t)atoi(arch_get(&a, "event_features", NULL));
	m.max_pulses = (uint32_t)atoi(arch_get(&a, "max_pulses", NULL));
	m.precision = format ? OP_MODEL_FP4 : OP_MODEL_FP32;
	m.format = format, m.mode = lmode, m.mx_mode = mx_mode;
	m.id = id ? id : format == 0 ? 16 : 16 + (uint32_t)(format * 2 + (lmode == OP_W4A16));
	snprintf(m.name, sizeof(m.name), "%s", name ? name : "event-v1");
	if (m.n_pulse_feat != OP_FEAT_PULSE || m.n_event_feat != OP_FEAT_EVENT) {
		fprintf(stderr, "outpost-quantize: %s: %u/%u features, this build computes %u/%u\n", apath, m.n_pulse_feat,
			m.n_event_feat, OP_FEAT_PULSE, OP_FEAT_EVENT);
		return 1;
	}
	/* normalisation */
	struct {
		const char *t;
		float *dst;
		uint32_t n;
	} norms[] = {{"norm.pulse.mean", m.pulse_mean, OP_FEAT_PULSE}, {"norm.pulse.scale", m.pulse_scale, OP_FEAT_PULSE},
		     {"norm.event.mean", m.event_mean, OP_FEAT_EVENT}, {"norm.event.scale", m.event_scale, OP_FEAT_EVENT}};
	uint64_t r, c;
	for (size_t i = 0; i < 4; i++) {
		float *v = op_st_f32(&st, norms[i].t, &r, &c, err, sizeof(err));
		if (!v || r * c != norms[i].n) {
			fprintf(stderr, "outpost-quantize: %s: %s\n", wpath, v ? "normalisation vector has the wrong length" : err);
			return 1;
		}
		memcpy(norms[i].dst, v, norms[i].n * sizeof(float));
		free(v);
	}
	float *le = op_st_f32(&st, "out.log10e", &r, &c, err, sizeof(err));
	if (!le || r * c != 2) {
		fprintf(stderr, "outpost-quantize: %s: %s\n", wpath, le ? "out.log10e must hold 2 values" : err);
		return 1;
	}
	m.log10e_mean = le[0], m.log10e_scale = le[1];
	free(le);

	/* --fp32-layers: every name must be a layer of the description */
	int any_fp4 = 0;
	for (const char *k = keep32; *k;) {
		size_t len = strcspn(k, ",");
		int found = 0;
		for (int part = 0; part < 2 && !found; part++) {
			int ki;
			arch_get(&a, part ? "head_layers" : "pulse_layers", &ki);
			for (int l = 0; l < a.nval[ki]; l++)
				found |= strlen(a.val[ki][l]) == len && !strncmp(a.val[ki][l], k, len);
		}
		if (!found) {
			fprintf(stderr, "outpost-quantize: --fp32-layers: '%.*s' is not a layer of %s\n", (int)len, k, apath);
			return 2;
		}
		k += len + (k[len] == ',');
	}
	printf("%-8s %-10s %-6s %-10s %-12s %s\n", "layer", "shape", "mode", "rel.error", "act amax", "act scale");
	for (int part = 0; part < 2; part++) {
		int ki;
		arch_get(&a, part ? "head_layers" : "pulse_layers", &ki);
		uint32_t nl = (uint32_t)a.nval[ki];
		if (part)
			m.n_head_layers = nl;
		else
			m.n_pulse_layers = nl;
		for (uint32_t l = 0; l < nl; l++) {
			char tn[96];
			const char *ln = a.val[ki][l];
			uint64_t wr, wc, br, bc, ar, ac;
			snprintf(tn, sizeof(tn), "%s.weight", ln);
			float *w = op_st_f32(&st, tn, &wr, &wc, err, sizeof(err));
			snprintf(tn, sizeof(tn), "%s.bias", ln);
			float *b = w ? op_st_f32(&st, tn, &br, &bc, err, sizeof(err)) : NULL;
			snprintf(tn, sizeof(tn), "%s.act_amax", ln);
			float *am = b ? op_st_f32(&st, tn, &ar, &ac, err, sizeof(err)) : NULL;
			if (!w || !b || !am || br * bc != wr || ar * ac != 1) {
				fprintf(stderr, "outpost-quantize: %s: layer %s: %s\n", wpath, ln,
					am ? "bias or act_amax shape does not match the weight" : err);
				return 1;
			}
			if (wr > 4096 || wc > 4096) { /* as outpostd's loader takes them (and before a cast) */
				fprintf(stderr, "outpost-quantize: %s: layer %s: weight %llux%llu larger than 4096x4096\n", wpath,
					ln, (unsigned long long)wr, (unsigned long long)wc);
				return 1;
			}
			int relu = part == 0 || l + 1 < nl;
			op_model_layer *dst = part ? &m.head[l] : &m.pulse[l];
			double rel = 0;
			int fp4 = format && !in_list(keep32, ln);
			if (fp4 && !(am[0] > 0 && isfinite(am[0]))) {
				/* the activations' calibrated range sets their tensor scale: without it they
				 * would be quantized at an arbitrary scale, the file written all the same */
				fprintf(stderr, "outpost-quantize: %s: %s.act_amax = %g must be positive and finite\n", wpath, ln,
					(double)am[0]);
				return 1;
			}
			any_fp4 |= fp4;
			int rc2 = fp4 ? op_model_layer_quantize(dst, ln, (uint32_t)wr, (uint32_t)wc, w, b, relu, format, lmode,
								   mx_mode, am[0], &rel)
					 : op_model_layer_fp32(dst, ln, (uint32_t)wr, (uint32_t)wc, w, b, relu);
			if (rc2 < 0) {
				fprintf(stderr, "outpost-quantize: layer %s: %s\n", ln,
					rc2 == -EINVAL ? "weights hold a NaN or infinity" : strerror(-rc2));
				return 1;
			}
			char shape[32];
			snprintf(shape, sizeof(shape), "%llux%llu", (unsigned long long)wr, (unsigned long long)wc);
			printf("%-8s %-10s %-6s %-10.4f %-12.4g %.4g\n", ln, shape, fp4 ? mode : "fp32", rel, am[0],
			       dst->lin.act_scale);
			free(w), free(b), free(am);
		}
	}
	/* what the file holds decides its default id (result rows name their network by it): 16 all
	 * FP32; 18-21 every layer NVFP4/MXFP4 × W4A4/W4A16; 26-29 the same with some layers kept FP32 */
	if (!any_fp4) /* every layer kept FP32 */
		m.precision = OP_MODEL_FP32;
	if (!id)
		m.id = !any_fp4 ? 16 : 16 + (uint32_t)(format * 2 + (lmode == OP_W4A16)) + (*keep32 ? 8u : 0u);
	/* provenance: where the weights came from and how they were turned into this file */
	FILE *f = fopen(wpath, "rb");
	uint8_t dg[32], buf[65536];
	char hex[65] = "";
	if (f) {
		op_sha256 h;
		size_t n;
		op_sha256_init(&h);
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			op_sha256_update(&h, buf, n);
		op_sha256_final(&h, dg);
		op_sha256_hex(dg, hex);
		fclose(f);
	}
	const char *tc = op_st_meta(&st, "command"), *seed = op_st_meta(&st, "seed"), *data = op_st_meta(&st, "train_data");
	int plen = snprintf(m.provenance, sizeof(m.provenance),
			    "weights sha256 %s; trained by: %s (seed %s, data %s); quantized by: outpost-quantize %s", hex,
			    tc ? tc : "?", seed ? seed : "?", data ? data : "?", cmd);
	if (plen >= (int)sizeof(m.provenance)) /* very long commands: keep the start, say so */
		memcpy(m.provenance + sizeof(m.provenance) - 5, "...", 4);
	char why[256];
	if (op_model_check(&m, why, sizeof(why)) < 0) {
		fprintf(stderr, "outpost-quantize: the description and weights do not make a valid network: %s\n", why);
		return 1;
	}
	/* Written beside, read back by the appliance's own loader, then renamed: a file the
	 * appliance would refuse (a check the tool does not make) is never left at --out, and an
	 * interrupted run leaves no half file there. */
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", out, (int)getpid()) >= (int)sizeof(tmp)) {
		fprintf(stderr, "outpost-quantize: --out %s: path too long\n", out);
		return 2;
	}
	if (op_model_save(tmp, &m, err, sizeof(err)) < 0) {
		unlink(tmp);
		fprintf(stderr, "outpost-quantize: %s\n", err);
		return 1;
	}
	op_model back;
	if (op_model_load(tmp, &back, err, sizeof(err)) < 0) {
		unlink(tmp);
		fprintf(stderr, "outpost-quantize: the file made would be refused by outpostd's loader, so it is not "
				"written: %s\n", err);
		return 1;
	}
	op_model_free(&back);
	if (rename(tmp, out) != 0) {
		fprintf(stderr, "outpost-quantize: cannot rename %s to %s: %s\n", tmp, out, strerror(errno));
		unlink(tmp);
		return 1;
	}
	printf("wrote %s: %s, model id %u, %s %s%s\n", out, m.name, m.id, any_fp4 ? fmt : "fp32", any_fp4 ? mode : "",
	       any_fp4 && *keep32 ? " (the layers listed in --fp32-layers in FP32)" : "");
	op_model_free(&m);
	op_st_close(&st);
	return 0;
}
