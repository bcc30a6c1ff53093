/*
 * test_backend.c — where the network runs (kernels/backend.h), as an operator sees it:
 *  - "cpu" gives results bit-identical to the forward pass it wraps, for any batch split;
 *  - an unknown backend name is refused, naming the choices;
 *  - "auto" without a usable GPU runs on the CPU and says why (no plugin at <path>, a file that
 *    is not the plugin, no CUDA device); "cuda" in the same situation is an error with the reason;
 *  - with the real plugin (built when nvcc is found) the reason is the device probe's; where a
 *    GPU is present, "auto" takes it and its results agree with the CPU's (the bit-exact and
 *    bounded comparisons of every op are in tests/gpu/test_gpu_ops.c).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/modelfile.h"
#include "check.h"
#include "kernels/backend.h"
#include "sim_events.h"

enum { NE = 1500 };
static op_reco_event ev[NE];
static op_reco_out guess[NE];


static int same_bits(const op_reco_out *a, const op_reco_out *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(a[i].dir, b[i].dir, sizeof(a[i].dir)) || a[i].status != b[i].status ||
		    memcmp(&a[i].log10_energy_gev, &b[i].log10_energy_gev, 4) ||
		    memcmp(&a[i].track_score, &b[i].track_score, 4))
			return 0;
	return 1;
}


static op_backend *open_ok(const char *want, const op_model *m, char *why, size_t len)
{
	op_backend *b = NULL;
	int rc = op_backend_open(want, m, 2, 512, &b, why, len);
	CHECK(rc == 0 && b != NULL);
	return rc == 0 ? b : NULL;
}

int main(void)
{
	op_model m;
	char why[512];
	CHECK(op_model_load_default(&m, why, sizeof(why)) == 0);
	sim_events(ev, guess, NE, 11, 0.7, 400, 50); /* some too short for LineFit */
	static op_reco_out ref[NE], got[NE];
	op_model_ws *ws[2] = {op_model_ws_new(), op_model_ws_new()};
	CHECK(op_model_run(&m, ws, 2, ev, guess, ref, NE) == 0);
	op_model_ws_free(ws[0]);
	op_model_ws_free(ws[1]);
	int skipped = 0;
	for (int e = 0; e < NE; e++)
		skipped += isnan(ref[e].dir[0]);
	CHECK(skipped >= NE / 50); /* the short events are there, and skipped */

	/* cpu: the same bits, whatever the batches */
	op_backend *b = open_ok("cpu", &m, why, sizeof(why));
	if (b) {
		CHECK(op_backend_kind(b) == OP_BACKEND_CPU);
		CHECK(strncmp(op_backend_describe(b), "cpu/", 4) == 0);
		for (size_t e = 0; e < NE; e += 512)
			CHECK(op_backend_run(b, ev + e, guess + e, got + e, NE - e < 512 ? NE - e : 512) == 0);
		CHECK(same_bits(ref, got, NE));
		CHECK(op_backend_fault(b) == NULL);
		op_backend_close(b);
	}

	/* an unknown name */
	b = NULL;
	CHECK(op_backend_open("gpu", &m, 1, 64, &b, why, sizeof(why)) == -EINVAL && b == NULL);
	CHECK(strstr(why, "'gpu'") && strstr(why, "auto, cpu or cuda"));

	/* no plugin where it is looked for */
	setenv("OUTPOST_CUDA_PLUGIN", "/nonexistent/liboutpost-cuda.so", 1);
	b = open_ok("auto", &m, why, sizeof(why));
	if (b) {
		CHECK(op_backend_kind(b) == OP_BACKEND_CPU);
		CHECK(strstr(why, "the CPU") && strstr(why, "no CUDA plugin at /nonexistent/liboutpost-cuda.so"));
		CHECK(op_backend_run(b, ev, guess, got, NE) == 0 && same_bits(ref, got, NE));
		op_backend_close(b);
	}
	b = NULL;
	CHECK(op_backend_open("cuda", &m, 1, 64, &b, why, sizeof(why)) == -ENODEV && b == NULL);
	CHECK(strstr(why, "backend cuda") && strstr(why, "no CUDA plugin"));

	/* a file that is not the plugin */
	const char *libm = "/lib/x86_64-linux-gnu/libm.so.6";
