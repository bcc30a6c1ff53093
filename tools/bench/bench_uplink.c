/*
 * bench_uplink.c — `outpost-bench uplink`: goodput over an emulated satellite link, and what a
 * cut of the link costs, with the real sender (uplink/sender.c) and receiver (uplink/north.c)
 * talking TCP through a link emulator in this process.
 *
 * The emulator is a TCP relay that models a link of rate R and one-way delay D in each
 * direction: a byte read at t leaves when the link is free (serialisation at R after the bytes
 * before it) and arrives D later. It reads whatever the sender offers, so its queue is the
 * bottleneck's buffer; nothing in the kernel is shaped (netem is not available everywhere).
 * A cut closes both sides and drops what was on the way.
 *
 * Figures, one JSON line each, for R = 1 and 100 Mbit/s with 600 ms added round trip:
 *   - goodput: file bytes north per second, as a fraction of R, in the steady state (from the
 *     first chunk north received to the last: the bytes after the first chunk) and confirmed
 *     over the whole run (from the connection's first byte: ZeroMQ's handshake takes three
 *     round trips, the first OFFER one more); once without a cap and once with uplink.rate = R
 *     (what an operator sets: the cap counts framing and TCP/IP too, so it leaves a little unused);
 *   - bytes wasted per cut, under the cap (its chunks are half a second of the link; an uncapped
 *     1 MiB chunk takes 8 s at 1 Mbit/s and would never arrive whole between cuts 3 s apart):
 *     link bytes beyond what the same files cost without cuts, divided by the cuts (the data on
 *     the way when the link broke).
 *
 *   outpost-bench uplink [--seconds S]    S: the length of each goodput run (default 30)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "tools/bench/bench.h"
#include "uplink/north.h"
#include "uplink/sender.h"
#include "uplink/sha256.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the link emulator ---- */

typedef struct piece {
	struct piece *next;
	double arrive;
	size_t len, off;
	uint8_t data[];
} piece;

typedef struct direction {
	piece *head, *tail;
	double free_at; /* when the link finishes serialising what it has */
	uint64_t bytes; /* put on the link (serialised), dropped ones included */
} direction;

typedef struct link_emu {
	double rate_Bps, delay_s;
	int listen_fd, north_port, port;
	volatile int stop, cut_now;
	uint64_t fwd_bytes, cuts;
	pthread_mutex_t mu;
	pthread_t thr;
} link_emu;

static void drain(direction *d)
{
	while (d->head) {
		piece *p = d->head;
		d->head = p->next;
		free(p);
	}
	d->tail = NULL;
}

static int take(direction *d, int from, double rate, double delay)
{
	uint8_t buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n <= 0)
		return -1;
	piece *p = malloc(sizeof(*p) + (size_t)n);
	if (!p)
		return -1;
	double t = now_s();
	if (d->free_at < t)
		d->free_at = t;
	d->free_at += (double)n / rate;
	p->arrive = d->free_at + delay;
	p->len = (size_t)n;
	p->off = 0;
	p->next = NULL;
	memcpy(p->data, buf, (size_t)n);
	if (d->tail)
		d->tail->next = p;
	else
		d->head = p;
	d->tail = p;
	d->bytes += (uint64_t)n;
	return 0;
}

static int give(direction *d, int to)
{
	double t = now_s();
	while (d->head && d->head->arrive <= t) {
		piece *p = d->head;
		ssize_t w = write(to, p->data + p->off, p->len - p->off);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		p->off += (size_t)w;
		if (p->off < p->len)
			return 0;
		d->head = p->next;
		if (!d->head)
			d->tail = NULL;
		free(p);
	}
	return 0;
}

