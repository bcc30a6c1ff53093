/*
 * bench_e2e.c — end-to-end throughput: outpost-sim → outpostd (ingest → infer → store) →
 * sealed segments in outbox/, through the real programs, against a baseline of the same
 * simulator sending the same events to a bare PULL socket in this process (what the
 * simulator and ZeroMQ alone can do on this machine, measured in the same run).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "tools/bench/bench.h"

extern char **environ;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t start(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* "status-json" from the daemon; the value of "stored", or -1. */
static long long stored(void *zctx, const char *ep)
{
	void *s = zmq_socket(zctx, ZMQ_REQ);
	int t = 2000, linger = 0;
	char buf[65536];
	long long v = -1;

	zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof(t));
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_connect(s, ep);
	if (zmq_send(s, "status-json", 11, 0) == 11) {
		int n = zmq_recv(s, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n < (int)sizeof(buf) - 1 ? n : (int)sizeof(buf) - 1] = 0;
			char *p = strstr(buf, "\"stored\":");
			if (p)
				v = atoll(p + 9);
		}
	}
	zmq_close(s);
	return v;
}

int op_bench_e2e(int argc, char **argv)
{
	long events = 50000;
	char dir[] = "/tmp/outpost-bench-e2e.XXXXXX";
	char exe[PATH_MAX], bindir[PATH_MAX], cfg[PATH_MAX + 32], log[PATH_MAX + 32], path[PATH_MAX + 64];
	char ep[64], sim[PATH_MAX + 32], count[32], control[PATH_MAX + 64];
	int port = 24000 + (int)(getpid() % 20000);
	void *zctx = zmq_ctx_new();

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--events") && i + 1 < argc)
			events = atol(argv[++i]);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || !mkdtemp(dir))
		return 1;
	exe[n] = 0;
	snprintf(bindir, sizeof(bindir), "%s", exe);
	*strrchr(bindir, '/') = 0;
	snprintf(sim, sizeof(sim), "%s/outpost-sim", bindir);
	snprintf(count, sizeof(count), "%ld", events);
	snprintf(log, sizeof(log), "%s/log.txt", dir);

	/* Baseline: the simulator into a bare PULL socket that only receives. */
	void *pull = zmq_socket(zctx, ZMQ_PULL);
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
	if (zmq_bind(pull, ep) != 0) {
		fprintf(stderr, "bench e2e: cannot bind %s: %s\n", ep, zmq_strerror(errno));
		return 1;
	}
	char *sargv[] = {sim, "--endpoint", ep, "--count", count, "--kind", "mix", NULL};
	double t0 = now_s();
	pid_t sp = start(sargv, log);
	long got = 0;
	zmq_msg_t m;
	zmq_msg_init(&m);
	while (got < events && zmq_msg_recv(&m, pull, 0) >= 0)
		got++;
	double base_s = now_s() - t0;
	zmq_msg_close(&m);
	waitpid(sp, NULL, 0);
	zmq_close(pull);

	/* The appliance: same simulator, same events, until all are sealed into outbox/. */
	snprintf(cfg, sizeof(cfg), "%s/outpost.yaml", dir);
	FILE *f = fopen(cfg, "w");
	if (!f)
		return 1;
	fprintf(f, "paths:\n  state_dir: %s/state\n  run_dir: %s/run\n"
		   "ingest:\n  pull_endpoint: tcp://127.0.0.1:%d\n"
		   "store:\n  rotate_age: 1s\n"
		   "uplink:\n  north_endpoint: \"\"\n"
		   "log:\n  level: warning\n",
		dir, dir, port + 1);
	fclose(f);
	snprintf(path, sizeof(path), "%s/outpostd", bindir);
	char *dargv[] = {path, "-c", cfg, NULL};
	pid_t dp = start(dargv, log);
	snprintf(control, sizeof(control), "ipc://%s/run/control.sock", dir);
	for (int i = 0; i < 200 && stored(zctx, control) < 0; i++)
		usleep(50000);
	snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port + 1);
	t0 = now_s();
	sp = start(sargv, log);
	long long s = 0;
	double sent_s = 0;
	int status;
	while ((s = stored(zctx, control)) < events) {
		if (!sent_s && waitpid(sp, &status, WNOHANG) == sp)
			sent_s = now_s() - t0;
		if (now_s() - t0 > 600) {
			fprintf(stderr, "bench e2e: gave up: %lld of %ld stored; see %s\n", s, events, log);
			break;
		}
		usleep(20000);
	}
	double e2e_s = now_s() - t0;
	if (!sent_s) {
		waitpid(sp, NULL, 0);
		sent_s = now_s() - t0;
	}
	kill(dp, SIGTERM);
	waitpid(dp, NULL, 0);
	zmq_ctx_term(zctx);

	printf("{\"bench\":\"e2e\",\"events\":%ld,\"baseline_sim_to_pull_eps\":%.0f,\"ingest_accept_eps\":%.0f,"
	       "\"sealed_eps\":%.0f,\"ratio_sealed_to_baseline\":%.3f,\"note\":\"sealed includes up to one "
	       "rotate_age (1 s) of waiting for the last seal\"}\n",
	       events, (double)events / base_s, (double)events / sent_s, (double)events / e2e_s,
	       base_s / e2e_s);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (s >= events && system(path) != 0)
		return 1;
	return s >= events ? 0 : 1;
}
