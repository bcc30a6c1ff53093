/*
 * outpost-sim — the detector simulator and replayer.
 *
 *   outpost-sim [--endpoint EP] [--pub] [--count N] [--rate HZ] [--stream ID] [--first-seq N]
 *               [--seed S] [--kind track|cascade|mix] [--max-pulses N]
 *               [--replay PULSES.csv [--truth TRUTH.csv]] [--truth-out FILE.csv]
 *
 * PUSH (default, connects; lossless: blocks at the receiver's high-water mark) or PUB (binds;
 * lossy, a live view). --rate 0 sends as fast as the receiver takes them; otherwise events are
 * paced against absolute deadlines (no drift). Prints one JSON line at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "ingest/geometry.h"
#include "ingest/replay.h"
#include "ingest/simgen.h"
#include "ingest/wire.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: outpost-sim [--endpoint EP] [--pub] [--count N] [--rate HZ] [--stream ID]\n"
			"                   [--first-seq N] [--seed S] [--kind track|cascade|mix] [--max-pulses N]\n"
			"                   [--replay PULSES.csv [--truth TRUTH.csv]] [--truth-out FILE.csv]\n");
}

int main(int argc, char **argv)
{
	const char *endpoint = "tcp://127.0.0.1:5555", *replay_path = NULL, *truth_path = NULL, *truth_out = NULL;
	const char *kind = "mix";
	int pub = 0;
	uint64_t count = 10000, first_seq = 0, seed = 1;
	uint32_t stream = 1, max_pulses = 5000;
	double rate = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--pub")) {
			pub = 1;
			continue;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--endpoint"))
			endpoint = v;
		else if (!strcmp(a, "--count"))
			count = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			rate = atof(v);
		else if (!strcmp(a, "--stream"))
			stream = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--first-seq"))
			first_seq = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--kind"))
			kind = v;
		else if (!strcmp(a, "--max-pulses"))
			max_pulses = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--replay"))
			replay_path = v;
		else if (!strcmp(a, "--truth"))
			truth_path = v;
		else if (!strcmp(a, "--truth-out"))
			truth_out = v;
		else {
			fprintf(stderr, "outpost-sim: unknown option '%s'\n", a);
			usage();
			return 2;
		}
	}
	if (strcmp(kind, "track") && strcmp(kind, "cascade") && strcmp(kind, "mix")) {
		fprintf(stderr, "outpost-sim: --kind must be track, cascade or mix\n");
		return 2;
	}
	if (rate < 0 || max_pulses == 0) {
		fprintf(stderr, "outpost-sim: --rate must be >= 0 and --max-pulses > 0\n");
		return 2;
	}

	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	op_replay *rep = NULL;
	char err[512];
	if (replay_path) {
		int rc = op_replay_open(replay_path, truth_path, &rep, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "outpost-sim: %s\n", err);
			return 2;
		}
	} else {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		op_simgen_config sc = {.seed = seed,
				       .track_fraction = !strcmp(kind, "track") ? 1.0 : !strcmp(kind, "cascade") ? 0.0 : 0.5,
				       .max_pulses = max_pulses, .noise_hz = 500,
				       .start_time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec};
		if (op_geometry_default(&geo) < 0 || op_simgen_open(&sc, geo, &gen) < 0) {
			fprintf(stderr, "outpost-sim: cannot set up the simulator\n");
			return 2;
		}
	}
	FILE *tf = NULL;
	if (truth_out) {
		tf = fopen(truth_out, "w");
		if (!tf) {
			fprintf(stderr, "outpost-sim: cannot write %s: %s\n", truth_out, strerror(errno));
			return 2;
		}
		fprintf(tf, "stream,sequence,kind,dir_x,dir_y,dir_z,zenith_rad,azimuth_rad,energy_gev,n_pulses,"
			    "detector_time_ns\n");
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, pub ? ZMQ_PUB : ZMQ_PUSH);
	int linger = pub ? 2000 : -1, hwm = 10000;
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	if ((pub ? zmq_bind(sock, endpoint) : zmq_connect(sock, endpoint)) != 0) {
		fprintf(stderr, "outpost-sim: cannot %s %s: %s\n", pub ? "bind" : "connect to", endpoint,
			zmq_strerror(errno));
		return 2;
	}
	if (pub)
		usleep(300000); /* let subscribers connect: PUB drops what nobody hears */

	size_t cap = op_wire_encoded_size(max_pulses > 200000 ? max_pulses : 200000);
	uint8_t *buf = malloc(cap);
	uint64_t sent = 0, pulses = 0, base_time = 0;
	double t0 = mono();
	if (!buf)
		return 2;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	base_time = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	for (uint64_t i = 0; i < count && !stop; i++) {
		op_wire_header h = {.stream_id = stream, .sequence = first_seq + i};
		op_sim_truth truth;
		const op_pulse *p;
		uint32_t n;
		if (rep) {
			p = op_replay_event(rep, (uint32_t)(i % op_replay_count(rep)), &n, &truth);
			if (n > max_pulses)
				n = max_pulses;
			h.flags = OP_WIRE_F_REPLAY;
			h.detector_time_ns = base_time + i * 370370; /* 2.7 kHz */
		} else {
			op_sim_event ev;
			op_simgen_next(gen, &ev);
			p = ev.pulses;
			n = ev.n;
			truth = ev.truth;
			h.flags = OP_WIRE_F_SIMULATED;
			h.detector_time_ns = ev.detector_time_ns;
		}
		h.pulse_count = n;
		if (op_wire_encoded_size(n) > cap) {
			fprintf(stderr, "outpost-sim: event with %u pulses is too large\n", n);
			return 2;
		}
		long len = op_wire_encode(buf, cap, &h, p);
		if (rate > 0) {
			double due = t0 + (double)i / rate, now = mono();
			if (due > now) {
				struct timespec d = {.tv_sec = (time_t)(due - now), .tv_nsec = (long)(fmod(due - now, 1.0) * 1e9)};
				nanosleep(&d, NULL);
			}
		}
		while (zmq_send(sock, buf, (size_t)len, 0) < 0) {
			if (errno != EINTR || stop) {
				if (!stop)
					fprintf(stderr, "outpost-sim: send failed: %s\n", zmq_strerror(errno));
				goto done;
			}
		}
		sent++;
		pulses += n;
		if (tf)
			fprintf(tf, "%u,%" PRIu64 ",%s,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%u,%" PRIu64 "\n", stream, h.sequence,
				truth.kind == OP_SIM_TRACK ? "track" : "cascade", truth.dir[0], truth.dir[1], truth.dir[2],
				truth.zenith_rad, truth.azimuth_rad, truth.energy_gev, n, h.detector_time_ns);
	}
done:;
	double secs = mono() - t0;
	zmq_close(sock); /* waits (linger) until everything queued is delivered */
	zmq_ctx_term(ctx);
	if (tf)
		fclose(tf);
	printf("{\"events_sent\":%" PRIu64 ",\"pulses_sent\":%" PRIu64 ",\"seconds\":%.3f,\"rate_hz\":%.1f}\n", sent,
	       pulses, secs, secs > 0 ? (double)sent / secs : 0.0);
	free(buf);
	op_simgen_close(gen);
	op_geometry_close(geo);
	op_replay_close(rep);
	return 0;
}
