/*
 * stage.h — what every pipeline stage process shares: its sockets' names, its report to the
 * supervisor, and the messages that pass between stages.
 *
 * Stages (ARCHITECTURE.md "Data flow"): ingest → infer → store, and uplink beside them.
 * Each is a child process of outpostd (the same binary, re-executed with --stage NAME), so a
 * crash costs a restart of that stage only. Between stages (all ZeroMQ ipc:// in run_dir):
 *
 *   ingest.PUSH ──▶ infer.sock (infer binds PULL)    2 frames: serial u64 | wire message
 *   infer.PUSH  ──▶ store.sock (store binds PULL)    2 frames: op_stage_model | n × op_stage_result
 *   store.PUSH  ──▶ ack.sock   (ingest binds PULL)   1 frame: n × serial u64 (durable now)
 *   outpostd.PUSH ─▶ ingest-ctl.sock (ingest binds)  "resend": a stage after ingest restarted;
 *                                                    "probe": send the start-up probe
 *   every stage.PUSH ─▶ stats.sock (outpostd binds)  text report, every 250 ms and at exit
 *
 * Delivery is at-least-once (invariant 2): ingest keeps every accepted event until the store
 * acknowledges its serial as durable (sealed into outbox/), resends on request or after a
 * backstop timeout, and the store deduplicates by (stream, sequence).
 */
#ifndef OP_APPLIANCE_STAGE_H
#define OP_APPLIANCE_STAGE_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "appliance/config.h"
#include "kernels/model.h"
#include "uplink/segment.h"

#define OP_STAGE_REPORT_NS 250000000ull
/* The most a report holds: ingest's sequence marks, up to 4,096 streams of up to about 160
 * bytes each (seven numbers of up to 20 digits), 650 KB, with room to spare (256 KiB cut a full
 * table's marks short) */
#define OP_REPORT_CAP (1024 * 1024)

/*
 * The start-up probe: READY=1 goes to systemd only after one event has gone end to end.
 * On the supervisor's "probe" request ingest sends a fixed synthetic event (a down-going
 * track on one string) on the reserved stream OP_PROBE_STREAM with a serial that has
 * OP_PROBE_SERIAL_BIT set. Infer reconstructs it like any event; the store checks that the
 * result is finite and acknowledges it without writing it (it is not science data and is
 * never counted as accepted or stored). Real events on the reserved stream are rejected.
 */
#define OP_PROBE_STREAM 0xffffffffu
#define OP_PROBE_SERIAL_BIT (1ull << 63)

/* infer → store: each message is two frames, an op_stage_model naming the model that made the
 * rows (each segment's `model` attribute comes from it), then the rows as op_stage_result. */
typedef struct op_stage_model {
	uint32_t model_id;
	char name[OP_MODEL_MAX_NAME];
} op_stage_model;

typedef struct op_stage_result {
	uint64_t serial;
	op_result_row row;
} op_stage_result;

typedef struct op_stage_ctx {
	const op_config *cfg;
	const char *config_path; /* the file cfg was read from (the supervisor's effective.yaml), or NULL */
	const char *name;
	void *zctx;
	void *stats_sock;
	uint64_t incarnation_ns; /* CLOCK_REALTIME at start: tells incarnations apart */
	pid_t supervisor_pid;    /* the parent at start: getppid() differs once the supervisor died */
	int safe_mode;           /* infer: the network is off, LineFit only, rows flagged */
	uint64_t last_report_ns;
	char *report;            /* report being built */
	size_t report_len, report_cap;
} op_stage_ctx;

extern volatile sig_atomic_t op_stage_stop;

/* Serials travel between stages as 8 little-endian bytes. */
static inline void op_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t op_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint64_t op_now_ns(void);      /* CLOCK_MONOTONIC */
uint64_t op_realtime_ns(void); /* CLOCK_REALTIME */

/* ipc://<run_dir>/<sock> */
void op_stage_endpoint(char *out, size_t cap, const op_config *cfg, const char *sock);

/* Run stage `name` until asked to stop. Returns the process exit status. */
int op_stage_main(const char *name, const op_config *cfg, const char *config_path, int safe_mode);

/* Report building: begin, add counters (monotone, 'c') and gauges ('g'), send. */
void op_report_begin(op_stage_ctx *s, uint64_t progress, int idle);
void op_report_counter(op_stage_ctx *s, const char *key, uint64_t v);
void op_report_gauge(op_stage_ctx *s, const char *key, double v);
/* Any other line: "<tag> <text>" (ingest's sequence marks: "m " and the seven numbers of an
 * op_seqtrack_mark, stage_ingest.c add_mark). */
void op_report_line(op_stage_ctx *s, const char *tag, const char *text);
void op_report_send(op_stage_ctx *s);
/* 1 when a report is due now (every OP_STAGE_REPORT_NS). */
int op_report_due(op_stage_ctx *s, uint64_t now_ns);

int op_stage_ingest(op_stage_ctx *s);
int op_stage_infer(op_stage_ctx *s);
int op_stage_store(op_stage_ctx *s);
int op_stage_uplink(op_stage_ctx *s);

#endif
