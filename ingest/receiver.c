/*
 * receiver.c — see receiver.h. One zmq_msg_t per message, no copy before the caller's.
 */
#include "ingest/receiver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct op_receiver {
	void *sock[2]; /* [0] PULL, [1] SUB */
	void *mon;     /* the PULL socket's connection events (ZeroMQ's monitor), or NULL */
	void (*on_peer)(void *ctx, int opened, const char *endpoint, uint64_t closed, uint64_t open);
	op_seqtrack *seq;
	uint32_t max_pulses;
	uint64_t max_bytes;
	op_receiver_stats st;
	void (*on_reject)(void *ctx, const char *reason, int have_id, uint32_t stream, uint64_t sequence);
	void *reject_ctx;
	int has_reserved;
	uint32_t reserved;
};

static void rejected(op_receiver *r, const char *reason, int have_id, uint32_t stream, uint64_t sequence)
{
	if (r->on_reject)
		r->on_reject(r->reject_ctx, reason, have_id, stream, sequence);
}

static int set_common(void *s, const op_receiver_config *cfg)
{
	int linger = 0;
	/* Messages over max_message_bytes are counted as oversize by us; ZeroMQ itself only cuts a
	 * peer off beyond twice that, to bound the memory one message can take. */
	int64_t maxmsg = (int64_t)cfg->max_message_bytes * 2;

	if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) || (cfg->rcvhwm > 0 &&
	    zmq_setsockopt(s, ZMQ_RCVHWM, &cfg->rcvhwm, sizeof(cfg->rcvhwm))) ||
	    (maxmsg > 0 && zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg))))
		return -errno;
	return 0;
}

/*
 * The PULL socket's senders' connections, opened and closed, for the operator: a sender whose
 * message is over ZMQ_MAXMSGSIZE is cut off by ZeroMQ with nothing said otherwise. libzmq sends
 * its monitor's events blocking, holding a lock every socket of the context needs: so the
 * monitor is on only with a reader connected, and that reader's queue has no bound (read at
 * every turn of the ingest loop; one event per connection opened or closed). Without it (it
 * could not be made) ingest runs on, uncounted. Each monitor gets a name of its own: one closed
 * keeps its name until libzmq's reaper has run.
 */
static void open_monitor(op_receiver *r, void *zmq_ctx)
{
	static unsigned serial;
	char mep[96];
	int zero = 0;
	snprintf(mep, sizeof(mep), "inproc://outpost-receiver-monitor-%d-%u", (int)getpid(),
		 __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED));
	if (zmq_socket_monitor(r->sock[0], mep, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0)
		return;
	if ((r->mon = zmq_socket(zmq_ctx, ZMQ_PAIR)) != NULL &&
	    zmq_setsockopt(r->mon, ZMQ_LINGER, &zero, sizeof(zero)) == 0 &&
	    zmq_setsockopt(r->mon, ZMQ_RCVHWM, &zero, sizeof(zero)) == 0 && zmq_connect(r->mon, mep) == 0)
		return;
	zmq_socket_monitor(r->sock[0], NULL, 0); /* no reader: its events would block */
	if (r->mon)
		zmq_close(r->mon);
	r->mon = NULL;
}

int op_receiver_open(void *zmq_ctx, const op_receiver_config *cfg, op_receiver **ret)
{
	op_receiver *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	r->max_pulses = cfg->max_pulses;
	r->max_bytes = cfg->max_message_bytes;
	r->on_reject = cfg->on_reject;
	r->has_reserved = cfg->has_reserved_stream;
	r->reserved = cfg->reserved_stream;
	r->reject_ctx = cfg->reject_ctx;
	rc = op_seqtrack_open(cfg->max_streams ? cfg->max_streams : 1024, cfg->seq_window ? cfg->seq_window : 4096,
			      &r->seq);
	if (rc < 0)
		goto fail;
	if (cfg->pull_endpoint && cfg->pull_endpoint[0]) {
		r->sock[0] = zmq_socket(zmq_ctx, ZMQ_PULL);
		if (!r->sock[0] || (rc = set_common(r->sock[0], cfg)) < 0)
			goto zfail;
		open_monitor(r, zmq_ctx); /* before the bind: no connection comes before it listens */
		r->on_peer = cfg->on_peer;
		if (zmq_bind(r->sock[0], cfg->pull_endpoint) != 0)
			goto zfail;
	}
	if (cfg->sub_endpoint && cfg->sub_endpoint[0]) {
		r->sock[1] = zmq_socket(zmq_ctx, ZMQ_SUB);
		if (!r->sock[1] || (rc = set_common(r->sock[1], cfg)) < 0)
			goto zfail;
		if (zmq_setsockopt(r->sock[1], ZMQ_SUBSCRIBE, "", 0) || zmq_connect(r->sock[1], cfg->sub_endpoint))
			goto zfail;
	}
	if (!r->sock[0] && !r->sock[1]) {
		rc = -EINVAL;
		goto fail;
	}
	*ret = r;
	return 0;
zfail:
	rc = errno ? -errno : -EIO;
fail:
	op_receiver_close(r);
	return rc;
}

void op_receiver_close(op_receiver *r)
{
	if (!r)
		return;
	if (r->mon) {
		zmq_socket_monitor(r->sock[0], NULL, 0);
		zmq_close(r->mon);
	}
	for (int i = 0; i < 2; i++)
		if (r->sock[i])
			zmq_close(r->sock[i]);
	op_seqtrack_close(r->seq);
	free(r);
}

