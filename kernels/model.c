/*
 * model.c — the event network's forward pass (model.h). Events are split over threads; each
 * thread runs the whole network on its share with its own working memory, so threads never
 * wait on each other between layers and an event's result never depends on its neighbours.
 */
#include "kernels/model.h"
#include "kernels/pool.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct op_model_ws {
	float *feat, *a, *b, *g, *ga, *gb;
	size_t feat_cap, a_cap, b_cap, g_cap, ga_cap, gb_cap; /* in elements; buffers only grow */
	uint32_t *off;
	size_t off_cap;
	uint64_t *scratch;
	size_t scratch_cap;
	size_t held, limit; /* bytes held by the buffers above; the most they may hold (0: no limit) */
};

static int grow(op_model_ws *ws, void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 1024;
	while (c < need)
		c *= 2;
	if (ws->limit && ws->held + (c - *cap) * elem > ws->limit)
		return -ENOMEM;
	void *q = realloc(*p, c * elem);
	if (!q)
		return -ENOMEM;
	ws->held += (c - *cap) * elem;
	*p = q;
	*cap = c;
	return 0;
}

op_model_ws *op_model_ws_new(void)
{
	return calloc(1, sizeof(op_model_ws));
}

/* Every buffer given back (the limit stays). */
static void ws_release(op_model_ws *ws)
{
	free(ws->feat), free(ws->a), free(ws->b), free(ws->g), free(ws->ga), free(ws->gb);
	free(ws->off), free(ws->scratch);
	const size_t limit = ws->limit;
	memset(ws, 0, sizeof(*ws));
	ws->limit = limit;
}

void op_model_ws_set_limit(op_model_ws *ws, size_t bytes)
{
	ws->limit = bytes;
}

void op_model_ws_free(op_model_ws *ws)
{
	if (!ws)
		return;
	free(ws->feat), free(ws->a), free(ws->b), free(ws->g), free(ws->ga), free(ws->gb);
	free(ws->off), free(ws->scratch);
	free(ws);
}

int op_model_layer_fp32(op_model_layer *l, const char *name, uint32_t n, uint32_t k, const float *w,
			const float *bias, int relu)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->precision = OP_MODEL_FP32;
	l->mode = OP_W4A16;
	op_fp4_linear *L = &l->lin;
	L->n = n, L->k = k, L->relu = relu, L->act_scale = 1.0f;
	L->w.rows = n, L->w.cols = k, L->w.tensor_scale = 1.0f;
	L->wdec = malloc((size_t)n * k * sizeof(float));
	L->bias = calloc(n, sizeof(float));
	if (!L->wdec || !L->bias) {
		op_fp4_linear_free(L);
		return -ENOMEM;
	}
	memcpy(L->wdec, w, (size_t)n * k * sizeof(float));
	if (bias)
		memcpy(L->bias, bias, n * sizeof(float));
	op_fp4_linear_layout_w16(L); /* without it (no memory) the rungs' slower paths run */
	return 0;
}

int op_model_layer_quantize(op_model_layer *l, const char *name, uint32_t n, uint32_t k, const float *w,
			    const float *bias, int relu, int format, int mode, int mx_mode, float act_amax,
			    double *rel_err)
{
	uint32_t bl = op_fp4_block(format), kp = (k + bl - 1) / bl * bl;
	op_fp4_tensor t;
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->precision = OP_MODEL_FP4;
	l->mode = mode;
	int rc = op_fp4_tensor_alloc(&t, format, n, kp);
	if (rc < 0)
		return rc;
	rc = op_fp4_quantize(&t, w, k, k, mx_mode);
	if (rc < 0) {
		op_fp4_tensor_free(&t);
		return rc;
	}
	/* NVFP4 activations: a static tensor scale from the calibrated range, so that the
	 * largest block the layer saw in training gets the largest E4M3 scale. */
	float act_scale = act_amax > 0 && isfinite(act_amax) ? act_amax / (OP_E4M3_MAX * OP_E2M1_MAX) : 1.0f;
	rc = op_fp4_linear_init(&l->lin, &t, k, bias, relu, act_scale, mx_mode);
	op_fp4_tensor_free(&t);
	if (rc < 0)
		return rc;
	if (rel_err) {
		double num = 0, den = 0;
		for (uint32_t r = 0; r < n; r++)
			for (uint32_t c = 0; c < k; c++) {
				double v = (double)l->lin.wdec[(size_t)r * kp + c] * l->lin.w.tensor_scale;
				double x = w[(size_t)r * k + c];
				num += (v - x) * (v - x);
				den += x * x;
			}
		*rel_err = den > 0 ? sqrt(num / den) : 0;
	}
	return 0;
}

