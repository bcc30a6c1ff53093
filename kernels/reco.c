/*
 * reco.c — the reconstruction registry behind op_reco_open (see reco.h): LineFit in its four
 * variants (model ids 1–4) and the event network (model id from its file, 16 and up), which
 * starts from LineFit on the event's HLC pulses (op_seed_guess).
 */
#include "kernels/reco.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/linefit.h"
#include "kernels/model.h"

struct op_reco {
	int opts;
	const char *name;
	uint32_t id;
	op_model *model; /* fp4 only */
	op_backend *be;  /* fp4 only */
	op_reco_out *guess;
	size_t guess_cap;
	float *buf;
	size_t buf_cap;
};

int op_reco_open(const op_reco_config *cfg, op_reco **ret)
{
	op_reco *r;

	if (cfg && cfg->kind && !strcmp(cfg->kind, "fp4")) {
		if (!cfg->model)
			return -EINVAL;
		r = calloc(1, sizeof(*r));
		if (!r) {
			op_model_free(cfg->model);
			free(cfg->model);
			return -ENOMEM;
		}
		r->model = cfg->model;
		r->name = r->model->name;
		r->id = r->model->id;
		char why[512];
		int rc = op_backend_open(cfg->backend ? cfg->backend : "auto", r->model, cfg->threads,
					 cfg->max_events ? cfg->max_events : 4096, &r->be, why, sizeof(why));
		if (cfg->why && cfg->whylen)
			snprintf(cfg->why, cfg->whylen, "%s", why);
		if (rc < 0) {
			op_reco_close(r);
			return rc;
		}
		*ret = r;
		return 0;
	}
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
	if (!r)
		return;
	op_backend_close(r->be);
	if (r->model) {
		op_model_free(r->model);
		free(r->model);
	}
	free(r->guess);
	free(r->buf);
	free(r);
}

int op_reco_run(op_reco *r, op_reco_out *out, const op_reco_event *events, size_t n)
{
	if (!r->model) {
		for (size_t i = 0; i < n; i++) {
			op_linefit(&out[i], &events[i], r->opts);
			memcpy(out[i].guess_dir, out[i].dir, sizeof(out[i].dir));
		}
		return 0;
	}
	if (n > r->guess_cap) {
		op_reco_out *g = realloc(r->guess, n * sizeof(*g));
		if (!g)
			return -ENOMEM;
		r->guess = g;
		r->guess_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		if ((size_t)events[i].n * 5 > r->buf_cap) {
			float *b = realloc(r->buf, (size_t)events[i].n * 5 * sizeof(float));
			if (!b)
				return -ENOMEM;
			r->buf = b;
			r->buf_cap = (size_t)events[i].n * 5;
		}
		op_seed_guess(&r->guess[i], &events[i], r->buf);
	}
	int rc = op_backend_run(r->be, events, r->guess, out, n);
	for (size_t i = 0; i < n; i++)
		memcpy(out[i].guess_dir, r->guess[i].dir, sizeof(out[i].guess_dir));
	return rc;
}

struct op_backend *op_reco_backend(op_reco *r)
{
	return r->be;
}

const char *op_reco_model_name(const op_reco *r)
{
	return r->name;
}

uint32_t op_reco_model_id(const op_reco *r)
{
	return r->id;
}
