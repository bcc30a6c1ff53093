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
	int charge_weighted;
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
	r->charge_weighted = cfg->charge_weighted != 0;
	r->name = r->charge_weighted ? "linefit-qw-v1" : "linefit-v1";
	r->id = r->charge_weighted ? 2 : 1;
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
		op_linefit(&out[i], &events[i], r->charge_weighted);
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