void op_model_free(op_model *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < OP_MODEL_MAX_LAYERS; i++) {
		op_fp4_linear_free(&m->pulse[i].lin);
		op_fp4_linear_free(&m->head[i].lin);
	}
	memset(m, 0, sizeof(*m));
}

int op_model_check(const op_model *m, char *why, size_t whylen)
{
#define FAIL(...)                                      \
	do {                                           \
		snprintf(why, whylen, __VA_ARGS__);    \
		return -EINVAL;                        \
	} while (0)
	if (m->n_pulse_feat != OP_FEAT_PULSE || m->n_event_feat != OP_FEAT_EVENT)
		FAIL("the model expects %u pulse and %u event features; this build computes %u and %u",
		     m->n_pulse_feat, m->n_event_feat, OP_FEAT_PULSE, OP_FEAT_EVENT);
	if (m->max_pulses == 0 || m->max_pulses > 100000)
		FAIL("max_pulses %u out of range 1..100000", m->max_pulses);
	if (m->n_pulse_layers < 1 || m->n_pulse_layers > OP_MODEL_MAX_LAYERS || m->n_head_layers < 1 ||
	    m->n_head_layers > OP_MODEL_MAX_LAYERS)
		FAIL("needs 1..%d pulse layers and 1..%d head layers (has %u and %u)", OP_MODEL_MAX_LAYERS,
		     OP_MODEL_MAX_LAYERS, m->n_pulse_layers, m->n_head_layers);
	for (uint32_t i = 0; i < m->n_pulse_feat; i++)
		if (!isfinite(m->pulse_mean[i]) || !(m->pulse_scale[i] > 0) || !isfinite(m->pulse_scale[i]))
			FAIL("pulse feature %u: normalisation mean %g scale %g is not usable", i, m->pulse_mean[i],
			     m->pulse_scale[i]);
	for (uint32_t i = 0; i < m->n_event_feat; i++)
		if (!isfinite(m->event_mean[i]) || !(m->event_scale[i] > 0) || !isfinite(m->event_scale[i]))
			FAIL("event feature %u: normalisation mean %g scale %g is not usable", i, m->event_mean[i],
			     m->event_scale[i]);
	if (!isfinite(m->log10e_mean) || !(m->log10e_scale > 0) || !isfinite(m->log10e_scale))
		FAIL("log10 energy scaling %g %g is not usable", m->log10e_mean, m->log10e_scale);
	uint32_t k = m->n_pulse_feat;
	for (uint32_t i = 0; i < m->n_pulse_layers; i++) {
		const op_fp4_linear *L = &m->pulse[i].lin;
		if (L->k != k || L->n == 0 || L->n > 4096)
			FAIL("pulse layer %s takes %u inputs, %u expected (outputs %u)", m->pulse[i].name, L->k, k, L->n);
		k = L->n;
	}
	k = 2 * k + m->n_event_feat;
	for (uint32_t i = 0; i < m->n_head_layers; i++) {
		const op_fp4_linear *L = &m->head[i].lin;
		if (L->k != k || L->n == 0 || L->n > 4096)
			FAIL("head layer %s takes %u inputs, %u expected (outputs %u)", m->head[i].name, L->k, k, L->n);
		k = L->n;
	}
	if (k != OP_MODEL_OUTPUTS)
		FAIL("the last layer gives %u outputs; the network needs %d", k, OP_MODEL_OUTPUTS);
	/* a ReLU there would clamp the direction correction and the track logit at 0 */
	if (m->head[m->n_head_layers - 1].lin.relu)
		FAIL("the last layer %s has a ReLU; the network's outputs are linear", m->head[m->n_head_layers - 1].name);
	return 0;
#undef FAIL
}

