/*
 * outpostctl — the operator's tool.
 *
 *   outpostctl [-c FILE] status [--json]   what the appliance is doing, per stage
 *   outpostctl [-c FILE] stop              orderly stop (drains what is in flight)
 *   outpostctl [-c FILE] metrics           the figures in the Prometheus text format
 *   outpostctl [-c FILE] reload            outpostd re-reads the file it was started with and
 *                                          applies it (or keeps running as before and says why);
 *                                          exit 0 applied, 1 not applied. FILE only tells where
 *                                          outpostd's control socket is (paths.run_dir)
 *   outpostctl check-config FILE           every error in FILE, as file:line:col
 *   outpostctl print-defaults              the embedded defaults
 *   outpostctl explain KEY|SECTION         type, unit, default, range, reload, description
 *   outpostctl gpu                         the GPU the network would use and its FP4 path, or why
 *                                          there is none (exit 0: a usable GPU, 1: none)
 *
 * -c names the appliance's configuration so outpostctl finds its control socket (run_dir);
 * without it the embedded default run_dir is used. Exit status: 0 ok, 1 appliance not
 * answering, 2 usage errors, 78 (EX_CONFIG) a configuration that is not valid or not readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/config.h"
#include "appliance/modelfile.h"
#include "appliance/stage.h"
#include "kernels/backend.h"
#include "uplink/curve.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: outpostctl [-c FILE] status [--json] | metrics | reload | stop | ping\n"
		   "       outpostctl [-c FILE] power set POWER [for DURATION] | power clear | power show\n"
		   "                  (an operator's budget over the configured one: 180W, 1.2kW; for 90s, 30m, 2h, 1d)\n"
		   "       outpostctl check-config FILE\n"
		   "       outpostctl keygen NAME          (CURVE keys for the link north: NAME.key, NAME.pub)\n"
		   "       outpostctl print-defaults\n"
		   "       outpostctl explain KEY|SECTION\n"
		   "       outpostctl gpu                  (the GPU infer.backend auto would use, or why none)\n");
}

/* -c FILE: where run_dir came from, for saying so when no appliance is there */
static const char *run_dir_from;

static int request(const op_config *cfg, const char *req, int timeout_ms)
{
	char ep[OP_CFG_STR + 32], sock_path[OP_CFG_STR + 32];

	/* No socket file: nothing listens there. Said at once, with where the path came from (an
	 * edited paths.run_dir takes effect only at outpostd's restart), not after the timeout. */
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", cfg->run_dir);
	if (access(sock_path, F_OK) != 0 && errno == ENOENT) { /* (another error: the connect says it) */
		fprintf(stderr, "outpostctl: no control socket at %s: outpostd is not running with paths.run_dir %s",
			sock_path, cfg->run_dir);
		if (run_dir_from)
			fprintf(stderr, " (from %s; a changed run_dir takes effect only when outpostd restarts)\n",
				run_dir_from);
		else
			fprintf(stderr, " (the default; -c FILE names the appliance's configuration)\n");
		return 1;
	}
	/* Not allowed to write to it (or to reach it): ZeroMQ's connect would fail in its I/O
	 * thread, unseen, and the request wait out its timeout. Said at once, with who may.
	 * Nothing connects to the socket to find out (a probe on the REP socket is a peer the
	 * daemon then has to deal with). */
	if (faccessat(AT_FDCWD, sock_path, W_OK, AT_EACCESS) != 0 && errno == EACCES) { /* as connect sees it */
		struct stat st;
		const struct passwd *pw = stat(sock_path, &st) == 0 ? getpwuid(st.st_uid) : NULL;
		const struct group *gr = pw ? getgrgid(st.st_gid) : NULL;
		fprintf(stderr, "outpostctl: permission denied on the control socket %s", sock_path);
		if (pw && gr)
			fprintf(stderr, " (owner %s, group %s, mode %03o): run outpostctl as root%s%s%s%s", pw->pw_name,
				gr->gr_name, (unsigned)(st.st_mode & 0777), st.st_uid != 0 ? " or as " : "",
				st.st_uid != 0 ? pw->pw_name : "", st.st_mode & S_IWGRP ? ", or as a member of group " : "",
				st.st_mode & S_IWGRP ? gr->gr_name : "");
		else
			fprintf(stderr, " (or on a directory above it): run outpostctl as root or as outpostd's user");
		fputc('\n', stderr);
		return 1;
	}
	void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_REQ);
	int linger = 0, rc = 1;
	zmq_msg_t m;

	op_stage_endpoint(ep, sizeof(ep), cfg, "control.sock");
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
	zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
	if (zmq_connect(sock, ep) != 0 || zmq_send(sock, req, strlen(req), 0) < 0) {
		fprintf(stderr, "outpostctl: cannot reach outpostd at %s: %s\n", ep, zmq_strerror(errno));
		goto out;
	}
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, sock, 0) < 0) {
		fprintf(stderr, "outpostctl: outpostd did not answer at %s within %d ms (is it running?)\n", ep,
			timeout_ms);
		zmq_msg_close(&m);
		goto out;
	}
	fwrite(zmq_msg_data(&m), 1, zmq_msg_size(&m), stdout);
	int refused = zmq_msg_size(&m) >= 6 && !memcmp(zmq_msg_data(&m), "error:", 6);
	if (!strcmp(req, "status-json"))
		fputc('\n', stdout);
	zmq_msg_close(&m);
	rc = refused ? 1 : 0;
	/* an answer that did not reach its reader (a full disk under `metrics > file`, a closed
	 * pipe) is a failure a script must see, not exit 0 over a cut file */
	const int ferr = fflush(stdout) != 0 ? errno : 0;
	if (ferr || ferror(stdout)) {
		fprintf(stderr, "outpostctl: cannot write the answer%s%s\n", ferr ? ": " : "", ferr ? strerror(ferr) : "");
		rc = 1;
	}
