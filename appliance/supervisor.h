/*
 * supervisor.h — outpostd's parent process: starts the stages, watches them, restarts them,
 * answers outpostctl, talks to systemd.
 */
#ifndef OP_APPLIANCE_SUPERVISOR_H
#define OP_APPLIANCE_SUPERVISOR_H
#include "appliance/config.h"

/* Runs until SIGTERM/SIGINT or `outpostctl stop`. config_path may be NULL (embedded defaults).
 * config_fallback: config_path had errors (> 0) or could not be read (-errno), and cfg is the
 * last good configuration instead.
 * model_error: NULL, or why infer.model cannot be used; then the appliance runs in safe mode
 * (LineFit for every event, rows flagged) until it is restarted with a usable model.
 * Returns the process exit status. */
int op_supervisor_run(const op_config *cfg, const char *config_path, int config_fallback, const char *model_error);

#endif
