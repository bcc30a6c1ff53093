/*
 * powerctl.h — the power governor wired into the supervisor: the sensors the configuration
 * names, the budget now (an operator's override, else the schedule, else power.budget), one
 * governor step per period, the setting sent to the infer stage (infer-ctl.sock) and to NVML,
 * and the figures for status, metrics and the log.
 *
 * The override (`outpostctl power set 180W [for 2h]`) is kept in state_dir/power-override so a
 * restart does not forget it; `outpostctl power clear` ends it (as does its expiry).
 */
#ifndef OP_APPLIANCE_POWERCTL_H
#define OP_APPLIANCE_POWERCTL_H
#include <stddef.h>
#include <stdint.h>

#include "appliance/config.h"

typedef struct op_powerctl op_powerctl;

/* What the supervisor knows of the infer stage (cumulative over its incarnations). */
typedef struct op_power_infer {
	double events, work_ns, wait_ns;
	int reported; /* a live infer process has reported */
} op_power_infer;

int op_powerctl_open(op_powerctl **out, const op_config *cfg, void *zctx);
void op_powerctl_close(op_powerctl *p); /* GPU settings restored */
void op_powerctl_reconfigure(op_powerctl *p, const op_config *cfg);
void op_powerctl_tick(op_powerctl *p, uint64_t now_ns, const op_power_infer *inf);
/* "set 180W [for 2h]", "clear", "show": the reply (one or more lines) in reply. */
void op_powerctl_command(op_powerctl *p, const char *args, char *reply, size_t cap);
/* Status lines ("power    …\n"), metrics (Prometheus text), JSON members (no braces). */
void op_powerctl_status(op_powerctl *p, char *out, size_t cap);
void op_powerctl_metrics(op_powerctl *p, char *out, size_t cap);
void op_powerctl_json(op_powerctl *p, char *out, size_t cap);
/* One short phrase for systemd's STATUS= ("" when there is nothing to say). */
const char *op_powerctl_brief(op_powerctl *p);

#endif
