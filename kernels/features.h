/*
 * features.h — what the event network sees: the inputs are computed here, once, in C, and the
 * training tool (tools/train.py) reads the very same numbers from `outpost-dataset`, so training
 * and inference cannot drift apart.
 *
 * Every pulse is described in the frame of the event's LineFit first guess (direction of travel
 * u, charge-weighted centroid c, charge-weighted mean time t0). With d = r − c:
 *   0 d·u [m]          1 |d⊥| [m]            2 t − t0 [ns]       3 t − t0 − d·u/c₀ [ns]
 *   4 ln(1+q) [pe]     5..7 d [m]            8..10 d⊥ [m]
 *   11..13 d⊥ · τ [m·ns]  14 τ [ns], where τ is feature 3 clipped to [−50, 250] ns
 *   15 1 for a hard-local-coincidence pulse, else 0
 * The event features are u (0..2), log10 pulses (3), log10 total charge (4), LineFit speed in
 * m/ns (5), rms |d| [m] (6), rms (t − t0) [ns] (7).
 * Raw units: the model file carries the normalisation (mean, scale) applied before layer 1.
 */
#ifndef OP_KERNELS_FEATURES_H
#define OP_KERNELS_FEATURES_H
#include <stdint.h>

#include "kernels/reco.h"

#define OP_FEAT_PULSE 16u
#define OP_SEED_MIN_HLC 8u
#define OP_FEAT_EVENT 8u
#define OP_C0_M_PER_NS 0.299792458f

/*
 * The pulses the network looks at: the earliest max_pulses of the event (all when it has
 * fewer). Writes n_used × OP_FEAT_PULSE floats into pulse_feat (row-major) and OP_FEAT_EVENT
 * into event_feat. guess: LineFit's result (its direction is replaced by straight down when it
 * failed). scratch: room for ev->n entries. Returns n_used (0 for an empty event).
 */
uint32_t op_features(const op_reco_event *ev, const op_reco_out *guess, uint32_t max_pulses,
		     float *pulse_feat, float *event_feat, uint64_t *scratch);

/*
 * The network's first guess: LineFit (trimmed, charge-weighted) on the event's hard-local-
 * coincidence pulses with charge when it has at least OP_SEED_MIN_HLC of them — isolated
 * dark-noise hits are almost never HLC — else, or when they give no line, on all pulses.
 * buf: room for 5·ev->n floats.
 */
void op_seed_guess(op_reco_out *g, const op_reco_event *ev, float *buf);

#endif