static int layer_run(const op_model_layer *l, int rung, const float *X, size_t ldx, uint32_t M, float *Y)
{
	return op_fp4_gemm_rung(rung, &l->lin, l->precision == OP_MODEL_FP32 ? OP_W4A16 : l->mode, X, ldx, M, Y,
				l->lin.n);
}

static uint32_t widest(const op_model_layer *ls, uint32_t n)
{
	uint32_t w = 0;
	for (uint32_t i = 0; i < n; i++)
		w = ls[i].lin.n > w ? ls[i].lin.n : w;
	return w;
}

size_t op_model_batch_pulses(const op_model *m, const op_reco_event *events, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += events[i].n < m->max_pulses ? events[i].n : m->max_pulses;
	return total;
}

/* Valid pulses (finite) the features still cannot hold: times spread beyond 1e30 ns or charges
 * summing beyond 1e30 pe overflow a float feature, and a ReLU would turn the NaN into 0 and the
 * result into a finite, meaningless one. Such an event gives no rows and comes out degenerate.
 * Decided here, from the pulses alone, so that every caller counts the same rows. */
static int unusable(const op_reco_event *ev)
{
	double tmin = 0, tmax = 0, q = 0;
	for (uint32_t i = 0; i < ev->n; i++) {
		const double t = ev->t_ns[i];
		tmin = i == 0 || t < tmin ? t : tmin;
		tmax = i == 0 || t > tmax ? t : tmax;
		q += ev->q_pe[i] > 0 ? ev->q_pe[i] : 0;
	}
	return !(tmax - tmin <= 1e30) || !(q <= 1e30);
}

uint32_t op_model_event_rows(const op_model *m, const op_reco_event *ev, const op_reco_out *guess)
{
	if (guess->status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE) || unusable(ev))
		return 0;
	return ev->n < m->max_pulses ? ev->n : m->max_pulses;
}

long op_model_inputs(const op_model *m, op_model_ws *ws, const op_reco_event *events, const op_reco_out *guesses,
		     size_t n, float *feat, uint32_t *off, float *evf, size_t ldev, uint32_t row0)
{
	const uint32_t FP = m->n_pulse_feat, FE = m->n_event_feat;
	uint32_t T = row0;
	float ef[OP_FEAT_EVENT];
	for (size_t i = 0; i < n; i++) {
		if (grow(ws, (void **)&ws->scratch, &ws->scratch_cap, events[i].n + 1, sizeof(uint64_t)) < 0)
			return -ENOMEM;
		off[i] = T;
		uint32_t used = 0;
		memset(ef, 0, sizeof(ef));
		if (!(guesses[i].status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE)) && !unusable(&events[i]))
			used = op_features(&events[i], &guesses[i], m->max_pulses, feat + (size_t)T * FP, ef, ws->scratch);
		/* unusable() keeps overflow out; a normalisation that still overflows (a model with
		 * tiny scales) gives 0 there rather than a NaN that a ReLU would hide */
		for (uint32_t r = T; r < T + used; r++)
			for (uint32_t f = 0; f < FP; f++) {
				float *v = &feat[(size_t)r * FP + f];
				*v = (*v - m->pulse_mean[f]) / m->pulse_scale[f];
				if (!isfinite(*v))
					*v = 0;
			}
		float *g = evf + i * ldev;
		for (uint32_t f = 0; f < FE; f++) {
			g[f] = (ef[f] - m->event_mean[f]) / m->event_scale[f];
			if (!isfinite(g[f]))
				g[f] = 0;
		}
		T += used;
	}
	return (long)(T - row0);
}

