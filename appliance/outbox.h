/*
 * outbox.h — alerts and telemetry for north: small JSON files placed in the uplink's class
 * directories (uplink/sender.h) with their SHA-256 sidecar, durably, the way the store places
 * segments: data to a temporary name and fsynced, the sidecar written and fsynced, then the
 * data renamed into place and the directory fsynced. The uplink ships alerts before anything
 * else and telemetry by its share.
 */
#ifndef OP_APPLIANCE_OUTBOX_H
#define OP_APPLIANCE_OUTBOX_H
#include <stddef.h>

#include "appliance/config.h"

/* An alert: kind (a word: "restart_budget", "safe_mode", "power_failsafe", …) and a sentence.
 * At most one per kind every 10 minutes (alerts are never evicted: a flapping cause must not
 * fill the disk); those held back are counted in the next one ("held_back"). 0 (1: queued, but
 * its directory could not be synced), or a negative errno (logged by the caller). */
int op_outbox_alert(const op_config *cfg, const char *kind, const char *text);
/* The alerts held back and not yet told of, as a JSON object {"kind": count, …} ("{}" when
 * none) in out; its length. */
size_t op_outbox_alerts_held(char *out, size_t cap);
/* A telemetry snapshot: json is a whole JSON document. */
int op_outbox_telemetry(const op_config *cfg, const char *json, size_t len);

#endif
