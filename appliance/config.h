/*
 * config.h — outpost's one configuration, loaded from YAML through a declarative schema table.
 *
 * Every key has a type, unit, bounds, default and one-line description in the table in
 * config.c; the loader, `outpostctl check-config`, `outpostd --print-defaults` and
 * docs/configuration.md all come from that table. With no file, the embedded defaults run
 * the appliance. Errors point at file:line:col and show the line with a caret.
 */
#ifndef OP_APPLIANCE_CONFIG_H
#define OP_APPLIANCE_CONFIG_H
#include <stdint.h>
#include <stdio.h>

#define OP_CFG_STR 256

typedef struct op_config {
	/* site */
	char site_name[64];
	/* paths */
	char state_dir[OP_CFG_STR]; /* segments/, outbox/, state/ live under it */
	char run_dir[OP_CFG_STR];   /* control socket and the stages' ipc sockets */
	/* ingest */
	char ingest_pull[OP_CFG_STR]; /* ZeroMQ endpoint the PULL socket binds ("" = none) */
	char ingest_sub[OP_CFG_STR];  /* PUB endpoint to subscribe to for a live view ("" = none) */
	uint32_t ingest_max_pulses;
	uint64_t ingest_max_message_bytes;
	uint32_t ingest_window_events; /* accepted events held until durable (resend window) */
	uint64_t ingest_window_bytes;  /* … and the bytes they may take */
	uint64_t ingest_resend_after_ns;
	uint32_t ingest_rcvhwm;
	/* infer */
	char infer_method[32]; /* "fp4" or "linefit" */
	char infer_model[OP_CFG_STR];
	char infer_backend[8]; /* "auto", "cpu" or "cuda" */
	uint32_t infer_threads;
	int infer_charge_weighted;
	int infer_trim;
	uint32_t infer_batch_events;
	/* store */
	uint64_t store_rotate_rows;
	uint64_t store_rotate_bytes;
	uint64_t store_rotate_age_ns;
	int store_deflate_level;
	uint32_t store_chunk_rows;
	/* uplink */
	char uplink_north[OP_CFG_STR]; /* north receiver endpoint ("" = uplink off) */
	uint64_t uplink_chunk_bytes;
	uint64_t uplink_timeout_ns;
	uint64_t uplink_retry_ns;
	uint64_t uplink_rate_bps;                 /* cap on the wire (0 = none) */
	uint64_t uplink_daily_quota;              /* bytes per UTC day (0 = none) */
	uint64_t uplink_alert_reserve;            /* of the quota, bytes only alerts may spend */
	uint64_t uplink_telemetry_ns;             /* status snapshot north this often (0 = never) */
	char uplink_windows[256];                 /* "HH:MM-HH:MM; …" UTC ("" = always) */
	uint64_t uplink_disk_reserve;             /* bytes kept free by evicting (0 = none) */
	uint64_t uplink_max_age_ns;               /* files older than this are evicted (0 = never) */
	uint32_t uplink_bulk_share_pct, uplink_telemetry_share_pct;
	char uplink_curve_key[OP_CFG_STR];        /* this appliance's .key ("" = plaintext) */
	char uplink_north_public_key[OP_CFG_STR]; /* north's .pub */
	/* supervisor */
	uint64_t watchdog_stage_deadline_ns; /* a stage silent this long is restarted */
	uint32_t restart_burst;              /* restarts allowed per restart_interval */
	uint64_t restart_interval_ns;
	uint32_t restart_alert_daily;        /* more failures of one stage in 24 h: an alert north */
	uint64_t restart_backoff_ns;         /* first delay before a restart, doubles */
	uint64_t restart_backoff_max_ns;     /* ... up to this */
	uint32_t safe_mode_after;            /* unstable starts in a row before safe mode (0 = never) */
	uint64_t stable_after_ns;            /* healthy this long: the start counter goes back to 0 */
	uint64_t safe_mode_retry_ns;         /* safe mode, healthy this long: try full mode again */
	int fault_injection;                 /* tests only: stages obey fault signals */
	char log_level[16];                  /* error, warning, info, debug */
	char metrics_textfile[OP_CFG_STR];   /* node_exporter textfile collector file ("" = none) */
	uint64_t metrics_interval_ns;
	/* power (power/governor.h) */
	uint64_t power_budget_mw;          /* 0: no budget (measure and report only) */
	char power_schedule[512];          /* "[MM-DD..MM-DD] [HH:MM-HH:MM] POWER; …" */
	uint64_t power_window_ns, power_period_ns;
	char power_sensors[64];            /* "auto", or a list of nvml, rapl, hwmon, meter, sim */
	char power_hwmon_devices[128];
	char power_meter_endpoint[OP_CFG_STR];
	char power_sysfs_root[OP_CFG_STR];
	uint32_t power_min_duty_pct, power_min_batch, power_min_clock_pct, power_min_limit_pct;
	uint64_t power_idle_mw, power_stuck_after_ns;
	uint64_t power_sim_idle_mw, power_sim_full_mw, power_sim_noise_mw;
	uint32_t power_sim_rate;
} op_config;

/* Fill every field with its embedded default. */
void op_config_defaults(op_config *c);
/*
 * Load YAML over the defaults. Every error is written to diag (may be NULL) as
 * "name:line:col: message" plus the offending line and a caret; all errors are found in one
 * pass. Returns 0, the number of errors (> 0), or a negative errno if the file can't be read.
 * On any error *c is left exactly as it was.
 */
int op_config_load_file(op_config *c, const char *path, FILE *diag);
/* A size as the file writes one ("65536", "512MiB", "2GiB", "2GB") into *out: 0, or -1 */
int op_config_parse_size(const char *s, uint64_t *out);
/* As op_config_load_file, but every valid key is applied even when others are not (silently):
 * for outpostctl, to find the running appliance's sockets through a file being edited. */
int op_config_load_file_partial(op_config *c, const char *path);
int op_config_load_string(op_config *c, const char *yaml, size_t len, const char *name, FILE *diag);
/* The defaults as a commented YAML file (outpostd --print-defaults). */
void op_config_print_defaults(FILE *out);
/* The effective configuration as YAML. */
void op_config_print(const op_config *c, FILE *out);
/* 16 hex chars identifying the effective configuration (written into every segment). */
void op_config_hash(const op_config *c, char hex[17]);
/* The reference table of every key, as Markdown (docs/configuration.md). */
void op_config_print_docs(FILE *out);
/* `outpostctl explain KEY|SECTION`: what the schema says of it. 0, or -ENOENT (with a
 * "did you mean" written to out). */
int op_config_explain(const char *name, FILE *out);
/* The keys whose values differ between a and b, as "a.b, c.d (restart), …" in changed;
 * *needs_restart is 1 when one of them cannot be applied by a reload. Returns how many. */
int op_config_diff(const op_config *a, const op_config *b, char *changed, size_t cap, int *needs_restart);

#endif
