/*
 * outpost-north — the north receiver.
 *
 *   outpost-north --bind EP --dir DIR [--max-file-bytes N]   receive until SIGINT/SIGTERM
 *   outpost-north --count DIR                                 {"files":F,"rows":R,"dir":...}
 *
 * One line per received file on stderr. Exit 2 on bad arguments or an endpoint it cannot bind.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "uplink/north.h"
#include "uplink/segment.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_file(void *ctx, const char *name, uint64_t size, const char *sha, long rows)
{
	(void)ctx;
	if (rows < 0)
		fprintf(stderr, "outpost-north: stored %s (%llu bytes, sha256 %.16s…) — WARNING: it does not open "
				"as a result segment\n", name, (unsigned long long)size, sha);
	else
		fprintf(stderr, "outpost-north: stored %s (%llu bytes, %ld rows, sha256 %.16s…)\n", name,
			(unsigned long long)size, rows, sha);
}

static void on_reject(void *ctx, const char *name, const char *why)
{
	(void)ctx;
	fprintf(stderr, "outpost-north: refused %s: %s\n", name, why);
}

static int count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	long files = 0, rows = 0, unreadable = 0;
	char path[4096];

	if (!d) {
		fprintf(stderr, "outpost-north: cannot open %s: %s\n", dir, strerror(errno));
		return 2;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 4 || strcmp(de->d_name + n - 3, ".h5") || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		long r = op_segment_count_rows(path);
		files++;
		if (r < 0)
			unreadable++;
		else
			rows += r;
	}
	closedir(d);
	printf("{\"files\":%ld,\"rows\":%ld,\"unreadable\":%ld,\"dir\":\"%s\"}\n", files, rows, unreadable, dir);
	return 0;
}

int main(int argc, char **argv)
{
	const char *bind = NULL, *dir = NULL;
	op_north_config cfg = {0};
	op_north *n = NULL;
	struct sigaction sa;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bind") && i + 1 < argc)
			bind = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--max-file-bytes") && i + 1 < argc)
			cfg.max_file_bytes = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			return count(argv[i + 1]);
		else {
			fprintf(stderr, "usage: outpost-north --bind EP --dir DIR [--max-file-bytes N]\n"
					"       outpost-north --count DIR\n");
			return 2;
		}
	}
	if (!bind || !dir) {
		fprintf(stderr, "outpost-north: --bind and --dir are required\n");
		return 2;
	}
	cfg.bind_endpoint = bind;
	cfg.dir = dir;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	void *ctx = zmq_ctx_new();
	int rc = op_north_open(ctx, &cfg, &n);
	if (rc < 0) {
		fprintf(stderr, "outpost-north: cannot receive on %s into %s: %s\n", bind, dir, strerror(-rc));
		zmq_ctx_term(ctx);
		return 2;
	}
	op_north_set_callbacks(n, on_file, on_reject, NULL);
	fprintf(stderr, "outpost-north: receiving on %s into %s\n", bind, dir);
	while (!stop) {
		rc = op_north_step(n, 200);
		if (rc < 0) {
			fprintf(stderr, "outpost-north: %s\n", strerror(-rc));
			break;
		}
	}
	op_north_stats st;
	op_north_get_stats(n, &st);
	fprintf(stderr, "outpost-north: stopping: %llu files, %llu rows received, %llu refused\n",
		(unsigned long long)st.files_received, (unsigned long long)st.rows_received,
		(unsigned long long)st.rejected);
	op_north_close(n);
	zmq_ctx_term(ctx);
	return 0;
}