#if defined(__aarch64__)
	libm = "/lib/aarch64-linux-gnu/libm.so.6";
#endif
	setenv("OUTPOST_CUDA_PLUGIN", libm, 1);
	b = open_ok("auto", &m, why, sizeof(why));
	if (b) {
		CHECK(op_backend_kind(b) == OP_BACKEND_CPU);
		CHECK(strstr(why, "is not this build's CUDA plugin") != NULL);
		op_backend_close(b);
	}

	/* the real plugin, when this build has one */
	const char *plugin = getenv("OUTPOST_TEST_CUDA_PLUGIN");
	if (plugin && *plugin) {
		setenv("OUTPOST_CUDA_PLUGIN", plugin, 1);
		op_gpu_info info;
		int gpu = op_backend_probe_cuda(&info) == 0;
		fprintf(stderr, "test_backend: CUDA probe: %s%s%s\n", gpu ? info.name : "", gpu ? ": " : "", info.why);
		b = open_ok("auto", &m, why, sizeof(why));
		if (b && !gpu) {
			CHECK(op_backend_kind(b) == OP_BACKEND_CPU);
			CHECK(strstr(why, "the CPU: ") && strstr(why, info.why));
			op_backend_close(b);
			op_backend *c = NULL;
			CHECK(op_backend_open("cuda", &m, 1, 64, &c, why, sizeof(why)) == -ENODEV && c == NULL);
			CHECK(strstr(why, "backend cuda: ") && strstr(why, info.why));
		} else if (b) {
			CHECK(op_backend_kind(b) == OP_BACKEND_CUDA);
			for (size_t e = 0; e < NE; e += 512)
				CHECK(op_backend_run(b, ev + e, guess + e, got + e, NE - e < 512 ? NE - e : 512) == 0);
			double worst = 0;
			int status_same = 1;
			for (int e = 0; e < NE; e++) {
				status_same &= ref[e].status == got[e].status;
				if (!isnan(ref[e].dir[0])) {
					double a = sim_angle(ref[e].dir, got[e].dir);
					worst = a > worst ? a : worst;
				}
			}
			fprintf(stderr, "test_backend: %s; worst direction difference %.3g rad\n", op_backend_describe(b),
				worst);
			CHECK(status_same);
			CHECK(worst < 1e-3);
			CHECK(op_backend_fault(b) == NULL);
			op_backend_close(b);
		}
	}
	/* the whole reconstruction (first guesses on several threads, then the network) gives the
	 * same bits whatever the thread count */
	{
		op_reco_out r1[NE], r3[NE];
		op_reco *a = NULL, *c = NULL;
		op_model *ma = calloc(1, sizeof(*ma)), *mc = calloc(1, sizeof(*mc));
		CHECK(op_model_load_default(ma, why, sizeof(why)) == 0 && op_model_load_default(mc, why, sizeof(why)) == 0);
		op_reco_config ca = {.kind = "fp4", .model = ma, .threads = 1, .backend = "cpu", .max_events = NE};
		op_reco_config cc = {.kind = "fp4", .model = mc, .threads = 3, .backend = "cpu", .max_events = NE};
		CHECK(op_reco_open(&ca, &a) == 0 && op_reco_open(&cc, &c) == 0);
		if (a && c) {
			CHECK(op_reco_run(a, r1, ev, NE) == 0 && op_reco_run(c, r3, ev, NE) == 0);
			CHECK(same_bits(r1, r3, NE));
			int guess_same = 1;
			for (int e = 0; e < NE; e++)
				guess_same &= !memcmp(r1[e].guess_dir, r3[e].guess_dir, sizeof(r1[e].guess_dir));
			CHECK(guess_same);
		}
		op_reco_close(a);
		op_reco_close(c);
	}
	op_model_free(&m);
	return check_finish("test_backend");
}
