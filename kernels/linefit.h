/*
 * linefit.h — IceCube's classical LineFit: the least-squares line r(t) = r0 + v·t through the
 * pulses, v = (<r t> − <r><t>) / (<t²> − <t>²). The baseline every learned reconstruction must
 * beat. Pure arithmetic: libm only, accumulates in double.
 */
#ifndef OP_KERNELS_LINEFIT_H
#define OP_KERNELS_LINEFIT_H
#include "kernels/reco.h"

enum op_linefit_opt {
	OP_LINEFIT_CHARGE_WEIGHTED = 1, /* each pulse weighs its charge (else 1) */
	OP_LINEFIT_TRIM = 2,            /* refit without pulses far from the first line ("improved") */
};
/* Trimming looks at the first this many pulses of an event. */
#define OP_LINEFIT_TRIM_MAX 16384

/* One event; opts: op_linefit_opt bits. */
void op_linefit(op_reco_out *out, const op_reco_event *ev, int opts);

#endif
