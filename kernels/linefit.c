/*
 * linefit.c — see linefit.h. Direction of travel = v/|v|; the particle came from −v, which
 * gives zenith = acos(−v_z/|v|) and azimuth = atan2(−v_y, −v_x) in [0, 2π).
 */
#include "kernels/linefit.h"

#include <math.h>

void op_linefit(op_reco_out *out, const op_reco_event *ev, int charge_weighted)
{
	double sw = 0, st = 0, stt = 0, sr[3] = {0, 0, 0}, srt[3] = {0, 0, 0};
	const float *pos[3] = {ev->x_m, ev->y_m, ev->z_m};

	out->log10_energy_gev = NAN;
	out->track_score = NAN;
	out->status = OP_RECO_NO_ENERGY | OP_RECO_NO_SCORE;
	if (ev->n < 2) {
		out->status |= OP_RECO_TOO_FEW_PULSES;
		goto nan;
	}
	for (uint32_t i = 0; i < ev->n; i++) {
		double w = charge_weighted ? (double)ev->q_pe[i] : 1.0, t = ev->t_ns[i];
		if (!(w > 0))
			continue;
		sw += w;
		st += w * t;
		stt += w * t * t;
		for (int k = 0; k < 3; k++) {
			sr[k] += w * pos[k][i];
			srt[k] += w * pos[k][i] * t;
		}
	}
	if (!(sw > 0)) {
		out->status |= OP_RECO_DEGENERATE;
		goto nan;
	}
	double tm = st / sw, var = stt / sw - tm * tm, v[3], norm = 0;
	if (!(var > 1e-9 * (1 + tm * tm))) {
		out->status |= OP_RECO_DEGENERATE;
		goto nan;
	}
	for (int k = 0; k < 3; k++) {
		v[k] = (srt[k] / sw - sr[k] / sw * tm) / var;
		norm += v[k] * v[k];
	}
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
