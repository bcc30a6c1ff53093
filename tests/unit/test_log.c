/*
 * test_log.c — a flood from one call site costs `burst` lines per window and one line saying
 * how many were suppressed; another call site is not silenced by it; structured fields reach
 * the line; a flood that stops is counted all the same; an error is never held back because
 * the table of sites is full.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/log.h"
#include "unit/check.h"

static void flood(int i)
{
	op_err("bad message %d from the detector", i);
}

static void stopped(int i)
{
	op_warn("bad answer %d from north", i);
}

int main(void)
{
	char path[] = "/tmp/op-test-log-XXXXXX", line[512];
	int fd = mkstemp(path);
	int saved = dup(2);
	CHECK(fd >= 0 && saved >= 0);
	CHECK(freopen(path, "w", stderr) != NULL);
	setenv("OUTPOST_LOG_STDERR", "1", 1);
	op_log_init("ingest", "info");
	op_log_set_rate(5, 300000000ull); /* 5 lines per 0.3 s per call site */

	for (int i = 0; i < 1000; i++)
		flood(i);
	op_warn("another site still speaks");
	usleep(350000);
	flood(1000);
	op_logf(OP_LOG_ERR, "STREAM=7\nSEQUENCE=42", "dropped an event");
	fflush(stderr);
	dup2(saved, 2); /* check failures must be seen */

	FILE *f = fopen(path, "r");
	int n = 0, floods = 0, note = 0, other = 0, fields = 0;
	while (f && fgets(line, sizeof(line), f)) {
		n++;
		floods += strstr(line, "bad message") != NULL;
		note += strstr(line, "995 more messages like the next one were suppressed") != NULL;
		other += strstr(line, "another site still speaks") != NULL;
		fields += strstr(line, "dropped an event {STREAM=7 SEQUENCE=42}") != NULL;
	}
	if (f)
		fclose(f);
	unlink(path);
	/* 5 from the flood, the other site, the note, the first line of the new window, fields */
	CHECK_EQ_U64((uint64_t)floods, 6);
	CHECK_EQ_U64((uint64_t)note, 1);
	CHECK_EQ_U64((uint64_t)other, 1);
	CHECK_EQ_U64((uint64_t)fields, 1);
	CHECK_EQ_U64((uint64_t)n, 9);

	/* A flood that stops: counted by op_log_flush once its window is over (before, only by the
	 * site's next line, which may never come). Then a full table of sites (600 more, by key):
	 * the sites beyond it share one slot, which a chatty one exhausts; an error from yet
	 * another still goes out (before, with 64 slots, it was held back for good). */
	char path2[] = "/tmp/op-test-log-XXXXXX";
	int fd2 = mkstemp(path2);
	CHECK(fd2 >= 0 && freopen(path2, "w", stderr) != NULL);
	op_log_set_rate(5, 300000000ull);
	for (int i = 0; i < 100; i++)
		stopped(i);
	usleep(350000);
	op_log_flush();
	static char keys[600][2];
	for (int i = 0; i < 600; i++)
		op_logk(OP_LOG_INFO, keys[i], NULL, "site %d", i);
	op_logk(OP_LOG_ERR, "reload", NULL, "reload failed: %s", "bad key");
	fflush(stderr);
	dup2(saved, 2);
	f = fopen(path2, "r");
	int counted = 0, reload = 0, sites = 0;
	while (f && fgets(line, sizeof(line), f)) {
		counted += strstr(line, "95 more messages like \"bad answer %d from north\" were suppressed") != NULL;
		reload += strstr(line, "reload failed: bad key") != NULL;
		sites += strstr(line, "site ") != NULL;
	}
	if (f)
		fclose(f);
	unlink(path2);
	printf("a stopped flood counted: %d; the error past a full table: %d; %d of 600 sites' lines\n", counted,
	       reload, sites);
	CHECK_EQ_U64((uint64_t)counted, 1);
	CHECK_EQ_U64((uint64_t)reload, 1);
	CHECK(sites < 600); /* the table did fill: the shared slot held some of them back */
	return check_finish("test_log");
}
