/*
 * receiver.h — the ingest stage's socket side: a PULL socket it binds (lossless: when the
 * caller stops draining, the sender blocks at its high-water mark) and optionally a SUB socket
 * connected to a PUB stream (a live view: what arrives while we are not draining may be lost
 * upstream, and shows as a sequence gap). Every message is validated and sequence-tracked;
 * every rejection is counted by reason and handed to the caller's on_reject (which logs: this
 * module never does).
 */
#ifndef OP_INGEST_RECEIVER_H
#define OP_INGEST_RECEIVER_H
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "ingest/seqtrack.h"
#include "ingest/wire.h"

typedef struct op_receiver op_receiver;

typedef struct op_receiver_config {
	const char *pull_endpoint; /* bind; "" or NULL = none */
	const char *sub_endpoint;  /* connect; "" or NULL = none */
	int rcvhwm;
	uint32_t max_pulses;
	uint64_t max_message_bytes;
	uint32_t max_streams;
	uint32_t seq_window;
	/* Called for every rejected message (may be NULL): the reason (a counter's name without
	 * "rejected_"), and the stream and sequence when the header could be trusted (have_id). */
	void (*on_reject)(void *ctx, const char *reason, int have_id, uint32_t stream, uint64_t sequence);
	void *reject_ctx;
	/* A stream id no sender may use (the appliance's own start-up probe): rejected as
	 * "reserved_stream" before its sequence is accounted. Only with has_reserved_stream. */
	int has_reserved_stream;
	uint32_t reserved_stream;
	/* Called by op_receiver_peers for every connection opened to the PULL endpoint or closed
	 * (may be NULL): opened 1/0, the endpoint, how many have closed so far and how many are
	 * open now. A connection closes when its sender stops or restarts, when it was no ZeroMQ
	 * sender (a port scan, a health check), and when it sends a message over twice
	 * max_message_bytes (ZeroMQ's limit: it closes the connection; that message and what was in
	 * flight behind it are lost, and the sequence numbers count them missing). */
	void (*on_peer)(void *ctx, int opened, const char *endpoint, uint64_t closed, uint64_t open);
} op_receiver_config;

typedef struct op_receiver_stats {
	uint64_t received, bytes, accepted;
	uint64_t rejected[OP_WIRE_NERR]; /* index = -op_wire_error */
	uint64_t oversize, multipart, duplicates, too_old, stream_limit, caller_rejected, reserved_stream;
	uint64_t connections_opened, connections_closed; /* senders' connections to the PULL endpoint */
	op_seqtrack_stats seq;
} op_receiver_stats;

/* Called for every accepted event; msg is valid only during the call. Nonzero = the caller
 * could not take it (counted as caller_rejected; its sequence number is not marked seen, so a
 * resend of it is taken). live = 1 when it came from the SUB socket. */
typedef int (*op_receiver_cb)(void *ctx, const op_wire_header *h, const uint8_t *msg, size_t len, int live);

int op_receiver_open(void *zmq_ctx, const op_receiver_config *cfg, op_receiver **ret);
void op_receiver_close(op_receiver *r);
/* Fill pollitems for the receiver's sockets; returns how many (at most max). */
int op_receiver_pollitems(op_receiver *r, zmq_pollitem_t *items, int max);
/* Receive without blocking at most max_msgs messages; returns messages handled or -errno. */
long op_receiver_drain(op_receiver *r, size_t max_msgs, op_receiver_cb cb, void *ctx);
void op_receiver_get_stats(const op_receiver *r, op_receiver_stats *out);
/* The socket that tells of senders' connections (poll it for ZMQ_POLLIN; NULL: none), and the
 * handling of what it told: counts, and on_peer with ctx for each. */
void *op_receiver_monitor_socket(op_receiver *r);
void op_receiver_peers(op_receiver *r, void *ctx);
/* The sequence tracker, for op_seqtrack_seed / op_seqtrack_marks (ingest restarts). */
op_seqtrack *op_receiver_seqtrack(op_receiver *r);

#endif
