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
#include "kernels/pool.h"
#include "kernels/model.h"

struct op_reco {
	int opts;
	const char *name;
	uint32_t id;
	op_model *model; /* fp4 only */
	op_backend *be;  /* fp4 only */
	op_reco_out *guess;
	size_t guess_cap;
	int threads;           /* fp4: the first guesses are computed on this many threads */
	float *buf[64];        /* per thread: LineFit's scratch */
	size_t buf_cap[64];
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
		r->threads = cfg->threads < 1 ? 1 : cfg->threads > 64 ? 64 : cfg->threads;
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
	r->opts = (cfg->charge_weighted ? OP_LINEFIT_CHARGE_WEIGHTED : 0) | (cfg->trim ? OP_LINEFIT_TRIM : 0);
	r->id = (uint32_t)r->opts + 1;
	r->name = op_reco_linefit_name(r->id);
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
	for (int i = 0; i < 64; i++)
		free(r->buf[i]);
	free(r);
}

typedef struct seed_job {
	op_reco *r;
	int t;
	const op_reco_event *ev;
	op_reco_out *g;
	size_t n;
	int rc;
} seed_job;

static void *seed_main(void *p)
{
	seed_job *j = p;
	op_reco *r = j->r;
	for (size_t i = 0; i < j->n; i++) {
		if ((size_t)j->ev[i].n * 5 > r->buf_cap[j->t]) {
			float *b = realloc(r->buf[j->t], (size_t)j->ev[i].n * 5 * sizeof(float));
			if (!b) {
				j->rc = -ENOMEM;
				return NULL;
			}
			r->buf[j->t] = b;
			r->buf_cap[j->t] = (size_t)j->ev[i].n * 5;
		}
		op_seed_guess(&j->g[i], &j->ev[i], r->buf[j->t]);
	}
	return NULL;
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
	/* the first guesses on the same threads as the network: serial, they would be the bound
	 * (one core seeds ~370,000 events/s; the network on a GPU does millions) */
	seed_job jobs[64];
	int nt = n < 64 ? 1 : r->threads; /* a handful of events is not worth waking a worker */
	size_t per = (n + (size_t)nt - 1) / (size_t)nt;
	int nj = 0;
	for (size_t lo = 0; lo < n; lo += per, nj++)
		jobs[nj] = (seed_job){r, nj, events + lo, r->guess + lo, lo + per < n ? per : n - lo, 0};
	op_parallel(nj, seed_main, jobs, sizeof(seed_job));
	for (int j = 0; j < nj; j++)
		if (jobs[j].rc < 0)
			return jobs[j].rc;
	int rc = op_backend_run(r->be, events, r->guess, out, n);
	for (size_t i = 0; i < n; i++)
		memcpy(out[i].guess_dir, r->guess[i].dir, sizeof(out[i].guess_dir));
	return rc;
}

struct op_backend *op_reco_backend(op_reco *r)
{
	return r->be;
}

const char *op_reco_linefit_name(uint32_t model_id)
{
	/* Model ids are stable: they are written into every result row (id = options + 1). */
	static const char *const names[4] = {"linefit-v1", "linefit-qw-v1", "linefit-trim-v1", "linefit-trim-qw-v1"};
	return model_id >= 1 && model_id <= 4 ? names[model_id - 1] : NULL;
}

const char *op_reco_model_name(const op_reco *r)
{
	return r->name;
}

uint32_t op_reco_model_id(const op_reco *r)
{
	return r->id;
}
