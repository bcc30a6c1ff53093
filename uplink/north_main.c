/*
 * outpost-north — the north receiver.
 *
 *   outpost-north --bind EP --dir DIR [--max-file-bytes N]   receive until SIGINT/SIGTERM
 *                 [--curve-key NORTH.key --authorized-keys DIR]  CURVE: only listed appliances
 *   outpost-north --count DIR                                 {"files":F,"rows":R,"dir":...}
 *   outpost-north --report DIR                                what each appliance delivered
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

#include "uplink/curve.h"
#include "uplink/north.h"
#include "uplink/segment.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_file(void *ctx, const char *name, uint64_t size, const char *sha, long rows, const char *who)
{
	(void)ctx;
	if (rows < 0)
		fprintf(stderr, "outpost-north: stored %s from %s (%llu bytes, sha256 %.16s…) — WARNING: it does not "
				"open as a result segment\n", name, who, (unsigned long long)size, sha);
	else
		fprintf(stderr, "outpost-north: stored %s from %s (%llu bytes, %ld rows, sha256 %.16s…)\n", name, who,
			(unsigned long long)size, rows, sha);
}

/* Per appliance, from the ledger: files, bytes, rows, first and last delivery (UTC). */
static int report(const char *dir)
{
	char path[4096], line[1024];
	struct agg {
		char who[64], first[32], last[32];
		unsigned long long files, bytes, rows;
	} a[256];
	int na = 0;
	snprintf(path, sizeof(path), "%s/ledger.tsv", dir);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT) {
			printf("{\"appliances\":{}}\n");
			return 0;
		}
		fprintf(stderr, "outpost-north: %s: %s\n", path, strerror(errno));
		return 2;
	}
	while (fgets(line, sizeof(line), f)) {
		char utc[32], name[256], sha[80], who[64] = "-";
		unsigned long long size;
		long rows;
		int k = sscanf(line, "%31s %255s %llu %79s %ld %63s", utc, name, &size, sha, &rows, who);
		if (k < 5)
			continue;
		int i;
		for (i = 0; i < na && strcmp(a[i].who, who); i++)
			;
		if (i == na) {
			if (na == 256)
				continue;
			memset(&a[na], 0, sizeof(a[na]));
			snprintf(a[na].who, sizeof(a[na].who), "%s", who);
			snprintf(a[na].first, sizeof(a[na].first), "%s", utc);
			na++;
		}
		a[i].files++;
		a[i].bytes += size;
		a[i].rows += rows > 0 ? (unsigned long long)rows : 0;
		snprintf(a[i].last, sizeof(a[i].last), "%s", utc);
	}
	fclose(f);
	printf("{\"appliances\":{");
	for (int i = 0; i < na; i++)
		printf("%s\"%s\":{\"files\":%llu,\"bytes\":%llu,\"rows\":%llu,\"first\":\"%s\",\"last\":\"%s\"}", i ? "," : "",
		       a[i].who, a[i].files, a[i].bytes, a[i].rows, a[i].first, a[i].last);
	printf("}}\n");
	return 0;
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
	const char *bind = NULL, *dir = NULL, *keyfile = NULL, *authorized = NULL;
	op_curve_key key;
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
		else if (!strcmp(argv[i], "--report") && i + 1 < argc)
			return report(argv[i + 1]);
		else if (!strcmp(argv[i], "--curve-key") && i + 1 < argc)
			keyfile = argv[++i];
		else if (!strcmp(argv[i], "--authorized-keys") && i + 1 < argc)
			authorized = argv[++i];
		else {
			fprintf(stderr, "usage: outpost-north --bind EP --dir DIR [--max-file-bytes N]\n"
					"                     [--curve-key NORTH.key --authorized-keys DIR]\n"
					"       outpost-north --count DIR\n"
					"       outpost-north --report DIR\n");
			return 2;
		}
	}
	if (!bind || !dir) {
		fprintf(stderr, "outpost-north: --bind and --dir are required\n");
		return 2;
	}
	cfg.bind_endpoint = bind;
	cfg.dir = dir;
	if (!keyfile != !authorized) {
		fprintf(stderr, "outpost-north: --curve-key and --authorized-keys go together\n");
		return 2;
	}
	if (keyfile) {
		char err[512];
		struct stat sb;
		if (op_curve_load(keyfile, 1, &key, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-north: %s\n", err);
			return 2;
		}
		if (stat(authorized, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "outpost-north: --authorized-keys %s: not a directory\n", authorized);
			return 2;
		}
		cfg.curve_secret_z85 = key.secret_z85;
		cfg.authorized_dir = authorized;
	}
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
	fprintf(stderr, "outpost-north: receiving on %s into %s%s%s\n", bind, dir,
		keyfile ? "; CURVE, accepting the keys in " : " (plaintext: every peer accepted)",
		keyfile ? authorized : "");
	while (!stop) {
		rc = op_north_step(n, 200);
		if (rc < 0) {
			fprintf(stderr, "outpost-north: %s\n", strerror(-rc));
			break;
		}
	}
	op_north_stats st;
	op_north_get_stats(n, &st);
	fprintf(stderr, "outpost-north: stopping: %llu files, %llu rows received, %llu refused, %llu peers refused\n",
		(unsigned long long)st.files_received, (unsigned long long)st.rows_received,
		(unsigned long long)st.rejected, (unsigned long long)st.peers_refused);
	op_north_close(n);
	zmq_ctx_term(ctx);
	return 0;
}
