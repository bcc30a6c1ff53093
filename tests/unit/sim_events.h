/*
 * sim_events.h — simulated IceCube-86 events placed in the detector, with LineFit's first
 * guess, for the tests of the network and its backends; and the angle between directions.
 * Header-only (each test is one file). Events' pulse arrays are never freed: test lifetime.
 */
#ifndef OP_TESTS_SIM_EVENTS_H
#define OP_TESTS_SIM_EVENTS_H
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "ingest/geometry.h"
#include "ingest/simgen.h"
#include "kernels/features.h"

/* n events; every short_every-th (when > 0) cut to one pulse, too short for LineFit, so that
 * the network must skip it. */
static inline void sim_events(op_reco_event *ev, op_reco_out *guess, int n, uint64_t seed, double track_fraction,
			      uint32_t max_pulses, int short_every)
{
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	op_simgen_config sc = {.seed = seed, .track_fraction = track_fraction, .max_pulses = max_pulses, .noise_hz = 500};
	CHECK(op_geometry_default(&geo) == 0);
	CHECK(op_simgen_open(&sc, geo, &gen) == 0);
	for (int e = 0; e < n; e++) {
		op_sim_event s;
		op_simgen_next(gen, &s);
		float *b = malloc((size_t)s.n * 5 * sizeof(float) + 4), *sb = malloc((size_t)s.n * 5 * sizeof(float) + 4);
		uint16_t *fl = malloc((size_t)s.n * 2 + 2);
		op_placed_pulses dst = {b, b + s.n, b + 2 * s.n, b + 3 * s.n, b + 4 * s.n, fl};
		uint32_t m = op_geometry_place(geo, s.pulses, s.n, &dst, 0);
		if (short_every > 0 && e % short_every == short_every / 7)
			m = m < 1 ? m : 1;
		ev[e] = (op_reco_event){.n = m, .x_m = b, .y_m = b + s.n, .z_m = b + 2 * s.n, .t_ns = b + 3 * s.n,
					.q_pe = b + 4 * s.n, .flags = fl};
		op_seed_guess(&guess[e], &ev[e], sb);
		free(sb);
	}
	op_simgen_close(gen);
	op_geometry_close(geo);
}

/* atan2(|a×b|, a·b): exact near 0, where acos of a dot product reads float rounding as 1e-4 rad */
static inline double sim_angle(const float *a, const float *b)
{
	double cx = (double)a[1] * b[2] - (double)a[2] * b[1], cy = (double)a[2] * b[0] - (double)a[0] * b[2],
	       cz = (double)a[0] * b[1] - (double)a[1] * b[0];
	double d = (double)a[0] * b[0] + (double)a[1] * b[1] + (double)a[2] * b[2];
	return atan2(sqrt(cx * cx + cy * cy + cz * cz), d);
}

#endif