static int connect_local(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One connection at a time (the sender has one); a cut ends it, the sender reconnects. */
static void *emu_main(void *arg)
{
	link_emu *L = arg;
	while (!L->stop) {
		struct pollfd lp = {.fd = L->listen_fd, .events = POLLIN};
		if (poll(&lp, 1, 50) <= 0)
			continue;
		int a = accept4(L->listen_fd, NULL, NULL, SOCK_CLOEXEC), one = 1;
		if (a < 0)
			continue;
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		int b = connect_local(L->north_port);
		if (b < 0) {
			close(a);
			continue;
		}
		direction up = {0}, down = {0};
		L->cut_now = 0; /* a cut asked for while no connection was up: nothing to cut */
		while (!L->stop && !L->cut_now) {
			double t = now_s(), wake = t + 0.05;
			if (up.head && up.head->arrive < wake)
				wake = up.head->arrive;
			if (down.head && down.head->arrive < wake)
				wake = down.head->arrive;
			struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
			int ms = (int)((wake - t) * 1000.0);
			if (poll(p, 2, ms < 0 ? 0 : ms) < 0 && errno != EINTR)
				break;
			if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && take(&up, a, L->rate_Bps, L->delay_s) < 0)
				break;
			if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && take(&down, b, L->rate_Bps, L->delay_s) < 0)
				break;
			if (give(&up, b) < 0 || give(&down, a) < 0)
				break;
			pthread_mutex_lock(&L->mu);
			L->fwd_bytes += up.bytes;
			pthread_mutex_unlock(&L->mu);
			up.bytes = 0;
		}
		if (L->cut_now) {
			L->cuts++;
			L->cut_now = 0;
		}
		drain(&up);
		drain(&down);
		shutdown(a, SHUT_RDWR);
		shutdown(b, SHUT_RDWR);
		close(a);
		close(b);
	}
	return NULL;
}