void op_model_outputs(const op_model *m, const op_reco_out *guesses, const uint32_t *off, const float *raw,
		      size_t ldraw, op_reco_out *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const float *o = raw + i * ldraw;
		op_reco_out *r = &out[i];
		r->speed_m_per_ns = NAN;
		r->status = 0;
		if (off[i + 1] == off[i]) {
			r->dir[0] = r->dir[1] = r->dir[2] = NAN;
			r->zenith_rad = r->azimuth_rad = r->log10_energy_gev = r->track_score = NAN;
			r->status = guesses[i].status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE);
			if (!r->status) /* LineFit found it usable, the network not (unusable()) */
				r->status = OP_RECO_DEGENERATE;
			continue;
		}
		double v[3] = {guesses[i].dir[0] + o[0], guesses[i].dir[1] + o[1], guesses[i].dir[2] + o[2]};
		double nv = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
		if (!(nv > 1e-6) || !isfinite(nv)) { /* NaN, as the flag says; the first guess is in its own columns */
			r->dir[0] = r->dir[1] = r->dir[2] = NAN;
			r->zenith_rad = r->azimuth_rad = r->log10_energy_gev = r->track_score = NAN;
			r->status |= OP_RECO_DEGENERATE;
			continue;
		}
		for (int c = 0; c < 3; c++)
			r->dir[c] = (float)(v[c] / nv);
		/* IceCube convention: zenith/azimuth of where the particle came FROM */
		double fx = -r->dir[0], fy = -r->dir[1], fz = -r->dir[2];
		r->zenith_rad = (float)acos(fz < -1 ? -1 : fz > 1 ? 1 : fz);
		double az = atan2(fy, fx);
		r->azimuth_rad = (float)(az < 0 ? az + 2 * M_PI : az);
		r->log10_energy_gev = o[3] * m->log10e_scale + m->log10e_mean;
		r->track_score = (float)(1.0 / (1.0 + exp(-(double)o[4])));
		if (!isfinite(r->log10_energy_gev)) {
			r->log10_energy_gev = NAN;
			r->status |= OP_RECO_NO_ENERGY;
		}
		if (!isfinite(o[4])) {
			r->track_score = NAN;
			r->status |= OP_RECO_NO_SCORE;
		}
	}
}

static int run_part(const op_model *m, op_model_ws *ws, const op_reco_event *events, const op_reco_out *guesses,
		    op_reco_out *out, size_t n)
{
	const uint32_t FP = m->n_pulse_feat, FE = m->n_event_feat;
	int rung = op_fp4_rung_best();
	if (grow(ws, (void **)&ws->off, &ws->off_cap, n + 1, sizeof(uint32_t)) < 0)
		return -ENOMEM;
	size_t total = op_model_batch_pulses(m, events, n);
	uint32_t wp = widest(m->pulse, m->n_pulse_layers), wh = widest(m->head, m->n_head_layers);
	uint32_t gw = 2 * m->pulse[m->n_pulse_layers - 1].lin.n + FE;
	if (grow(ws, (void **)&ws->feat, &ws->feat_cap, (total + 1) * FP, sizeof(float)) < 0 ||
	    grow(ws, (void **)&ws->g, &ws->g_cap, (n + 1) * (gw > wh ? gw : wh), sizeof(float)) < 0)
		return -ENOMEM;
	if (grow(ws, (void **)&ws->a, &ws->a_cap, (total + 1) * wp, sizeof(float)) < 0 ||
	    grow(ws, (void **)&ws->b, &ws->b_cap, (total + 1) * wp, sizeof(float)) < 0 ||
	    grow(ws, (void **)&ws->ga, &ws->ga_cap, (n + 1) * wh, sizeof(float)) < 0 ||
	    grow(ws, (void **)&ws->gb, &ws->gb_cap, (n + 1) * wh, sizeof(float)) < 0)
		return -ENOMEM;

	/* features, normalised; event features straight into the head's input */
	long T = op_model_inputs(m, ws, events, guesses, n, ws->feat, ws->off, ws->g + (gw - FE), gw, 0);
	if (T < 0)
		return (int)T;
	ws->off[n] = (uint32_t)T;

	const float *cur = ws->feat;
	size_t ld = FP;
	float *dst = ws->a;
	for (uint32_t l = 0; l < m->n_pulse_layers; l++) {
		int rc = layer_run(&m->pulse[l], rung, cur, ld, (uint32_t)T, dst);
		if (rc < 0)
			return rc;
		cur = dst;
		ld = m->pulse[l].lin.n;
		dst = dst == ws->a ? ws->b : ws->a;
	}
	op_pool_mean_max(rung, cur, ld, (uint32_t)ld, ws->off, (uint32_t)n, ws->g, gw);

	cur = ws->g;
	ld = gw;
	dst = ws->ga;
	for (uint32_t l = 0; l < m->n_head_layers; l++) {
		int rc = layer_run(&m->head[l], rung, cur, ld, (uint32_t)n, dst);
		if (rc < 0)
			return rc;
		cur = dst;
		ld = m->head[l].lin.n;
		dst = dst == ws->ga ? ws->gb : ws->ga;
	}
	op_model_outputs(m, guesses, ws->off, cur, OP_MODEL_OUTPUTS, out, n);
	return 0;
}

