/*
 * simgen.h — synthetic IceCube-86 events with a simple physical light model, and the truth
 * that produced them, so reconstructions can be scored.
 *
 * Through-going muon tracks (isotropic, through a random point of the instrumented volume,
 * 100 GeV–100 TeV) and contained cascades (1 TeV–1 PeV). Direct-photon arrival times from the
 * Cherenkov geometry, a scattering delay that grows with distance, Poisson photo-electrons
 * falling with distance, dark-noise hits, HLC flags. Deterministic from the seed.
 */
#ifndef OP_INGEST_SIMGEN_H
#define OP_INGEST_SIMGEN_H
#include <stdint.h>

#include "ingest/geometry.h"
#include "ingest/wire.h"

enum op_sim_kind { OP_SIM_TRACK = 0, OP_SIM_CASCADE = 1 };

typedef struct op_sim_truth {
	int kind;               /* op_sim_kind */
	double dir[3];          /* unit vector, direction of travel */
	double zenith_rad;      /* where it came from (IceCube convention) */
	double azimuth_rad;
	double energy_gev;
	double vertex_m[3];     /* cascade vertex, or the track's point of closest approach to the centre */
} op_sim_truth;

typedef struct op_sim_event {
	op_pulse *pulses;       /* owned by the generator, valid until the next call */
	uint32_t n;
	uint64_t detector_time_ns;
	op_sim_truth truth;
} op_sim_event;

typedef struct op_simgen_config {
	uint64_t seed;
	double track_fraction;  /* 1 = tracks only, 0 = cascades only */
	uint32_t max_pulses;    /* keep the earliest this many (0 = 5000) */
	double noise_hz;        /* dark rate per DOM over a 10 us window; 0 = none (outpost-sim and the benchmarks use 500 Hz) */
	uint64_t start_time_ns; /* detector time of the first event */
	double rate_hz;         /* mean event rate for detector times (default 2700 Hz) */
} op_simgen_config;

typedef struct op_simgen op_simgen;

int op_simgen_open(const op_simgen_config *cfg, const op_geometry *geo, op_simgen **ret);
void op_simgen_close(op_simgen *g);
int op_simgen_next(op_simgen *g, op_sim_event *ev);

#endif
