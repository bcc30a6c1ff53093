/*
 * linefit.c — see linefit.h. Direction of travel = v/|v|; the particle came from −v, which
 * gives zenith = acos(−v_z/|v|) and azimuth = atan2(−v_y, −v_x) in [0, 2π).
 */
#include "kernels/linefit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One weighted least-squares pass over the pulses whose residual to (r0, v) is under cut_m
 * (all pulses when cut_m is infinite). Returns 0, or a status bit. */
static uint32_t fit(const op_reco_event *ev, int charge_weighted, const double r0_in[3], const double v_in[3],
		    double cut_m, double r0[3], double v[3], uint32_t *used)
{
	double sw = 0, st = 0, stt = 0, sr[3] = {0, 0, 0}, srt[3] = {0, 0, 0};
	double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
	const float *pos[3] = {ev->x_m, ev->y_m, ev->z_m};

	*used = 0;
	for (uint32_t i = 0; i < ev->n; i++) {
		double w = charge_weighted ? (double)ev->q_pe[i] : 1.0, t = ev->t_ns[i];
		if (!(w > 0))
			continue;
		if (isfinite(cut_m)) {
			double d2 = 0;
			for (int k = 0; k < 3; k++) {
				double dk = pos[k][i] - (r0_in[k] + v_in[k] * t);
				d2 += dk * dk;
			}
			if (d2 > cut_m * cut_m)
				continue;
		}
		(*used)++;
		sw += w;
		st += w * t;
		stt += w * t * t;
		for (int k = 0; k < 3; k++) {
			sr[k] += w * pos[k][i];
			srt[k] += w * pos[k][i] * t;
			lo[k] = fmin(lo[k], pos[k][i]);
			hi[k] = fmax(hi[k], pos[k][i]);
		}
	}
	if (*used < 2 || !(sw > 0))
		return *used < 2 ? OP_RECO_TOO_FEW_PULSES : OP_RECO_DEGENERATE;
	double tm = st / sw, var = stt / sw - tm * tm;
	if (!(var > 1e-9 * (1 + tm * tm)))
		return OP_RECO_DEGENERATE;
	/* All pulses at one place (one DOM, common in low-energy events): the fitted velocity is
	 * rounding noise, not zero, and would come out as a confident direction near straight up
	 * or down. Said by the pulses' extent, not by their weighted spread: two DOMs 7 m apart
	 * (DeepCore's spacing) with 50 pe on one and 1 pe on the other spread 0.94 m² by charge
	 * and were called one place, their event given no direction at all (nor the network's,
	 * which starts from this fit on the HLC pulses). */
	if (!(hi[0] - lo[0] > 1.0 || hi[1] - lo[1] > 1.0 || hi[2] - lo[2] > 1.0))
		return OP_RECO_DEGENERATE;
	for (int k = 0; k < 3; k++) {
		v[k] = (srt[k] / sw - sr[k] / sw * tm) / var;
		r0[k] = sr[k] / sw - v[k] * tm;
	}
	return 0;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void op_linefit(op_reco_out *out, const op_reco_event *ev, int opts)
{
	double r0[3], v[3], r1[3], v1[3], norm = 0;
	uint32_t used, bad;

	out->log10_energy_gev = NAN;
	out->track_score = NAN;
	out->status = OP_RECO_NO_ENERGY | OP_RECO_NO_SCORE;
	if (ev->n < 2) {
		out->status |= OP_RECO_TOO_FEW_PULSES;
		goto nan;
	}
	bad = fit(ev, opts & OP_LINEFIT_CHARGE_WEIGHTED, NULL, NULL, INFINITY, r0, v, &used);
	if (bad) {
		out->status |= bad;
		goto nan;
	}
	/* Improved LineFit: drop pulses far from the first line (noise, late scattered light) and
	 * fit again; twice, each time cutting at twice the median residual (at least 30 m). */
	for (int pass = 0; (opts & OP_LINEFIT_TRIM) && pass < 2; pass++) {
		double res[OP_LINEFIT_TRIM_MAX];
		uint32_t m = ev->n < OP_LINEFIT_TRIM_MAX ? ev->n : OP_LINEFIT_TRIM_MAX;
		for (uint32_t i = 0; i < m; i++) {
			double d2 = 0, t = ev->t_ns[i];
			double p[3] = {ev->x_m[i], ev->y_m[i], ev->z_m[i]};
			for (int k = 0; k < 3; k++)
				d2 += (p[k] - (r0[k] + v[k] * t)) * (p[k] - (r0[k] + v[k] * t));
			res[i] = sqrt(d2);
		}
		qsort(res, m, sizeof(double), cmpd);
		double cut = 2 * res[m / 2];
		if (cut < 30)
			cut = 30;
		if (fit(ev, opts & OP_LINEFIT_CHARGE_WEIGHTED, r0, v, cut, r1, v1, &used) != 0 || used < 4)
			break; /* keep the previous, wider fit */
		memcpy(r0, r1, sizeof(r0));
		memcpy(v, v1, sizeof(v));
	}
	for (int k = 0; k < 3; k++)
		norm += v[k] * v[k];
	norm = sqrt(norm);
	if (!(norm > 0)) {
		out->status |= OP_RECO_DEGENERATE;
		goto nan;
	}
	for (int k = 0; k < 3; k++)
		out->dir[k] = (float)(v[k] / norm);
	out->zenith_rad = (float)acos(fmin(1.0, fmax(-1.0, -v[2] / norm)));
	double az = atan2(-v[1], -v[0]);
	if (az < 0)
		az += 2 * M_PI;
	out->azimuth_rad = (float)az;
	out->speed_m_per_ns = (float)norm;
	return;
nan:
	out->dir[0] = out->dir[1] = out->dir[2] = NAN;
	out->zenith_rad = out->azimuth_rad = out->speed_m_per_ns = NAN;
}
