/*
 * outpostd — the appliance daemon.
 *
 *   outpostd [-c FILE]          run the appliance (embedded defaults without -c)
 *   outpostd --print-defaults   the embedded defaults as a commented YAML file
 *   outpostd --stage NAME -c F [--safe-mode]
 *                               (internal) run one pipeline stage; started by the supervisor
 *
 * A broken configuration never runs as such: every error is printed with file:line:col. If an
 * earlier run left its configuration behind (config-last-good.yaml in the state directory),
 * outpostd starts on that one and says so everywhere; otherwise the exit status is 78
 * (EX_CONFIG), and the unit's RestartPreventExitStatus=78 keeps systemd from retrying (or
 * rebooting) on an error only an operator can fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/config.h"
#include "appliance/modelfile.h"
#include "appliance/log.h"
#include "appliance/stage.h"
#include "appliance/supervisor.h"

/*
 * A broken file at start, on a box nobody may reach before the next season: if an earlier run
 * left its configuration in <state_dir>/config-last-good.yaml (the state_dir the broken file
 * names, if it names one it can parse, else the default), run on that, loudly, rather than not
 * at all. A reload of the fixed file takes over from it. 0 with *cfg set, or -1.
 */
static int last_good(const char *config_path, int load_rc, op_config *cfg)
{
	op_config partial, good;
	char path[OP_CFG_STR + 32];

	op_config_defaults(&partial);
	op_config_load_file_partial(&partial, config_path);
	snprintf(path, sizeof(path), "%s/config-last-good.yaml", partial.state_dir);
	op_config_defaults(&good);
	if (access(path, R_OK) != 0 || op_config_load_file(&good, path, NULL) != 0)
		return -1;
	if (load_rc < 0) /* missing or unreadable (its owner or mode after an edit): no errors above */
		fprintf(stderr, "outpostd: cannot read %s: %s; starting on the last configuration that ran, %s, "
				"instead: make it readable to outpostd and reload\n",
			config_path, strerror(-load_rc), path);
	else
		fprintf(stderr, "outpostd: %s has errors (above); starting on the last configuration that ran, "
				"%s, instead: fix the file, check it (outpostctl check-config) and reload\n",
			config_path, path);
	*cfg = good;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: outpostd [-c FILE] | --print-defaults | --version\n"
		   "  -c FILE           configuration (YAML); without it the embedded defaults run\n"
		   "  --print-defaults  print the embedded defaults as YAML and exit\n");
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *stage = NULL;
	int safe_mode = 0;
	op_config cfg;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			config_path = argv[++i];
		} else if (!strcmp(argv[i], "--stage") && i + 1 < argc) {
			stage = argv[++i];
		} else if (!strcmp(argv[i], "--safe-mode")) {
			safe_mode = 1; /* internal: given by the supervisor with --stage */
		} else if (!strcmp(argv[i], "--print-defaults")) {
			op_config_print_defaults(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("outpostd %s\n", OUTPOST_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "outpostd: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}

	op_config_defaults(&cfg);
	int fallback = 0;
	if (config_path) {
		int rc = op_config_load_file(&cfg, config_path, stderr);
		if (rc != 0 && !stage && last_good(config_path, rc, &cfg) == 0) {
			fallback = rc < 0 ? rc : 1; /* the supervisor says so in the log, status, STATUS= and metrics */
		} else if (rc != 0) {
			if (rc < 0)
				fprintf(stderr, "outpostd: cannot read %s: %s\n", config_path, strerror(-rc));
			else
				fprintf(stderr, "outpostd: %d error%s in %s; not starting\n", rc, rc == 1 ? "" : "s",
					config_path);
			return 78;
		}
	}
	if (stage)
		return op_stage_main(stage, &cfg, config_path, safe_mode);
	/* A model file that cannot be used (missing, cut short by an interrupted copy, a bad block)
	 * does not stop the appliance: it would stay down until someone logs in, and the infer
	 * stage alone would fail over and over. The supervisor runs in safe mode instead, LineFit
	 * for every event, rows flagged, and says why in the journal, status and an alert north. */
	char merr[512] = "";
	if (!strcmp(cfg.infer_method, "fp4") && cfg.infer_model[0]) {
		op_model m;
		if (op_model_load(cfg.infer_model, &m, merr, sizeof(merr)) < 0) {
			if (!merr[0])
				snprintf(merr, sizeof(merr), "model file %s cannot be loaded", cfg.infer_model);
			fprintf(stderr, "outpostd: %s: infer.model: %s; starting in safe mode\n",
				config_path ? config_path : "(defaults)", merr);
		} else {
			op_model_free(&m);
			merr[0] = 0;
		}
	}
	op_log_init("outpostd", cfg.log_level);
	return op_supervisor_run(&cfg, config_path, fallback, merr[0] ? merr : NULL);
}
