/*
 * linefit.h — IceCube's classical LineFit: the least-squares line r(t) = r0 + v·t through the
 * pulses, v = (<r t> − <r><t>) / (<t²> − <t>²). The baseline every learned reconstruction must
 * beat. Pure arithmetic: libm only, accumulates in double.
 */
#ifndef OP_KERNELS_LINEFIT_H
#define OP_KERNELS_LINEFIT_H
#include "kernels/reco.h"

/* One event. charge_weighted: each pulse weighs its charge (else 1). */
void op_linefit(op_reco_out *out, const op_reco_event *ev, int charge_weighted);

#endif
