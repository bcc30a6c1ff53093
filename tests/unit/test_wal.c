/*
 * test_wal.c — ingest's write-ahead log: a replay gives back exactly the events never freed,
 * counts what happened after the named report checkpoint, survives a record cut short by a
 * crash, and old files go once everything in them is freed (but not the last checkpoints).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/wal.h"
#include "unit/check.h"

typedef struct seen {
	int live, dead;
	uint64_t live_tags[64];
} seen;

static void on_event(void *ctx, const uint8_t *msg, size_t len, int live)
{
	seen *s = ctx;
	uint64_t tag = 0;
	memcpy(&tag, msg, len < 8 ? len : 8);
	if (live && s->live < 64)
		s->live_tags[s->live] = tag;
	s->live += live;
	s->dead += !live;
}

static void event(op_wal *w, uint64_t serial)
{
	uint8_t buf[8 + 40];
	memset(buf, 0xab, sizeof(buf));
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(serial >> (8 * i));
	uint64_t tag = serial * 1000; /* the "message" starts with a tag we can recognise */
	memcpy(buf + 8, &tag, 8);
	op_wal_event(w, buf, sizeof(buf));
}

static int count_files(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += !strncmp(de->d_name, "wal-", 4);
	if (d)
		closedir(d);
	return n;
}

/* The test links with --wrap=malloc (tests/ingest.cmake): the next fail_mallocs allocations
 * fail, as they would on a machine out of memory. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static int fail_mallocs;
void *__wrap_malloc(size_t n)
{
	if (fail_mallocs > 0) {
		fail_mallocs--;
		return NULL;
	}
	return __real_malloc(n);
}

/* Descriptors of this process still open on a deleted log file (its pages stay taken). */
static int open_deleted_logs(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char link[64], target[512];
		snprintf(link, sizeof(link), "/proc/self/fd/%.20s", de->d_name);
		ssize_t len = readlink(link, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = 0;
			n += strstr(target, "/wal-") && strstr(target, "(deleted)");
		}
	}
	if (d)
		closedir(d);
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

/* The bytes on disk of the log's files but the two newest (names sort by their number). */
static uint64_t disk_pinned(const char *dir)
{
	static char names[256][64];
	int n = 0;
	uint64_t sum = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) && n < 256)
		if (!strncmp(de->d_name, "wal-", 4))
			snprintf(names[n++], sizeof(names[0]), "%.63s", de->d_name);
	if (d)
		closedir(d);
	qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
	for (int i = 0; i + 2 < n; i++) {
		char path[400];
		struct stat st;
		snprintf(path, sizeof(path), "%.300s/%.63s", dir, names[i]);
		if (stat(path, &st) == 0)
			sum += (uint64_t)st.st_size;
	}
	return sum;
}