out:
	zmq_close(sock);
	zmq_ctx_term(ctx);
	return rc;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	op_config cfg;
	int i = 1;

	if (i + 1 < argc && !strcmp(argv[i], "-c")) {
		config_path = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i++];
	if (!strcmp(cmd, "check-config")) {
		if (i >= argc) {
			usage(stderr);
			return 2;
		}
		op_config_defaults(&cfg);
		int rc = op_config_load_file(&cfg, argv[i], stderr);
		if (rc < 0) {
			fprintf(stderr, "%s: cannot read: %s\n", argv[i], strerror(-rc));
			return 78;
		}
		if (rc > 0) {
			fprintf(stderr, "%s: %d error%s\n", argv[i], rc, rc == 1 ? "" : "s");
			return 78;
		}
		/* the model it names, as outpostd will load it: one it cannot use puts the appliance
		 * in safe mode (LineFit only) */
		if (!strcmp(cfg.infer_method, "fp4") && cfg.infer_model[0]) {
			op_model m;
			char merr[512] = "";
			if (op_model_load(cfg.infer_model, &m, merr, sizeof(merr)) < 0) {
				fprintf(stderr, "%s: infer.model: %s\n%s: the appliance would run in safe mode (LineFit only)\n",
					argv[i], merr[0] ? merr : cfg.infer_model, argv[i]);
				return 78;
			}
			op_model_free(&m);
		}
		printf("%s: ok\n", argv[i]);
		return 0;
	}
	if (!strcmp(cmd, "explain")) {
		if (i >= argc) {
			usage(stderr);
			return 2;
		}
		return op_config_explain(argv[i], stdout) == 0 ? 0 : 2;
	}
	if (!strcmp(cmd, "keygen")) {
		char err[512];
		if (i >= argc) {
			fprintf(stderr, "usage: outpostctl keygen NAME   (writes NAME.key, mode 0600, and NAME.pub)\n");
			return 2;
		}
		if (op_curve_keygen(argv[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "outpostctl keygen: %s\n", err);
			return 1;
		}
		printf("%s.key: the key pair (secret: keep it here, mode 0600)\n%s.pub: the public key (copy it to "
		       "the other side)\n", argv[i], argv[i]);
		return 0;
	}
	if (!strcmp(cmd, "print-defaults")) {
		op_config_print_defaults(stdout);
		return 0;
	}
	if (!strcmp(cmd, "gpu")) {
		op_gpu_info info;
		if (op_backend_probe_cuda(&info) < 0) {
			printf("no usable GPU: %s\nwith infer.backend auto the network runs on the CPU (cpu/%s)\n", info.why,
			       op_fp4_rung_name(op_fp4_rung_best()));
			return 1;
		}
		printf("GPU: %s, compute capability %d.%d, %d SMs, %.1f GiB\nFP4 path: %s\n", info.name, info.cc_major,
		       info.cc_minor, info.sm_count, info.mem_bytes / 1073741824.0, info.why);
		return 0;
	}
	op_config_defaults(&cfg);
	run_dir_from = config_path;
	if (config_path) {
		int rc = op_config_load_file(&cfg, config_path, NULL);
		if (rc < 0) {
			fprintf(stderr, "%s: cannot read: %s\n", config_path, strerror(-rc));
			return 78;
		}
		if (rc > 0) { /* a file being edited: still find the appliance through the keys that are valid */
			op_config_defaults(&cfg);
			op_config_load_file_partial(&cfg, config_path);
			if (strcmp(cmd, "reload"))
				fprintf(stderr, "outpostctl: %s has errors (see outpostctl check-config %s)\n", config_path,
					config_path);
		}
	}
	if (!strcmp(cmd, "status")) {
		int json = i < argc && !strcmp(argv[i], "--json");
		return request(&cfg, json ? "status-json" : "status", 3000);
	}
	if (!strcmp(cmd, "stop"))
		return request(&cfg, "stop", 3000);
	if (!strcmp(cmd, "metrics"))
		return request(&cfg, "metrics", 3000);
	if (!strcmp(cmd, "reload"))
		return request(&cfg, "reload", 10000);
	if (!strcmp(cmd, "ping"))
		return request(&cfg, "ping", 1000);
	if (!strcmp(cmd, "power")) {
		char req[64] = "power";
		for (int k = i; k < argc; k++) {
			size_t m = strlen(req);
			if (m + 1 + strlen(argv[k]) >= sizeof(req)) {
				fprintf(stderr, "outpostctl: power: request too long\n");
				return 2;
			}
			snprintf(req + m, sizeof(req) - m, " %s", argv[k]);
		}
		return request(&cfg, req, 3000);
	}
	fprintf(stderr, "outpostctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