static int emu_start(link_emu *L, double rate_bps, double rtt_s, int north_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int one = 1;
	memset(L, 0, sizeof(*L));
	L->rate_Bps = rate_bps / 8.0;
	L->delay_s = rtt_s / 2.0;
	L->north_port = north_port;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	L->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(L->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (L->listen_fd < 0 || bind(L->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(L->listen_fd, 4) != 0 || getsockname(L->listen_fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	L->port = ntohs(a.sin_port);
	pthread_mutex_init(&L->mu, NULL);
	return pthread_create(&L->thr, NULL, emu_main, L) == 0 ? 0 : -1;
}

static void emu_stop(link_emu *L)
{
	L->stop = 1;
	pthread_join(L->thr, NULL);
	close(L->listen_fd);
	pthread_mutex_destroy(&L->mu);
}

/* ---- north in a thread ---- */

typedef struct north_thr {
	op_north *n;
	volatile int stop;
	pthread_t thr;
	pthread_mutex_t mu;
	op_north_stats st; /* a copy for the main thread, under mu */
} north_thr;

static void *north_main(void *arg)
{
	north_thr *N = arg;
	while (!N->stop) {
		op_north_step(N->n, 20);
		pthread_mutex_lock(&N->mu);
		op_north_get_stats(N->n, &N->st);
		pthread_mutex_unlock(&N->mu);
	}
	return NULL;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Queue `files` bulk files of `size` pseudo-random bytes (incompressible; sidecar first). */
static int queue_files(const char *outbox, int run, int files, size_t size)
{
	char dir[700], name[64];
	uint8_t *buf = malloc(size);
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(run + 1);
	if (!buf)
		return -1;
	snprintf(dir, sizeof(dir), "%s/bulk", outbox);
	mkdir(dir, 0750);
	for (int f = 0; f < files; f++) {
		for (size_t i = 0; i + 8 <= size; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + i, &x, 8);
		}
		snprintf(name, sizeof(name), "bench-%02d-%03d.bin", run, f);
		if (op_uplink_publish(dir, name, buf, size) < 0) {
			free(buf);
			return -1;
		}
	}
	free(buf);
	return 0;
}

typedef struct run_result {
	double secs, goodput_Bps, steady_Bps;
	uint64_t files, bytes, link_bytes, cuts, timeouts, resumes;
} run_result;

/* One transfer of `files` × `size` bytes over the emulated link; cut every cut_every_s (0: never). */
static int run_link(void *ctx, const char *root, int run, double rate_bps, double rtt_s, uint64_t cap_bps,
		    int files, size_t size, double cut_every_s, run_result *r)
{
	char outbox[600], quar[600], north_dir[600], ep_n[64], ep_l[64];
	north_thr N = {.mu = PTHREAD_MUTEX_INITIALIZER};
	link_emu L;
	op_uplink *u = NULL;
	int pn = free_port();

	snprintf(outbox, sizeof(outbox), "%s/run%d-outbox", root, run);
	snprintf(quar, sizeof(quar), "%s/run%d-quarantine", root, run);
	snprintf(north_dir, sizeof(north_dir), "%s/run%d-north", root, run);
	mkdir(outbox, 0750);
	if (queue_files(outbox, run, files, size) < 0)
		return -1;
	snprintf(ep_n, sizeof(ep_n), "tcp://127.0.0.1:%d", pn);
	op_north_config nc = {.bind_endpoint = ep_n, .dir = north_dir};
	if (op_north_open(ctx, &nc, &N.n) < 0 || pthread_create(&N.thr, NULL, north_main, &N) != 0)
		return -1;
	if (emu_start(&L, rate_bps, rtt_s, pn) < 0)
		return -1;
	snprintf(ep_l, sizeof(ep_l), "tcp://127.0.0.1:%d", L.port);
	op_uplink_config uc = {.outbox_dir = outbox, .quarantine_dir = quar, .north_endpoint = ep_l,
			       .retry_ns = 100000000ull, .window = 16, /* as outpostd sets them; the timeout: 30 s */
			       .rate_bps = cap_bps};
	if (op_uplink_open(ctx, &uc, &u) < 0)
		return -1;
	op_uplink_stats st;
	double t0 = now_s(), next_cut = t0 + cut_every_s, limit = t0 + 600, t_first = 0, t_last = 0, b_first = 0;
	const double total = (double)files * (double)size;
	do {
		op_uplink_step(u, 5);
		op_uplink_get_stats(u, &st);
		pthread_mutex_lock(&N.mu);
		double got = (double)N.st.bytes_received;
		pthread_mutex_unlock(&N.mu);
		/* the steady state: from the first chunk north received to the last (no set-up, no
		 * last confirmation; runs without cuts, where every byte arrives once) */
		if (!t_first && got > 0) {
			t_first = now_s();
			b_first = got;
		}
		if (!t_last && got >= total)
			t_last = now_s();
		if (getenv("OUTPOST_BENCH_DEBUG")) {
			static double last;
			if (now_s() - last > 1) {
				last = now_s();
				op_north_stats ns;
				op_north_get_stats(N.n, &ns);
				fprintf(stderr, "t=%.1f north got %llu naks %llu rej %llu | ", last - t0,
					(unsigned long long)ns.bytes_received, (unsigned long long)ns.naks,
					(unsigned long long)ns.rejected);
				fprintf(stderr, "t=%.1f sent %llu confirmed %llu files %llu timeouts %llu link %llu\n", last - t0,
					(unsigned long long)st.bytes_sent, (unsigned long long)st.bytes_confirmed,
					(unsigned long long)st.files_confirmed, (unsigned long long)st.timeouts,
					(unsigned long long)L.fwd_bytes);
			}
		}
		if (cut_every_s > 0 && now_s() >= next_cut) {
			L.cut_now = 1;
			next_cut = now_s() + cut_every_s * (0.5 + (double)rand() / RAND_MAX); /* 0.5–1.5 × */
		}
	} while (st.files_confirmed < (uint64_t)files && now_s() < limit);
	r->secs = now_s() - t0;
	r->files = st.files_confirmed;
	r->bytes = st.bytes_confirmed;
	r->goodput_Bps = (double)st.bytes_confirmed / r->secs;
	r->steady_Bps = t_last > t_first ? (total - b_first) / (t_last - t_first) : 0;
	r->timeouts = st.timeouts;
	r->resumes = st.resumes;
	op_uplink_close(u);
	emu_stop(&L);
	r->link_bytes = L.fwd_bytes;
	r->cuts = L.cuts;
	N.stop = 1;
	pthread_join(N.thr, NULL);
	op_north_close(N.n);
	return st.files_confirmed == (uint64_t)files ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

int op_bench_uplink(int argc, char **argv)
{
	double seconds = 30;
	char root[] = "/tmp/outpost-bench-uplink-XXXXXX";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: outpost-bench uplink [--seconds S]\n");
			return 2;
		}
	}
	if (seconds < 2)
		seconds = 2;
	if (!mkdtemp(root)) {
		perror("outpost-bench uplink: mkdtemp");
		return 1;
	}
	void *ctx = zmq_ctx_new();
	const double rtt = 0.6;
	const double rates[2] = {1e6, 100e6};
	int run = 0, rc = 0;
	for (int k = 0; k < 2; k++) {
		double R = rates[k];
		/* files of about 4 s of the link each, enough of them for `seconds` */
		size_t size = (size_t)(R / 8.0 * 4.0);
		int files = (int)(seconds / 4.0 + 0.5);
		run_result base = {0}, capped = {0}, cut = {0};
		if (files < 2)
			files = 2;
		if (run_link(ctx, root, run++, R, rtt, 0, files, size, 0, &base) < 0 ||
		    run_link(ctx, root, run++, R, rtt, (uint64_t)R, files, size, 0, &capped) < 0 ||
		    run_link(ctx, root, run++, R, rtt, (uint64_t)R, 8, size, 3.0, &cut) < 0) { /* 8 files, whatever S */
			fprintf(stderr, "outpost-bench uplink: a transfer did not complete at %.0f Mbit/s\n", R / 1e6);
			rc = 1;
			break;
		}
		double per_byte_capped = (double)capped.link_bytes / (double)capped.bytes;
		for (int c = 0; c < 2; c++) {
			run_result *x = c ? &capped : &base;
			char cap[32];
			snprintf(cap, sizeof(cap), c ? "%.0f" : "\"none\"", R / 1e6);
			printf("{\"bench\":\"uplink\",\"link_mbit_s\":%.0f,\"rtt_ms\":%.0f,\"cap_mbit_s\":%s,\"files\":%llu,"
			       "\"bytes\":%llu,\"seconds\":%.2f,\"goodput_mbit_s\":%.3f,\"fraction_of_link\":%.3f,"
			       "\"whole_run_fraction_of_link\":%.3f,\"link_bytes_per_file_byte\":%.4f}\n",
			       R / 1e6, rtt * 1e3, cap, (unsigned long long)x->files, (unsigned long long)x->bytes, x->secs,
			       x->steady_Bps * 8 / 1e6, x->steady_Bps * 8 / R, x->goodput_Bps * 8 / R,
			       (double)x->link_bytes / (double)x->bytes);
		}
		double wasted = (double)cut.link_bytes - per_byte_capped * (double)cut.bytes;
		printf("{\"bench\":\"uplink\",\"link_mbit_s\":%.0f,\"rtt_ms\":%.0f,\"cuts\":%llu,\"timeouts\":%llu,"
		       "\"resumes\":%llu,\"link_bytes\":%llu,\"file_bytes\":%llu,\"wasted_bytes_per_cut\":%.0f,"
		       "\"wasted_link_seconds_per_cut\":%.3f,\"goodput_with_cuts_fraction\":%.3f}\n",
		       R / 1e6, rtt * 1e3, (unsigned long long)cut.cuts, (unsigned long long)cut.timeouts,
		       (unsigned long long)cut.resumes, (unsigned long long)cut.link_bytes, (unsigned long long)cut.bytes,
		       cut.cuts ? wasted / (double)cut.cuts : 0.0, cut.cuts ? wasted / (double)cut.cuts / (R / 8.0) : 0.0,
		       cut.goodput_Bps * 8 / R);
		fflush(stdout);
	}
	zmq_ctx_term(ctx);
	if (nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "outpost-bench uplink: could not remove %s\n", root);
	return rc;
}
