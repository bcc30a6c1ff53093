/*
 * bench_ingest.c — events/s through ingest's receive path (decode, validate both CRCs,
 * sequence accounting, copy into the in-flight window) against plain libzmq PUSH→PULL of the
 * same messages, same transport (ipc), same process layout, same run. Each size runs
 * baseline and ingest alternately three times; the medians are reported with their ratio.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "ingest/crc32c.h"
#include "ingest/receiver.h"
#include "ingest/wal.h"
#include "ingest/wire.h"
#include "tools/bench/bench.h"

typedef struct sender {
	void *ctx;
	char ep[128];
	uint8_t *msg;
	size_t len;
	long count;
} sender;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Each message gets its own sequence number: patch it and the header CRC (payload unchanged). */
static void *send_thread(void *arg)
{
	sender *s = arg;
	void *sock = zmq_socket(s->ctx, ZMQ_PUSH);
	int hwm = 1000, linger = -1;
	zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_connect(sock, s->ep);
	for (long i = 0; i < s->count; i++) {
		uint64_t seq = (uint64_t)i;
		for (int b = 0; b < 8; b++)
			s->msg[16 + b] = (uint8_t)(seq >> (8 * b));
		uint32_t c = op_crc32c(0, s->msg, 40);
		for (int b = 0; b < 4; b++)
			s->msg[40 + b] = (uint8_t)(c >> (8 * b));
		while (zmq_send(sock, s->msg, s->len, 0) < 0)
			if (errno != EINTR) {
				fprintf(stderr, "bench ingest: send: %s\n", zmq_strerror(errno));
				s->count = i;
				goto out;
			}
	}
out:
	zmq_close(sock);
	return NULL;
}

typedef struct ring {
	uint8_t *slots;
	size_t slot_bytes, n, head;
	long taken;
	op_wal *wal; /* the stage's write-ahead log, when measured */
} ring;

static int take(void *ctx, const op_wire_header *h, const uint8_t *msg, size_t len, int live)
{
	ring *r = ctx;
	(void)h;
	(void)live;
	uint8_t *slot = r->slots + (r->head % r->n) * r->slot_bytes;
	for (int i = 0; i < 8; i++) /* the window's copy: serial, then the message */
		slot[i] = (uint8_t)(r->head >> (8 * i));
	memcpy(slot + 8, msg, len);
	if (r->wal) {
		op_wal_event(r->wal, slot, len + 8);
		if (r->head >= r->n)
			op_wal_acked(r->wal, r->head - r->n); /* the slot it replaces became durable */
	}
	r->head++;
	r->taken++;
	return 0;
}

static double run(void *ctx, int ingest, uint8_t *proto, size_t len, long count, int round)
{
	sender s = {.ctx = ctx, .len = len, .count = count};
	pthread_t th;
	double t0, secs;

	snprintf(s.ep, sizeof(s.ep), "ipc:///tmp/outpost-bench-ingest-%d-%d-%d.sock", (int)getpid(), ingest, round);
	s.msg = malloc(len);
	memcpy(s.msg, proto, len);
	if (!ingest) {
		void *pull = zmq_socket(ctx, ZMQ_PULL);
		zmq_bind(pull, s.ep);
		pthread_create(&th, NULL, send_thread, &s);
		zmq_msg_t m;
		zmq_msg_init(&m);
		t0 = now_s();
		for (long i = 0; i < count; i++)
			zmq_msg_recv(&m, pull, 0);
		secs = now_s() - t0;
		zmq_msg_close(&m);
		pthread_join(th, NULL);
		zmq_close(pull);
	} else {
		op_receiver *r;
		op_receiver_config rc = {.pull_endpoint = s.ep, .rcvhwm = 1000, .max_pulses = 1u << 20,
					 .max_message_bytes = 1u << 22, .max_streams = 16, .seq_window = 4096};
		ring rg = {.slot_bytes = len + 8, .n = 4096};
		rg.slots = malloc(rg.slot_bytes * rg.n);
		char wal_dir[96];
		snprintf(wal_dir, sizeof(wal_dir), "/dev/shm/outpost-bench-wal-%d", (int)getpid());
		if (ingest == 2 && op_wal_open(wal_dir, 1, 16u << 20, &rg.wal) < 0)
			return 0;
		if (op_receiver_open(ctx, &rc, &r) < 0)
			return 0;
		zmq_pollitem_t it;
		op_receiver_pollitems(r, &it, 1);
		pthread_create(&th, NULL, send_thread, &s);
		t0 = now_s();
		while (rg.taken < count) {
			if (op_receiver_drain(r, 512, take, &rg) == 0)
				zmq_poll(&it, 1, 100);
			op_wal_flush(rg.wal, rg.head > rg.n ? rg.head - rg.n : 0);
		}
		secs = now_s() - t0;
		pthread_join(th, NULL);
		op_receiver_stats st;
		op_receiver_get_stats(r, &st);
		if (st.accepted != (uint64_t)count)
			fprintf(stderr, "bench ingest: accepted %llu of %ld\n", (unsigned long long)st.accepted, count);
		op_receiver_close(r);
		op_wal_close(rg.wal, 1);
		rmdir(wal_dir);
		free(rg.slots);
	}
	free(s.msg);
	return (double)count / secs;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int op_bench_ingest(int argc, char **argv)
{
	static const size_t sizes[] = {64, 256, 1024, 4096, 16384};
	double seconds = 1.0;
	void *ctx = zmq_ctx_new();

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
	fprintf(stderr, "bench ingest: crc32c path %s\n", op_crc32c_impl());
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t np = (uint32_t)((sizes[k] - OP_WIRE_HEADER_BYTES + OP_WIRE_PULSE_BYTES / 2) / OP_WIRE_PULSE_BYTES);
		if (np == 0)
			np = 1;
		op_pulse *p = calloc(np, sizeof(op_pulse));
		for (uint32_t i = 0; i < np; i++)
			p[i] = (op_pulse){.sensor_id = i % 5160, .time_ns = (float)i * 3.5f, .charge_pe = 1.25f};
		size_t len = op_wire_encoded_size(np);
		uint8_t *msg = malloc(len);
		op_wire_header h = {.stream_id = 1, .pulse_count = np};
		op_wire_encode(msg, len, &h, p);
		/* calibrate the count to about `seconds` per run */
		double eps = run(ctx, 0, msg, len, 20000, 99);
		long count = (long)(eps * seconds);
		if (count < 20000)
			count = 20000;
		double base[3], ing[3], wal[3];
		for (int r = 0; r < 3; r++) {
			base[r] = run(ctx, 0, msg, len, count, r);
			ing[r] = run(ctx, 1, msg, len, count, r);
			wal[r] = run(ctx, 2, msg, len, count, r + 10);
		}
		qsort(base, 3, sizeof(double), cmpd);
		qsort(ing, 3, sizeof(double), cmpd);
		qsort(wal, 3, sizeof(double), cmpd);
		printf("{\"bench\":\"ingest\",\"msg_bytes\":%zu,\"pulses\":%u,\"events\":%ld,\"baseline_eps\":%.0f,"
		       "\"ingest_eps\":%.0f,\"ratio\":%.3f,\"ingest_MBps\":%.1f,\"ingest_with_log_eps\":%.0f,"
		       "\"with_log_ratio\":%.3f}\n",
		       len, np, count, base[1], ing[1], ing[1] / base[1], ing[1] * (double)len / 1e6, wal[1],
		       wal[1] / base[1]);
		fflush(stdout);
		free(msg);
		free(p);
	}
	zmq_ctx_term(ctx);
	return 0;
}
