/*
 * test_log.c — a flood from one call site costs `burst` lines per window and one line saying
 * how many were suppressed; another call site is not silenced by it; structured fields reach
 * the line.
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
	return check_finish("test_log");
}
