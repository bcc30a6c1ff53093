/*
 * outpost-north — the north receiver.
 *
 *   outpost-north --bind EP --dir DIR [--max-file-bytes N]   receive until SIGINT/SIGTERM
 *                 [--curve-key NORTH.key --authorized-keys DIR]  CURVE: only listed appliances
 *   outpost-north --count DIR                                 {"files":F,"rows":R,"dir":...}
 *   outpost-north --report DIR                                what each appliance delivered
 *                 [--metrics FILE]                           receiving: figures for node_exporter
 *
 * One line per received file on stderr. Exit 2 on bad arguments or an endpoint it cannot bind.
 * The figures (--metrics, Prometheus text, replaced atomically every 10 s and at exit; and
 * --report) are per appliance: files, bytes and rows received, the last delivery; for the
 * receiver: transfers in progress and the bytes they hold, chunks refused (NAK: out of order or
 * damaged — the sender resends them), lost confirmations answered again, disk free, bytes
 * received in the last 24 hours, and the days until the disk is full at that rate.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/config.h"
#include "uplink/curve.h"
#include "uplink/escape.h"
#include "uplink/north.h"
#include "uplink/segment.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* What the ledger says, kept up to date while receiving. */
#define MAX_APPLIANCES 256
typedef struct ledger_view {
	struct agg {
		char who[OP_NORTH_WHO_MAX], first[32], last[32];
		unsigned long long files, bytes, rows;
	} a[MAX_APPLIANCES];
	int na;
	unsigned long long minute[1440]; /* bytes received per minute of the last 24 h, by UTC minute */
	long minute_of[1440];            /* which minute (since the epoch) each slot holds */
} ledger_view;

