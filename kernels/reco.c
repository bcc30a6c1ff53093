/*
 * reco.c — the reconstruction registry behind op_reco_open (see reco.h). Today: LineFit,
 * plain (model id 1) and charge-weighted (model id 2). The FP4 network registers here next.
 */
#include "kernels/reco.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/linefit.h"

struct op_reco {
	int opts;
	const char *name;
	uint32_t id;
};

int op_reco_open(const op_reco_config *cfg, op_reco **ret)
{
	op_reco *r;

	if (!cfg || !cfg->kind || strcmp(cfg->kind, "linefit") != 0)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/* Model ids are stable: they are written into every result row. */
	static const char *const names[4] = {"linefit-v1", "linefit-qw-v1", "linefit-trim-v1", "linefit-trim-qw-v1"};
	r->opts = (cfg->charge_weighted ? OP_LINEFIT_CHARGE_WEIGHTED : 0) | (cfg->trim ? OP_LINEFIT_TRIM : 0);
	r->name = names[r->opts];
	r->id = (uint32_t)r->opts + 1;
	*ret = r;
	return 0;
}

void op_reco_close(op_reco *r)
{
	free(r);
}

int op_reco_run(op_reco *r, op_reco_out *out, const op_reco_event *events, size_t n)
{
	for (size_t i = 0; i < n; i++)
		op_linefit(&out[i], &events[i], r->opts);
	return 0;
}

const char *op_reco_model_name(const op_reco *r)
{
	return r->name;
}

uint32_t op_reco_model_id(const op_reco *r)
{
	return r->id;
}
