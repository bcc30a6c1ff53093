/*
 * backend.c — the CPU backend, and the loader and host half of the CUDA backend (backend.h).
 *
 * The host half runs a batch through the plugin's two slots: the batch is cut into pieces of at
 * most the slot's size; piece i's features are computed on the CPU threads straight into slot
 * i%2's pinned buffer while the GPU runs piece i−1 from the other slot.
 */
#include "kernels/backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/pool.h"

#define MAX_THREADS 64
#define GPU_PIECE_EVENTS 8192u /* events per slot: big enough to fill the GPU, small enough to overlap */

struct op_backend {
	int kind;
	const op_model *m;
	int threads;
	op_model_ws *ws[MAX_THREADS];
	/* CUDA */
	void *dl;
	const op_cuda_plugin *pl;
	void *h;
	uint32_t piece;
	int faulted;
	char fault[320];
	char desc[1024];
};

static int plugin_path(char *buf, size_t len)
{
	const char *env = getenv("OUTPOST_CUDA_PLUGIN");
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -errno;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	snprintf(buf, len, "%s/../lib/outpost/%s", exe, OP_CUDA_PLUGIN_FILE);
	return 0;
}

static const op_cuda_plugin *linked_plugin;

void op_backend_use_plugin(const op_cuda_plugin *pl)
{
	linked_plugin = pl;
}

/* dlopen the plugin and check it is ours and of this build. 0, or <0 with why. */
static int plugin_load(void **dl, const op_cuda_plugin **pl, char *why, size_t whylen)
{
	if (linked_plugin) {
		*pl = linked_plugin;
		return 0;
	}
	char path[PATH_MAX + 64];
	if (plugin_path(path, sizeof(path)) < 0) {
		snprintf(why, whylen, "cannot locate the CUDA plugin (/proc/self/exe unreadable)");
		return -ENOENT;
	}
	if (access(path, R_OK) != 0) {
		snprintf(why, whylen, "no CUDA plugin at %.200s (built without CUDA, or not installed)", path);
		return -ENOENT;
	}
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*dl) {
		snprintf(why, whylen, "cannot load the CUDA plugin: %.240s", dlerror());
		return -ENOENT;
	}
	op_cuda_plugin_fn fn = (op_cuda_plugin_fn)dlsym(*dl, OP_CUDA_PLUGIN_SYMBOL);
	*pl = fn ? fn() : NULL;
	if (!*pl || (*pl)->abi != OP_CUDA_PLUGIN_ABI || (*pl)->model_size != sizeof(op_model)) {
		snprintf(why, whylen, "%.200s is not this build's CUDA plugin (%s)", path,
			 !fn ? "no " OP_CUDA_PLUGIN_SYMBOL : "ABI or model layout differs");
		dlclose(*dl);
		*dl = NULL;
		return -ENOENT;
	}
	return 0;
}

int op_backend_probe_cuda(op_gpu_info *info)
{
	void *dl = NULL;
	const op_cuda_plugin *pl = NULL;
	memset(info, 0, sizeof(*info));
	int rc = plugin_load(&dl, &pl, info->why, sizeof(info->why));
	if (rc < 0)
		return rc;
	rc = pl->probe(info);
	/* the plugin stays loaded: unloading CUDA's runtime mid-process is not worth the risk */
	return rc;
}

static int cpu_ws(op_backend *b)
{
	for (int i = 0; i < b->threads; i++)
		if (!b->ws[i] && !(b->ws[i] = op_model_ws_new()))
			return -ENOMEM;
	return 0;
}

static const char *cpu_desc(op_backend *b, char *buf, size_t len)
{
	snprintf(buf, len, "cpu/%s, %d thread%s", op_fp4_rung_name(op_fp4_rung_best()), b->threads,
		 b->threads == 1 ? "" : "s");
	return buf;
}