static void view_add(ledger_view *v, const char *utc, const char *who, unsigned long long size, long rows)
{
	int i;
	for (i = 0; i < v->na && strcmp(v->a[i].who, who); i++)
		;
	if (i == v->na) {
		if (v->na == MAX_APPLIANCES)
			return;
		memset(&v->a[i], 0, sizeof(v->a[i]));
		snprintf(v->a[i].who, sizeof(v->a[i].who), "%s", who);
		snprintf(v->a[i].first, sizeof(v->a[i].first), "%s", utc);
		v->na++;
	}
	v->a[i].files++;
	v->a[i].bytes += size;
	v->a[i].rows += rows > 0 ? (unsigned long long)rows : 0;
	snprintf(v->a[i].last, sizeof(v->a[i].last), "%s", utc);
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (strptime(utc, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		long m = (long)(timegm(&tm) / 60), now = (long)(time(NULL) / 60);
		if (m > now - 1440 && m <= now) {
			int k = (int)(m % 1440);
			if (v->minute_of[k] != m) {
				v->minute_of[k] = m;
				v->minute[k] = 0;
			}
			v->minute[k] += size;
		}
	}
}

static unsigned long long view_last_day(const ledger_view *v)
{
	long now = (long)(time(NULL) / 60);
	unsigned long long sum = 0;
	for (int k = 0; k < 1440; k++)
		if (v->minute_of[k] > now - 1440)
			sum += v->minute[k];
	return sum;
}

/* Read the ledger: 0, 1 when there is none yet, or -1 (reported). */
static int view_load(ledger_view *v, const char *dir)
{
	char path[4096], line[OP_NORTH_LEDGER_LINE];
	memset(v, 0, sizeof(*v));
	snprintf(path, sizeof(path), "%s/ledger.tsv", dir);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 1;
		fprintf(stderr, "outpost-north: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char utc[32], name[256], sha[80], who[OP_NORTH_WHO_MAX] = "-";
		unsigned long long size;
		long rows;
		if (sscanf(line, "%31s %255s %llu %79s %ld %255s", utc, name, &size, sha, &rows, who) >= 5)
			view_add(v, utc, who, size, rows);
	}
	fclose(f);
	return 0;
}

/* Disk free under dir, and the days until it is gone at the last 24 hours' rate (-1: nothing
 * received in them). */
static void disk_outlook(const ledger_view *v, const char *dir, unsigned long long *free_b, double *days)
{
	struct statvfs fs;
	unsigned long long day = view_last_day(v);
	*free_b = statvfs(dir, &fs) == 0 ? (unsigned long long)fs.f_bavail * fs.f_frsize : 0;
	*days = day ? (double)*free_b / (double)day : -1;
}

typedef struct north_state {
	ledger_view view;
	const char *dir, *metrics;
	op_north *n;
} north_state;

static void on_file(void *ctx, const char *name, uint64_t size, const char *sha, long rows, const char *who)
{
	north_state *ns = ctx;
	char utc[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	view_add(&ns->view, utc, who, size, rows);
	if (rows < 0)
		fprintf(stderr, "outpost-north: stored %s from %s (%llu bytes, sha256 %.16s…) — WARNING: %s\n", name, who,
			(unsigned long long)size, sha,
			rows == -EIO	     ? "it does not open as a result segment"
			: rows == -ECHILD    ? "reading it as a result segment crashed the HDF5 reader (a child process)"
			: rows == -ETIMEDOUT ? "reading it as a result segment took over 10 s (the reader was stopped)"
					     : "its rows were not counted: no process to read it could be started");
	else
		fprintf(stderr, "outpost-north: stored %s from %s (%llu bytes, %ld rows, sha256 %.16s…)\n", name, who,
			(unsigned long long)size, rows, sha);
}

/* The figures in Prometheus' text format, replacing FILE atomically. */
static void write_metrics(north_state *ns)
{
	char tmp[4200];
	op_north_stats st;
	unsigned long long free_b;
	double days;
	snprintf(tmp, sizeof(tmp), "%s.tmp", ns->metrics);
	FILE *f = fopen(tmp, "we");
	if (!f) {
		fprintf(stderr, "outpost-north: cannot write %s: %s\n", tmp, strerror(errno));
		return;
	}
	op_north_get_stats(ns->n, &st);
	disk_outlook(&ns->view, ns->dir, &free_b, &days);
	/* per appliance: one family per figure (the ledger's names are key file names: escaped
	 * anyway, a quote in one must not break the whole file) */
	static const struct {
		const char *name, *type, *help;
	} fam[4] = {
		{"outpost_north_files_total", "counter", "Files received and made durable, per appliance (ledger)."},
		{"outpost_north_bytes_total", "counter", "Bytes of the files received, per appliance."},
		{"outpost_north_rows_total", "counter", "Result rows in the segments received, per appliance."},
		{"outpost_north_last_file_timestamp_seconds", "gauge", "When the last file from the appliance was made durable."},
	};
	for (int k = 0; k < 4; k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[k].name, fam[k].help, fam[k].name, fam[k].type);
		for (int i = 0; i < ns->view.na; i++) {
			const struct agg *a = &ns->view.a[i];
			char who[3 * sizeof(a->who)];
			op_prom_escape(who, sizeof(who), a->who);
			unsigned long long v = k == 0 ? a->files : k == 1 ? a->bytes : a->rows;
			if (k == 3) {
				struct tm tm;
				memset(&tm, 0, sizeof(tm));
				if (!strptime(a->last, "%Y-%m-%dT%H:%M:%SZ", &tm))
					continue;
				v = (unsigned long long)timegm(&tm);
			}
			fprintf(f, "%s{appliance=\"%s\"} %llu\n", fam[k].name, who, v);
		}
	}
	const struct {
		const char *name, *type, *help;
		double v;
	} one[] = {
		{"outpost_north_chunk_bytes_total", "counter", "Chunk bytes received (resent ones included).", (double)st.bytes_received},
		{"outpost_north_naks_total", "counter", "Chunks refused as out of order or damaged; the sender sends them again.", (double)st.naks},
		{"outpost_north_crc_errors_total", "counter", "Chunks whose CRC32C did not match.", (double)st.crc_errors},
		{"outpost_north_refused_total", "counter", "Requests refused (bad name, checksum mismatch, disk full, ...).", (double)st.rejected},
		{"outpost_north_reconfirmed_total", "counter", "Offers of a file already held, confirmed again (a lost confirmation).", (double)st.reconfirmed},
		{"outpost_north_recovered_total", "counter", "Ledger lines written at start for commits a stop interrupted.", (double)st.recovered},
		{"outpost_north_peers_refused_total", "counter", "Connections whose CURVE key is not authorised.", (double)st.peers_refused},
		{"outpost_north_transfers_in_progress", "gauge", "Files partly received.", (double)st.partials},
		{"outpost_north_partial_bytes", "gauge", "Bytes held by the files partly received.", (double)st.partial_bytes},
		{"outpost_north_partials_discarded_total", "counter", "Partial files whose sync or read-back failed (a disk going bad): removed, sent again from the start.", (double)st.partials_discarded},
		{"outpost_north_partial_bytes_discarded_total", "counter", "Bytes held by the partial files removed after a failed sync or read-back.", (double)st.partial_bytes_discarded},
		{"outpost_north_sync_failures", "gauge", "Failed syncs of partial files in a row (0 after a good one); from 2, files are refused for a while.", (double)st.sync_failures},
		{"outpost_north_offers_paused_total", "counter", "Offers refused while a disk failing its syncs pauses the receiver.", (double)st.offers_paused},
		{"outpost_north_name_conflicts_total", "counter", "Offers refused because a file of that name from another appliance is held or being sent.", (double)st.name_conflicts},
		{"outpost_north_offers_no_room_total", "counter", "Offers refused because the disk has no room for the whole file (nothing of it sent).", (double)st.offers_no_room},
		{"outpost_north_partial_reserved_bytes", "gauge", "Disk space the transfers in progress have reserved and not yet received.", (double)st.partial_reserved},
		{"outpost_north_partials_expired_total", "counter", "Partial files untouched for 30 days, removed.", (double)st.partials_expired},
		{"outpost_north_disk_free_bytes", "gauge", "Free space on the receiving directory's file system.", (double)free_b},
		{"outpost_north_received_bytes_24h", "gauge", "Bytes of the files received in the last 24 hours.", (double)view_last_day(&ns->view)},
		{"outpost_north_disk_full_in_seconds", "gauge", "Time until the disk is full at the last 24 hours' rate (-1: nothing received).", days < 0 ? -1.0 : days * 86400.0},
	};
	for (size_t k = 0; k < sizeof(one) / sizeof(one[0]); k++)
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", one[k].name, one[k].help, one[k].name, one[k].type,
			one[k].name, one[k].v);
	if (fclose(f) != 0 || rename(tmp, ns->metrics) != 0) {
		fprintf(stderr, "outpost-north: cannot write %s: %s\n", ns->metrics, strerror(errno));
		unlink(tmp);
	}
}

