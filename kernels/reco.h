/*
 * reco.h — the reconstruction interface the infer stage calls on every batch of events.
 *
 * A reconstruction turns each event's pulses (already placed in the detector by the caller's
 * geometry lookup) into one result: direction, energy, track/cascade score. LineFit (the
 * classical baseline) is the first implementation; the FP4 network plugs in beside it through
 * the same op_reco_open/op_reco_run pair. Library code: never logs, never exits.
 */
#ifndef OP_KERNELS_RECO_H
#define OP_KERNELS_RECO_H
#include <stddef.h>
#include <stdint.h>

/* One event as the reconstruction sees it: n pulses, structure of arrays. */
typedef struct op_reco_event {
	uint32_t n;
	const float *x_m, *y_m, *z_m; /* DOM position, IceCube coordinates */
	const float *t_ns;            /* pulse time relative to the event */
	const float *q_pe;            /* charge */
	const uint16_t *flags;        /* pulse flags (OP_PULSE_F_HLC = bit 0); NULL = none known */
} op_reco_event;

enum op_reco_status {
	OP_RECO_OK = 0,
	OP_RECO_TOO_FEW_PULSES = 1u << 0, /* fewer than the method needs; outputs are NaN */
	OP_RECO_DEGENERATE = 1u << 1,     /* all pulses at one time or one place; outputs NaN */
	OP_RECO_NO_ENERGY = 1u << 2,      /* method gives no energy estimate (NaN) */
	OP_RECO_NO_SCORE = 1u << 3,       /* method gives no track/cascade score (NaN) */
};

typedef struct op_reco_out {
	float dir[3];       /* unit vector of the direction of TRAVEL */
	float zenith_rad;   /* direction the particle came FROM (IceCube convention) */
	float azimuth_rad;  /* in [0, 2pi) */
	float log10_energy_gev;
	float track_score;  /* 1 = track, 0 = cascade */
	float speed_m_per_ns; /* LineFit's |v|; NaN for methods that have none */
	float guess_dir[3];   /* the first guess the method started from (LineFit: its own result) */
	uint32_t status;    /* op_reco_status bits */
} op_reco_out;

typedef struct op_reco op_reco;

struct op_model;

typedef struct op_reco_config {
	const char *kind;    /* "linefit" or "fp4" */
	int charge_weighted; /* LineFit: weight by charge */
	int trim;            /* LineFit: refit without outlying pulses (improved LineFit) */
	struct op_model *model; /* fp4: a loaded, checked model; op_reco takes it over (also on error) */
	int threads;         /* fp4: CPU threads for the network (1..64) */
	const char *backend; /* fp4: "auto" (NULL), "cpu" or "cuda" (kernels/backend.h) */
	uint32_t max_events; /* fp4: the largest batch op_reco_run will get */
	char *why;           /* fp4, out: what runs the network and why, or why it cannot run */
	size_t whylen;
} op_reco_config;

/* 0 or -EINVAL (unknown kind, no model, unknown backend) / -ENODEV (backend "cuda" without a
 * usable GPU) / -ENOMEM. *ret untouched on failure. */
int op_reco_open(const op_reco_config *cfg, op_reco **ret);
void op_reco_close(op_reco *r);
/* out[i] for events[i], i < n. Returns 0; per-event trouble is in out[i].status. */
int op_reco_run(op_reco *r, op_reco_out *out, const op_reco_event *events, size_t n);
/* The network's backend (NULL for LineFit). */
struct op_backend *op_reco_backend(op_reco *r);
/* Stable identity written into every result row and segment ("linefit-v1", id 1). */
const char *op_reco_model_name(const op_reco *r);
uint32_t op_reco_model_id(const op_reco *r);
/* The name of LineFit's variant with this model id (1 to 4), NULL for any other id. */
const char *op_reco_linefit_name(uint32_t model_id);

#endif