/* A share of events too big for the memory there is (a burst of large events in a large batch)
 * is run in halves, down to one event at a time, instead of refused whole: the infer stage
 * would exit, and ingest would send it the same batch again. Each event's result is its own
 * (per-event pooling, a fixed activation scale), so the halves give what the whole would. */
static int run_chunk(const op_model *m, op_model_ws *ws, const op_reco_event *events, const op_reco_out *guesses,
		     op_reco_out *out, size_t n)
{
	int rc = run_part(m, ws, events, guesses, out, n);
	if (rc != -ENOMEM || n < 2)
		return rc;
	ws_release(ws); /* what the failed attempt grew would count against the halves */
	const size_t h = n / 2;
	rc = run_chunk(m, ws, events, guesses, out, h);
	return rc < 0 ? rc : run_chunk(m, ws, events + h, guesses ? guesses + h : NULL, out + h, n - h);
}

typedef struct chunk_job {
	const op_model *m;
	op_model_ws *ws;
	const op_reco_event *ev;
	const op_reco_out *g;
	op_reco_out *out;
	size_t n;
	int rc;
} chunk_job;

static void *chunk_main(void *p)
{
	chunk_job *j = p;
	j->rc = run_chunk(j->m, j->ws, j->ev, j->g, j->out, j->n);
	return NULL;
}

int op_model_run(const op_model *m, op_model_ws *const *ws, int threads, const op_reco_event *events,
		 const op_reco_out *guesses, op_reco_out *out, size_t n)
{
	enum { MAXT = 64 };
	chunk_job jobs[MAXT];
	if (threads < 1)
		threads = 1;
	if (threads > MAXT)
		threads = MAXT;
	if ((size_t)threads > n)
		threads = n ? (int)n : 1;
	size_t per = (n + (size_t)threads - 1) / (size_t)threads;
	int nj = 0;
	for (size_t lo = 0; lo < n || nj == 0; lo += per, nj++) {
		size_t cnt = lo + per < n ? per : n - lo;
		jobs[nj] = (chunk_job){m, ws[nj], events + lo, guesses + lo, out + lo, cnt, 0};
		if (lo + per >= n)
			{ nj++; break; }
	}
	op_parallel(nj, chunk_main, jobs, sizeof(chunk_job));
	int rc = 0;
	for (int i = 0; i < nj; i++)
		if (jobs[i].rc < 0)
			rc = jobs[i].rc;
	return rc;
}