/* Per appliance, from the ledger: files, bytes, rows, first and last delivery (UTC); and the
 * disk's outlook. */
static int report(const char *dir)
{
	static ledger_view v;
	unsigned long long free_b;
	double days;
	if (view_load(&v, dir) < 0)
		return 2;
	disk_outlook(&v, dir, &free_b, &days);
	printf("{\"appliances\":{");
	for (int i = 0; i < v.na; i++) {
		char who[6 * sizeof(v.a[i].who)];
		op_json_escape(who, sizeof(who), v.a[i].who); /* a key file's name */
		printf("%s\"%s\":{\"files\":%llu,\"bytes\":%llu,\"rows\":%llu,\"first\":\"%s\",\"last\":\"%s\"}", i ? "," : "",
		       who, v.a[i].files, v.a[i].bytes, v.a[i].rows, v.a[i].first, v.a[i].last);
	}
	printf("},\"received_bytes_24h\":%llu,\"disk_free_bytes\":%llu,\"disk_days_to_full\":%.2f}\n",
	       view_last_day(&v), free_b, days);
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
	char dj[6 * 4096]; /* a path of up to PATH_MAX, every byte escaped */
	op_json_escape(dj, sizeof(dj), dir);
	printf("{\"files\":%ld,\"rows\":%ld,\"unreadable\":%ld,\"dir\":\"%s\"}\n", files, rows, unreadable, dj);
	return 0;
}