int op_backend_open(const char *want, const op_model *m, int threads, uint32_t max_events, op_backend **ret,
		    char *why, size_t whylen)
{
	int w_auto = !strcmp(want, "auto"), w_cpu = !strcmp(want, "cpu"), w_cuda = !strcmp(want, "cuda");
	if (!w_auto && !w_cpu && !w_cuda) {
		snprintf(why, whylen, "unknown backend '%s' (auto, cpu or cuda)", want);
		return -EINVAL;
	}
	op_backend *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	b->m = m;
	b->threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
	if (cpu_ws(b) < 0) {
		op_backend_close(b);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	b->kind = OP_BACKEND_CPU;
	if (w_cpu) {
		snprintf(why, whylen, "the CPU, as configured");
		*ret = b;
		return 0;
	}
	char gwhy[320];
	op_gpu_info info;
	int rc = plugin_load(&b->dl, &b->pl, gwhy, sizeof(gwhy));
	if (rc == 0) {
		rc = b->pl->probe(&info);
		if (rc < 0)
			snprintf(gwhy, sizeof(gwhy), "%s", info.why);
	}
	if (rc == 0) {
		b->piece = max_events < GPU_PIECE_EVENTS ? (max_events ? max_events : 1) : GPU_PIECE_EVENTS;
		b->h = b->pl->open(m, b->piece, b->piece * m->max_pulses, gwhy, sizeof(gwhy));
		rc = b->h ? 0 : -ENODEV;
	}
	if (rc < 0) {
		if (w_cuda) {
			snprintf(why, whylen, "backend cuda: %s", gwhy);
			op_backend_close(b);
			return -ENODEV;
		}
		snprintf(why, whylen, "the CPU: %s", gwhy);
		*ret = b;
		return 0;
	}
	b->kind = OP_BACKEND_CUDA;
	snprintf(why, whylen, "the GPU: %s", info.why);
	*ret = b;
	return 0;
}

void op_backend_close(op_backend *b)
{
	if (!b)
		return;
	if (b->h)
		b->pl->close(b->h);
	/* b->dl stays mapped (see op_backend_probe_cuda) */
	for (int i = 0; i < MAX_THREADS; i++)
		op_model_ws_free(b->ws[i]);
	free(b);
}

int op_backend_kind(const op_backend *b)
{
	return b->kind;
}

const char *op_backend_fault(const op_backend *b)
{
	return b->faulted ? b->fault : NULL;
}

const char *op_backend_describe(op_backend *b)
{
	if (b->kind == OP_BACKEND_CUDA && !b->faulted) {
		int o = snprintf(b->desc, sizeof(b->desc), "cuda: ");
		b->pl->describe(b->h, b->desc + o, sizeof(b->desc) - (size_t)o);
		return b->desc;
	}
	return cpu_desc(b, b->desc, sizeof(b->desc));
}

/* ---- the GPU's host half ---------------------------------------------------------------- */

typedef struct prep_job {
	const op_model *m;
	op_model_ws *ws;
	const op_reco_event *ev;
	const op_reco_out *g;
	size_t n;
	float *feat, *evf;
	uint32_t *off;
	size_t ldev;
	uint32_t row0, rows;
	long got;
} prep_job;

static void *prep_main(void *p)
{
	prep_job *j = p;
	j->got = op_model_inputs(j->m, j->ws, j->ev, j->g, j->n, j->feat, j->off, j->evf, j->ldev, j->row0);
	return NULL;
}

/* Features of events [0, n) into slot si, on the CPU threads. 0, or <0 with why. */
static int gpu_prepare(op_backend *b, int si, const op_reco_event *ev, const op_reco_out *g, size_t n, uint32_t *T,
		       uint32_t **offp, char *why, size_t whylen)
{
	prep_job jobs[MAX_THREADS];
	int nt = b->threads < (int)n ? b->threads : (int)n;
	uint32_t rows = 0;
	for (size_t i = 0; i < n; i++)
		rows += op_model_event_rows(b->m, &ev[i], &g[i]);
	float *feat, *evf;
	uint32_t *off;
	size_t ldev;
	if (b->pl->inputs(b->h, si, rows, (uint32_t)n, &feat, &off, &evf, &ldev) < 0) {
		snprintf(why, whylen, "a batch of %zu events, %u rows does not fit the GPU's buffers", n, rows);
		return -EINVAL;
	}
	size_t per = (n + (size_t)nt - 1) / (size_t)nt;
	uint32_t row = 0;
	int nj = 0;
	for (size_t lo = 0; lo < n; lo += per, nj++) {
		size_t cnt = lo + per < n ? per : n - lo;
		jobs[nj] = (prep_job){b->m, b->ws[nj], ev + lo, g + lo, cnt, feat, evf + lo * ldev, off + lo, ldev, row,
				      0, 0};
		for (size_t i = lo; i < lo + cnt; i++)
			row += op_model_event_rows(b->m, &ev[i], &g[i]);
		jobs[nj].rows = row - jobs[nj].row0;
	}
	op_parallel(nj, prep_main, jobs, sizeof(prep_job)); /* job j writes off[lo_j .. lo_j + cnt_j) */
	off[n] = rows;
	for (int i = 0; i < nj; i++)
		if (jobs[i].got != (long)jobs[i].rows) {
			snprintf(why, whylen, "%s", jobs[i].got < 0 ? "out of memory preparing features"
								   : "feature rows differ from their count");
			return jobs[i].got < 0 ? -ENOMEM : -EINVAL;
		}
	*T = rows;
	*offp = off;
	return 0;
}

typedef struct piece {
	size_t lo, cnt;
	uint32_t *off;
	int busy;
} piece;

/* Collect slot si's piece into out. 0, or -EIO (the GPU failed). */
static int gpu_collect(op_backend *b, piece *p, int si, const op_reco_out *guesses, op_reco_out *out, char *why,
		       size_t whylen)
{
	const float *raw;
	p->busy = 0;
	if (b->pl->wait(b->h, si, &raw, why, whylen) < 0)
		return -EIO;
	op_model_outputs(b->m, guesses + p->lo, p->off, raw, OP_MODEL_OUTPUTS, out + p->lo, p->cnt);
	return 0;
}

/*
 * 0 with every result in out; -EIO when the GPU failed (why says how); another negative errno
 * when the batch could not be given to it (then the CPU takes this batch only).
 */
static int gpu_run(op_backend *b, const op_reco_event *events, const op_reco_out *guesses, op_reco_out *out,
		   size_t n, char *why, size_t whylen)
{
	piece pc[OP_CUDA_SLOTS] = {{0}};
	size_t next = 0;
	int si = 0, rc = 0;
	while (next < n && rc == 0) {
		/* the slot we fill must be free: collect its last piece first */
		if (pc[si].busy && (rc = gpu_collect(b, &pc[si], si, guesses, out, why, whylen)) < 0)
			break;
		size_t c = n - next < b->piece ? n - next : b->piece;
		uint32_t T;
		if ((rc = gpu_prepare(b, si, events + next, guesses + next, c, &T, &pc[si].off, why, whylen)) < 0)
			break;
		if ((rc = b->pl->submit(b->h, si, T, (uint32_t)c, why, whylen)) < 0) {
			if (rc != -EINVAL && rc != -ENOSPC)
				rc = -EIO; /* the device failed; a batch it cannot take is the CPU's, once */
			break;
		}
		pc[si].lo = next, pc[si].cnt = c, pc[si].busy = 1;
		next += c;
		si = (si + 1) % OP_CUDA_SLOTS;
	}
	/* collect what is still on the way, oldest first (also after a failure: a slot is never
	 * left busy) */
	for (int k = 0; k < OP_CUDA_SLOTS; k++) {
		int s = (si + k) % OP_CUDA_SLOTS;
		char w2[256];
		if (pc[s].busy && gpu_collect(b, &pc[s], s, guesses, out, w2, sizeof(w2)) < 0 && rc == 0) {
			rc = -EIO;
			snprintf(why, whylen, "%s", w2);
		}
	}
	return rc;
}

int op_backend_run(op_backend *b, const op_reco_event *events, const op_reco_out *guesses, op_reco_out *out,
		   size_t n)
{
	if (b->kind == OP_BACKEND_CUDA && !b->faulted && n) {
		char why[256];
		int rc = gpu_run(b, events, guesses, out, n, why, sizeof(why));
		if (rc == 0)
			return 0;
		if (rc == -EIO) {
			snprintf(b->fault, sizeof(b->fault), "the GPU failed (%s); the CPU runs the model from now on",
				 why);
			b->faulted = 1;
		}
		/* the whole batch again, on the CPU: nothing the GPU half-did is kept */
	}
	return op_model_run(b->m, b->ws, b->threads, events, guesses, out, n);
}
