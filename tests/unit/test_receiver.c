/*
 * test_receiver.c — ingest's socket side with a real ZeroMQ peer:
 *  - an event the caller could not keep (no memory for it) is counted as such and stays
 *    missing, and the detector's resend of it is taken, not refused as a duplicate (before, the
 *    resend was a duplicate and the event was lost for good);
 *  - senders' connections opening and closing are counted and told, among them the one ZeroMQ
 *    cuts for a message over twice max_message_bytes (before, nothing said it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "ingest/receiver.h"
#include "unit/check.h"

struct take {
	int64_t refuse; /* the sequence to refuse once (-1: none left) */
	uint64_t got[16];
	int n;
};

static int take(void *ctx, const op_wire_header *h, const uint8_t *msg, size_t len, int live)
{
	struct take *t = ctx;
	(void)msg, (void)len, (void)live;
	if ((int64_t)h->sequence == t->refuse) {
		t->refuse = -1;
		return 1; /* as the ingest stage when it cannot allocate the event's slot */
	}
	if (t->n < 16)
		t->got[t->n++] = h->sequence;
	return 0;
}

static void send_event(void *push, uint64_t seq)
{
	op_wire_header h = {.stream_id = 7, .sequence = seq, .detector_time_ns = 1000000 + seq, .pulse_count = 1};
	op_pulse p = {.sensor_id = 1, .time_ns = 5.0f, .charge_pe = 1.5f};
	uint8_t buf[256];
	long n = op_wire_encode(buf, sizeof buf, &h, &p);
	CHECK(n > 0 && zmq_send(push, buf, (size_t)n, 0) == (int)n);
}

struct peers {
	int opened, closed;
	uint64_t last_closed;
	char endpoint[256];
};

static void on_peer(void *ctx, int opened, const char *endpoint, uint64_t closed, uint64_t open)
{
	struct peers *p = ctx;
	(void)open;
	if (opened) {
		p->opened++;
	} else {
		p->closed++;
		p->last_closed = closed;
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", endpoint);
	}
}

/* One turn of the ingest loop: wait up to 10 ms on the sockets (and the connection monitor,
 * when pe), then take what came. */
static void turn(op_receiver *r, struct take *t, struct peers *pe)
{
	zmq_pollitem_t items[3];
	int n = op_receiver_pollitems(r, items, 2);
	if (pe)
		items[n++] = (zmq_pollitem_t){.socket = op_receiver_monitor_socket(r), .events = ZMQ_POLLIN};
	zmq_poll(items, n, 10);
	if (pe)
		op_receiver_peers(r, pe);
	CHECK(op_receiver_drain(r, 64, take, t) >= 0);
}

/* Drain until `want` events were handed over or two seconds passed. */
static void drain(op_receiver *r, struct take *t, int want)
{
	for (int i = 0; i < 200 && t->n < want; i++)
		turn(r, t, NULL);
}

int main(void)
{
	void *ctx = zmq_ctx_new();
	op_receiver_config cfg = {.pull_endpoint = "inproc://test-receiver", .max_pulses = 16, .max_message_bytes = 4096};
	op_receiver *r = NULL;
	CHECK(ctx && op_receiver_open(ctx, &cfg, &r) == 0);
	void *push = zmq_socket(ctx, ZMQ_PUSH);
	CHECK(push && zmq_connect(push, "inproc://test-receiver") == 0);

	struct take t = {.refuse = 2};
	for (uint64_t q = 0; q < 5; q++)
		send_event(push, q);
	drain(r, &t, 4);
	op_receiver_stats st;
	op_receiver_get_stats(r, &st);
	CHECK(t.n == 4 && t.got[2] == 3);
	CHECK_EQ_U64(st.caller_rejected, 1);
	CHECK_EQ_U64(st.seq.gap_events_total - st.seq.late_total, 1); /* 2 is missing */

	send_event(push, 2); /* the detector sends it again */
	drain(r, &t, 5);
	op_receiver_get_stats(r, &st);
	CHECK(t.n == 5 && t.got[4] == 2);
	CHECK_EQ_U64(st.duplicates, 0);
	CHECK_EQ_U64(st.accepted, 5);
	CHECK_EQ_U64(st.seq.gap_events_total - st.seq.late_total, 0); /* nothing missing now */

	send_event(push, 2); /* kept now: another copy is a duplicate */
	for (int i = 0; i < 200 && st.duplicates == 0; i++) {
		turn(r, &t, NULL);
		op_receiver_get_stats(r, &st);
	}
	CHECK_EQ_U64(st.duplicates, 1);
	CHECK(t.n == 5);

	zmq_close(push);
	op_receiver_close(r);

	/* over a socket (inproc has no wire, and no size limit on it) */
	char ep[128];
	snprintf(ep, sizeof(ep), "ipc:///tmp/outpost-test-receiver-%d.sock", (int)getpid());
	op_receiver_config sc = {.pull_endpoint = ep, .max_pulses = 16, .max_message_bytes = 4096, .on_peer = on_peer};
	CHECK(op_receiver_open(ctx, &sc, &r) == 0);
	CHECK(op_receiver_monitor_socket(r) != NULL);
	struct peers pe = {0};
	push = zmq_socket(ctx, ZMQ_PUSH);
	int linger = 0;
	zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
	CHECK(push && zmq_connect(push, ep) == 0);
	struct take t2 = {.refuse = -1};
	send_event(push, 1);
	for (int i = 0; i < 200 && (t2.n < 1 || pe.opened < 1); i++)
		turn(r, &t2, &pe);
	CHECK(t2.n == 1 && pe.opened == 1 && pe.closed == 0);
	/* a message over twice max_message_bytes: ZeroMQ closes the connection */
	size_t big = 2 * 4096 + 100;
	char *junk = calloc(1, big);
	CHECK(junk && zmq_send(push, junk, big, 0) == (int)big);
	free(junk);
	for (int i = 0; i < 300 && pe.closed < 1; i++)
		turn(r, &t2, &pe);
	op_receiver_get_stats(r, &st);
	CHECK(pe.closed == 1 && pe.last_closed == 1 && st.connections_closed == 1 && !strcmp(pe.endpoint, ep));
	CHECK(st.received == 1 && t2.n == 1); /* the big one never came through */
	printf("a message of %zu bytes (max_message_bytes 4096): the sender's connection to %s closed, told\n", big,
	       pe.endpoint);
	zmq_close(push);
	op_receiver_close(r);
	unlink(ep + strlen("ipc://"));
	zmq_ctx_term(ctx);
	return check_finish("test_receiver");
}