int main(int argc, char **argv)
{
	const char *bind = NULL, *dir = NULL, *keyfile = NULL, *authorized = NULL, *metrics = NULL;
	static north_state ns;
	op_curve_key key;
	op_north_config cfg = {0};
	op_north *n = NULL;
	struct sigaction sa;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--bind") && i + 1 < argc)
			bind = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--max-file-bytes") && i + 1 < argc) {
			/* as outpost.yaml writes sizes (a bare strtoull read "2G" as 2 bytes, and every
			 * file was refused); 0: the default, 64 GiB */
			if (op_config_parse_size(argv[++i], &cfg.max_file_bytes) < 0) {
				fprintf(stderr, "outpost-north: --max-file-bytes %s: not a size (bytes, or with a unit "
						"as in outpost.yaml: 2GiB, 512MiB, 2GB)\n", argv[i]);
				return 2;
			}
		}
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			return count(argv[i + 1]);
		else if (!strcmp(argv[i], "--report") && i + 1 < argc)
			return report(argv[i + 1]);
		else if (!strcmp(argv[i], "--curve-key") && i + 1 < argc)
			keyfile = argv[++i];
		else if (!strcmp(argv[i], "--authorized-keys") && i + 1 < argc)
			authorized = argv[++i];
		else if (!strcmp(argv[i], "--metrics") && i + 1 < argc)
			metrics = argv[++i];
		else {
			fprintf(stderr, "usage: outpost-north --bind EP --dir DIR [--max-file-bytes SIZE (2GiB, 512MiB)]\n"
					"                     [--curve-key NORTH.key --authorized-keys DIR] [--metrics FILE]\n"
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
	ns.dir = dir;
	ns.metrics = metrics;
	ns.n = n;
	view_load(&ns.view, dir);
	op_north_set_callbacks(n, on_file, on_reject, &ns);
	op_north_stats st0;
	op_north_get_stats(n, &st0);
	if (st0.recovered)
		fprintf(stderr, "outpost-north: finished %llu commit(s) an earlier stop interrupted (ledger lines written)\n",
			(unsigned long long)st0.recovered);
	fprintf(stderr, "outpost-north: receiving on %s into %s%s%s\n", bind, dir,
		keyfile ? "; CURVE, accepting the keys in " : " (plaintext: every peer accepted)",
		keyfile ? authorized : "");
	time_t last_metrics = 0;
	while (!stop) {
		if (metrics && time(NULL) - last_metrics >= 10) {
			write_metrics(&ns);
			last_metrics = time(NULL);
		}
		rc = op_north_step(n, 200);
		if (rc < 0) { /* waiting on its sockets failed: a status for whatever restarts north */
			fprintf(stderr, "outpost-north: receiving on %s failed (waiting on its sockets): %s\n", bind,
				strerror(-rc));
			break;
		}
	}
	if (metrics)
		write_metrics(&ns);
	op_north_stats st;
	op_north_get_stats(n, &st);
	fprintf(stderr, "outpost-north: stopping: %llu files, %llu rows received, %llu refused, %llu peers refused\n",
		(unsigned long long)st.files_received, (unsigned long long)st.rows_received,
		(unsigned long long)st.rejected, (unsigned long long)st.peers_refused);
	op_north_close(n);
	zmq_ctx_term(ctx);
	return rc < 0 ? 1 : 0;
}