int main(void)
{
	char dir[] = "/tmp/op-test-wal-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	op_wal *w = NULL;
	op_wal_replay_result r;
	seen s;

	/* 10 events; 1..3 acked and 4 dropped, then report 1; then 5 acked, events 11..12, report 2
	 * (never received by the supervisor), then 6 acked */
	CHECK(op_wal_open(dir, 111, 1u << 20, &w) == 0);
	for (uint64_t i = 1; i <= 10; i++)
		event(w, i);
	op_wal_acked(w, 1), op_wal_acked(w, 2), op_wal_acked(w, 3), op_wal_dropped(w, 4);
	op_wal_report(w, 1);
	CHECK(op_wal_flush(w, 5) == 0);
	op_wal_acked(w, 5);
	event(w, 11), event(w, 12);
	op_wal_report(w, 2);
	op_wal_acked(w, 6);
	CHECK(op_wal_flush(w, 7) == 0);
	op_wal_close(w, 0); /* the process dies: files stay */

	memset(&s, 0, sizeof(s));
	CHECK(op_wal_replay(dir, 111, 1, on_event, &s, &r) == 0);
	CHECK(r.found == 1 && r.files >= 1);
	CHECK_EQ_U64(r.events, 12);
	CHECK_EQ_U64(r.freed, 6);
	CHECK(s.live == 6 && s.dead == 6);
	CHECK(s.live_tags[0] == 7000 && s.live_tags[5] == 12000); /* 7..12, in order */
	/* after report 1 (the last the supervisor received): 2 accepted, 2 acked, 0 dropped */
	CHECK_EQ_U64(r.after_accepted, 2);
	CHECK_EQ_U64(r.after_acked, 2);
	CHECK_EQ_U64(r.after_dropped, 0);
	/* against report 2: nothing accepted after it, one ack */
	CHECK(op_wal_replay(dir, 111, 2, NULL, NULL, &r) == 0 && r.found && r.after_accepted == 0 && r.after_acked == 1);
	/* a report number the log never saw: not found (the caller counts the loss instead) */
	CHECK(op_wal_replay(dir, 111, 9, NULL, NULL, &r) == 0 && !r.found && r.files >= 1);
	/* an incarnation with no files at all: said apart from a log without its checkpoint */
	CHECK(op_wal_replay(dir, 112, 1, NULL, NULL, &r) == 0 && !r.found && r.files == 0);
	/* before the first report: everything counts */
	CHECK(op_wal_replay(dir, 111, 0, NULL, NULL, &r) == 0 && r.found && r.after_accepted == 12 &&
	      r.after_acked == 5 && r.after_dropped == 1);
	/* another incarnation's files are not this one's */
	CHECK(op_wal_replay(dir, 222, 0, NULL, NULL, &r) == 0 && !r.found && r.events == 0);

	/* a record cut short by the crash: the replay stops there, keeps what came before */
	char path[256];
	snprintf(path, sizeof(path), "%s/wal-%020llu-%010u.log", dir, 111ull, 0u);
	struct stat st;
	CHECK(stat(path, &st) == 0);
	CHECK(truncate(path, st.st_size - 3) == 0); /* the last record (ack of 6) is torn */
	memset(&s, 0, sizeof(s));
	CHECK(op_wal_replay(dir, 111, 1, on_event, &s, &r) == 0);
	CHECK(r.torn == 1 && r.found && s.live == 7 && r.after_acked == 1);

	/* the successor takes over: its own log, the old files removed */
	CHECK(op_wal_open(dir, 333, 50, &w) == 0); /* tiny files: rotates at every flush */
	op_wal_remove_others(dir, 333);
	CHECK(count_files(dir) == 1);
	op_wal_report(w, 1); /* as ingest does: its first report at once */
	for (uint64_t i = 1; i <= 8; i++) {
		event(w, i);
		CHECK(op_wal_flush(w, 1) == 0);
	}
	int before = count_files(dir);
	for (uint64_t i = 1; i <= 8; i++)
		op_wal_acked(w, i);
	CHECK(op_wal_flush(w, 9) == 0);
	CHECK(count_files(dir) == before + 1); /* freed, but the only checkpoint is in the first */
	op_wal_report(w, 2);
	CHECK(op_wal_flush(w, 9) == 0);
	op_wal_report(w, 3);
	CHECK(op_wal_flush(w, 9) == 0); /* everything freed: only the newest two files stay */
	CHECK(before >= 8 && count_files(dir) <= 2);
	CHECK(op_wal_pinned_bytes(w) == 0);
	/* one event never freed keeps every file written after it: counted, so that ingest stops
	 * reading at ingest.window_bytes of them (the log is in memory, on a tmpfs) */
	event(w, 9);
	CHECK(op_wal_flush(w, 9) == 0);
	op_wal_report(w, 4); /* the file of report 2, freed in full, may go now */
	CHECK(op_wal_flush(w, 9) == 0);
	op_wal_report(w, 5);
	CHECK(op_wal_flush(w, 9) == 0);
	uint64_t pinned = 0;
	for (uint64_t i = 10; i <= 30; i++) {
		event(w, i);
		op_wal_acked(w, i);
		CHECK(op_wal_flush(w, 9) == 0); /* the tail stays at 9 */
		CHECK(op_wal_pinned_bytes(w) == disk_pinned(dir) && (op_wal_pinned_bytes(w) > pinned || i < 12));
		pinned = op_wal_pinned_bytes(w);
	}
	CHECK(count_files(dir) >= 20 && pinned >= 18 * 50);
	op_wal_acked(w, 9);
	op_wal_report(w, 6);
	CHECK(op_wal_flush(w, 31) == 0);
	op_wal_report(w, 7);
	CHECK(op_wal_flush(w, 31) == 0); /* settled: the files go, nothing pinned */
	CHECK(count_files(dir) <= 2 && op_wal_pinned_bytes(w) == 0);
	memset(&s, 0, sizeof(s));
	op_wal_close(w, 0);
	CHECK(op_wal_replay(dir, 333, 0, on_event, &s, &r) == 0 && s.live == 0);
	CHECK(op_wal_open(dir, 444, 1u << 20, &w) == 0);
	op_wal_close(w, 1); /* a clean stop leaves nothing of its own */
	CHECK(count_files(dir) == 2);
	/* by directory and incarnation, so that an ingest whose own log could not be opened still
	 * removes the predecessor's it took over (else the next outpostd takes it over again) */
	op_wal_remove_others(dir, 444);
	CHECK(count_files(dir) == 0);

	/* A whole file written between two reports: the file with the last checkpoint stays,
	 * though every event in it is freed, and a successor counts from it (before, only the
	 * newest two files were kept: the checkpoint went, and the successor counted what it
	 * could not find as lost) */
	CHECK(op_wal_open(dir, 777, 50, &w) == 0);
	op_wal_report(w, 1);
	CHECK(op_wal_flush(w, 1) == 0);
	for (uint64_t i = 1; i <= 6; i++) {
		event(w, i);
		CHECK(op_wal_flush(w, 1) == 0);
	}
	for (uint64_t i = 1; i <= 6; i++)
		op_wal_acked(w, i);
	CHECK(op_wal_flush(w, 7) == 0);
	/* kept for its checkpoint, not for an event held: not counted against ingest.window_bytes,
	 * where it would stop ingest reading with a message about an event held long */
	CHECK(op_wal_pinned_bytes(w) == 0);
	op_wal_close(w, 0);
	CHECK(op_wal_replay(dir, 777, 1, NULL, NULL, &r) == 0);
	CHECK(r.found && r.after_accepted == 6 && r.after_acked == 6);
	op_wal_remove_others(dir, 0);
	CHECK(count_files(dir) == 0);

	/* No memory for the frees' record at a flush: the log is given up (an error, not a write
	 * past its file list), and its file, deleted, is closed as well: an unlinked file held open
	 * would keep its pages on the tmpfs for the life of the process */
	CHECK(op_wal_open(dir, 888, 1u << 20, &w) == 0);
	for (uint64_t i = 1; i <= 3; i++)
		event(w, i);
	CHECK(op_wal_flush(w, 1) == 0);
	for (uint64_t i = 1; i <= 3; i++)
		op_wal_acked(w, i);
	fail_mallocs = 1;
	int ferr = op_wal_flush(w, 4);
	fail_mallocs = 0;
	CHECK(ferr == -ENOMEM);
	CHECK(count_files(dir) == 0);
	CHECK(open_deleted_logs() == 0);
	CHECK(op_wal_flush(w, 4) < 0 && !op_wal_ok(w));
	op_wal_close(w, 0);
	/* a write that fails (here: a file-size limit, as a full tmpfs would) removes the log:
	 * a successor then finds none and counts what was held as lost, rather than trust a hole */
	struct rlimit old_lim, lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
	signal(SIGXFSZ, SIG_IGN);
	CHECK(getrlimit(RLIMIT_FSIZE, &old_lim) == 0);
	lim.rlim_max = old_lim.rlim_max;
	CHECK(op_wal_open(dir, 555, 1u << 20, &w) == 0);
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	int failed = 0;
	for (uint64_t i = 1; i <= 200 && !failed; i++) {
		event(w, i);
		failed = op_wal_flush(w, 1) < 0;
	}
	CHECK(setrlimit(RLIMIT_FSIZE, &old_lim) == 0);
	CHECK(failed);
	event(w, 999);
	CHECK(op_wal_flush(w, 1) < 0); /* and stays given up */
	op_wal_close(w, 0);
	CHECK(op_wal_replay(dir, 555, 0, NULL, NULL, &r) == 0 && !r.found && r.events == 0);

	/* A log file that cannot be read (here a directory by its name: read fails with EISDIR) is
	 * a hole in the log: the replay fails instead of reading it as empty and giving a verdict */
	CHECK(op_wal_open(dir, 666, 1u << 20, &w) == 0);
	event(w, 1);
	CHECK(op_wal_flush(w, 1) == 0);
	op_wal_close(w, 0);
	snprintf(path, sizeof(path), "%s/wal-%020llu-%010u.log", dir, 666ull, 7u);
	CHECK(mkdir(path, 0700) == 0);
	CHECK(op_wal_replay(dir, 666, 0, NULL, NULL, &r) == -EISDIR);
	CHECK(rmdir(path) == 0);
	CHECK(op_wal_replay(dir, 666, 0, NULL, NULL, &r) == 0 && r.events == 1);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_finish("test_wal");
}
