/*
 * features.c — the network's inputs (see features.h). Accumulates in double: the centroid and
 * mean time of a 5,000-pulse event must not depend on summation luck.
 */
#include "kernels/features.h"

#include "kernels/linefit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* A float's bits made to sort as unsigned integers in the float's order. */
static uint32_t ordered(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static int is_sorted_time(const float *t, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++)
		if (t[i] < t[i - 1])
			return 0;
	return 1;
}

uint32_t op_features(const op_reco_event *ev, const op_reco_out *guess, uint32_t max_pulses,
		     float *pf, float *ef, uint64_t *scratch)
{
	uint32_t n = ev->n;
	for (uint32_t k = 0; k < OP_FEAT_EVENT; k++)
		ef[k] = 0;
	if (n == 0)
		return 0;
	/* idx lives in the scratch: (time order key << 32 | pulse index), sorted only when the
	 * event is longer than the cap and not already in time order. */
	for (uint32_t i = 0; i < n; i++)
		scratch[i] = ((uint64_t)ordered(ev->t_ns[i]) << 32) | i;
	if (n > max_pulses && !is_sorted_time(ev->t_ns, n))
		qsort(scratch, n, sizeof(uint64_t), cmp_u64);
#define idx(k) ((uint32_t)scratch[k])
	uint32_t m = n < max_pulses ? n : max_pulses;

	double u[3] = {0, 0, -1};
	if (guess && !(guess->status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE)) && isfinite(guess->dir[0]))
		u[0] = guess->dir[0], u[1] = guess->dir[1], u[2] = guess->dir[2];

	double wq = 0, c[3] = {0, 0, 0}, t0 = 0;
	for (uint32_t k = 0; k < m; k++) {
		uint32_t i = idx(k);
		double w = ev->q_pe[i] > 0 ? ev->q_pe[i] : 0;
		wq += w;
		c[0] += w * ev->x_m[i], c[1] += w * ev->y_m[i], c[2] += w * ev->z_m[i];
		t0 += w * ev->t_ns[i];
	}
	if (wq <= 0) { /* no charge at all: plain means */
		for (uint32_t k = 0; k < m; k++) {
			uint32_t i = idx(k);
			c[0] += ev->x_m[i], c[1] += ev->y_m[i], c[2] += ev->z_m[i], t0 += ev->t_ns[i];
		}
		wq = m;
	}
	c[0] /= wq, c[1] /= wq, c[2] /= wq, t0 /= wq;

	double rr = 0, tt = 0, qtot = 0;
	for (uint32_t k = 0; k < m; k++) {
		uint32_t i = idx(k);
		double d[3] = {ev->x_m[i] - c[0], ev->y_m[i] - c[1], ev->z_m[i] - c[2]};
		double par = d[0] * u[0] + d[1] * u[1] + d[2] * u[2];
		double p[3] = {d[0] - par * u[0], d[1] - par * u[1], d[2] - par * u[2]};
		double rho = sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
		double tr = ev->t_ns[i] - t0;
		double q = ev->q_pe[i] > 0 ? ev->q_pe[i] : 0;
		float *f = pf + (size_t)k * OP_FEAT_PULSE;
		f[0] = (float)par;
		f[1] = (float)rho;
		f[2] = (float)tr;
		f[3] = (float)(tr - par / OP_C0_M_PER_NS);
		f[4] = (float)log1p(q);
		f[5] = (float)d[0], f[6] = (float)d[1], f[7] = (float)d[2];
		f[8] = (float)p[0], f[9] = (float)p[1], f[10] = (float)p[2];
		/* The products a linear pooled statistic needs to express the first guess's residual
		 * tilt: a track tilted by δ from u delays pulses by ≈ d⊥·δ/c₀. The time residual is
		 * clipped so that noise hits microseconds away cannot dominate the mean. */
		double tc = tr - par / OP_C0_M_PER_NS;
		tc = tc < -50 ? -50 : tc > 250 ? 250 : tc;
		f[11] = (float)(p[0] * tc), f[12] = (float)(p[1] * tc), f[13] = (float)(p[2] * tc);
		f[14] = (float)tc;
		f[15] = ev->flags && (ev->flags[i] & 1u) ? 1.0f : 0.0f;
		rr += d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
		tt += tr * tr;
		qtot += q;
	}
	ef[0] = (float)u[0], ef[1] = (float)u[1], ef[2] = (float)u[2];
	ef[3] = (float)log10((double)m);
	ef[4] = (float)log10(qtot > 1e-3 ? qtot : 1e-3);
	ef[5] = guess && isfinite(guess->speed_m_per_ns) ? guess->speed_m_per_ns : 0.0f;
	ef[6] = (float)sqrt(rr / m);
	ef[7] = (float)sqrt(tt / m);
	return m;
#undef idx
}

void op_seed_guess(op_reco_out *g, const op_reco_event *ev, float *buf)
{
	uint32_t nh = 0;
	if (ev->flags) /* HLC pulses the charge-weighted fit can use (one of 0 pe weighs nothing) */
		for (uint32_t i = 0; i < ev->n; i++)
			nh += (ev->flags[i] & 1u) && ev->q_pe[i] > 0;
	if (nh < OP_SEED_MIN_HLC) {
		op_linefit(g, ev, OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
		return;
	}
	float *x = buf, *y = buf + nh, *z = buf + 2 * (size_t)nh, *t = buf + 3 * (size_t)nh, *q = buf + 4 * (size_t)nh;
	uint32_t k = 0;
	for (uint32_t i = 0; i < ev->n; i++)
		if ((ev->flags[i] & 1u) && ev->q_pe[i] > 0) {
			x[k] = ev->x_m[i], y[k] = ev->y_m[i], z[k] = ev->z_m[i], t[k] = ev->t_ns[i], q[k] = ev->q_pe[i];
			k++;
		}
	op_reco_event h = {.n = k, .x_m = x, .y_m = y, .z_m = z, .t_ns = t, .q_pe = q, .flags = NULL};
	op_linefit(g, &h, OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
	/* The HLC pulses give no line (all on one DOM pair's string segment, one time): the
	 * whole event may; before, the event got no guess and the network no answer */
	if (g->status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE))
		op_linefit(g, ev, OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
}