int op_receiver_pollitems(op_receiver *r, zmq_pollitem_t *items, int max)
{
	int n = 0;
	for (int i = 0; i < 2 && n < max; i++)
		if (r->sock[i])
			items[n++] = (zmq_pollitem_t){.socket = r->sock[i], .events = ZMQ_POLLIN};
	return n;
}

void *op_receiver_monitor_socket(op_receiver *r)
{
	return r->mon;
}

void op_receiver_peers(op_receiver *r, void *ctx)
{
	for (int i = 0; r->mon && i < 256; i++) {
		zmq_msg_t ev, addr;
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, r->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		uint16_t id = 0;
		if (zmq_msg_size(&ev) >= 6)
			memcpy(&id, zmq_msg_data(&ev), sizeof(id)); /* host order: event, then a 32-bit value */
		const int more = zmq_msg_more(&ev);
		zmq_msg_close(&ev);
		char ep[256] = "";
		if (more) { /* the endpoint: the bound one for accepted connections */
			zmq_msg_init(&addr);
			if (zmq_msg_recv(&addr, r->mon, 0) >= 0) {
				size_t l = zmq_msg_size(&addr) < sizeof(ep) - 1 ? zmq_msg_size(&addr) : sizeof(ep) - 1;
				memcpy(ep, zmq_msg_data(&addr), l);
				ep[l] = 0;
			}
			zmq_msg_close(&addr);
		}
		if (id == ZMQ_EVENT_ACCEPTED) {
			r->st.connections_opened++;
		} else if (id == ZMQ_EVENT_DISCONNECTED) {
			r->st.connections_closed++;
		} else {
			continue;
		}
		if (r->on_peer)
			r->on_peer(ctx, id == ZMQ_EVENT_ACCEPTED, ep, r->st.connections_closed,
				   r->st.connections_opened - r->st.connections_closed);
	}
}

/* One message (all its parts consumed); returns 1 if handled, 0 if none was waiting. */
static int one(op_receiver *r, int which, op_receiver_cb cb, void *ctx)
{
	zmq_msg_t m;
	op_wire_header h = {0};
	int more, verdict, rc;

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, r->sock[which], ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return errno == EAGAIN ? 0 : -errno;
	}
	r->st.received++;
	r->st.bytes += zmq_msg_size(&m);
	more = zmq_msg_more(&m);
	if (more) {
		/* Consume the rest of a multi-part message: one event per single-part message. */
		while (more) {
			zmq_msg_close(&m);
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, r->sock[which], 0) < 0)
				break;
			more = zmq_msg_more(&m);
		}
		zmq_msg_close(&m);
		r->st.multipart++;
		rejected(r, "multipart", 0, 0, 0);
		return 1;
	}
	const uint8_t *p = zmq_msg_data(&m);
	size_t len = zmq_msg_size(&m);
	if (r->max_bytes && len > r->max_bytes) {
		uint32_t sid = 0;
		uint64_t sq = 0;
		const int named = op_wire_peek_id(p, len, &sid, &sq); /* named when its header is sound */
		r->st.oversize++;
		rejected(r, "oversize", named, sid, sq);
		goto done;
	}
	rc = op_wire_decode(&h, p, len, r->max_pulses);
	if (rc != OP_WIRE_OK) {
		r->st.rejected[-rc]++;
		rejected(r, op_wire_strerror(rc), rc <= OP_WIRE_ELENGTH, h.stream_id, h.sequence);
		goto done;
	}
	if (r->has_reserved && h.stream_id == r->reserved) {
		/* before the sequence accounting: such a message must not take a stream slot, count
		 * gaps, or make its own resend a "duplicate" */
		r->st.reserved_stream++;
		rejected(r, "reserved_stream", 1, h.stream_id, h.sequence);
		goto done;
	}
	verdict = op_seqtrack_observe(r->seq, h.stream_id, h.sequence, h.detector_time_ns);
	if (verdict == OP_SEQ_DUPLICATE) {
		r->st.duplicates++;
		rejected(r, "duplicate", 1, h.stream_id, h.sequence);
		goto done;
	}
	if (verdict == OP_SEQ_TOO_OLD) {
		r->st.too_old++;
		rejected(r, "too_old", 1, h.stream_id, h.sequence);
		goto done;
	}
	if (verdict == OP_SEQ_STREAM_LIMIT) {
		r->st.stream_limit++;
		rejected(r, "stream_limit", 1, h.stream_id, h.sequence);
		goto done;
	}
	if (cb(ctx, &h, p, len, which == 1) != 0) {
		/* not kept: a resend of it must be taken, not refused as a duplicate */
		op_seqtrack_unsee(r->seq, h.stream_id, h.sequence);
		r->st.caller_rejected++;
		rejected(r, "no_memory", 1, h.stream_id, h.sequence);
	} else
		r->st.accepted++;
done:
	zmq_msg_close(&m);
	return 1;
}

long op_receiver_drain(op_receiver *r, size_t max_msgs, op_receiver_cb cb, void *ctx)
{
	size_t done = 0;
	int progress = 1;

	while (done < max_msgs && progress) {
		progress = 0;
		for (int i = 0; i < 2 && done < max_msgs; i++) {
			if (!r->sock[i])
				continue;
			int rc = one(r, i, cb, ctx);
			if (rc < 0)
				return rc;
			if (rc > 0) {
				done++;
				progress = 1;
			}
		}
	}
	return (long)done;
}

void op_receiver_get_stats(const op_receiver *r, op_receiver_stats *out)
{
	*out = r->st;
	op_seqtrack_get_stats(r->seq, &out->seq);
}

op_seqtrack *op_receiver_seqtrack(op_receiver *r)
{
	return r->seq;
}
