/*
 * check.h — the smallest test harness that tells you what failed and where.
 * CHECK(cond) records a failure with file:line and the expression and goes on;
 * CHECK_EQ_U64 / CHECK_NEAR print both values. check_finish() returns the exit code
 * (0 pass, 1 fail). A test that skips must return 77 itself, never pass.
 */
#ifndef OP_TEST_CHECK_H
#define OP_TEST_CHECK_H
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

static int check_failures;
static int check_count;

#define CHECK(c)                                                                     \
	do {                                                                         \
		check_count++;                                                       \
		if (!(c)) {                                                          \
			check_failures++;                                            \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
		}                                                                    \
	} while (0)

#define CHECK_EQ_U64(a, b)                                                           \
	do {                                                                         \
		uint64_t ca_ = (uint64_t)(a), cb_ = (uint64_t)(b);                    \
		check_count++;                                                       \
		if (ca_ != cb_) {                                                    \
			check_failures++;                                            \
			fprintf(stderr, "%s:%d: %s == %s failed: %" PRIu64 " != %" PRIu64 "\n", \
				__FILE__, __LINE__, #a, #b, ca_, cb_);               \
		}                                                                    \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
	do {                                                                         \
		double ca_ = (double)(a), cb_ = (double)(b);                          \
		check_count++;                                                       \
		if (!(fabs(ca_ - cb_) <= (tol))) {                                   \
			check_failures++;                                            \
			fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", \
				__FILE__, __LINE__, #a, #b, (double)(tol), ca_, cb_); \
		}                                                                    \
	} while (0)

static inline int check_finish(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : (check_count ? 0 : 1); /* no checks ran = failure */
}
#endif
