/*
 * replay.h — events from the public IceCube files (../shared/data/icecube/): the pulse files
 * (`event_no,string,dom_number,dom_type,x_m,y_m,z_m,t_ns,charge_pe,hlc`) and the Prometheus
 * photon file (`event_no,string_id,sensor_id,x_m,y_m,z_m_icecube,t_ns`, one 1-pe pulse per
 * photon), with their truth files. Sensor id = (string − 1)·60 + (DOM − 1); the photon file's
 * sensor_id is the DOM number within the string. Times become relative to each event's first
 * pulse. Sensors outside IceCube-86 (IceCube-Upgrade modules) keep their computed id.
 */
#ifndef OP_INGEST_REPLAY_H
#define OP_INGEST_REPLAY_H
#include <stddef.h>
#include <stdint.h>

#include "ingest/simgen.h"
#include "ingest/wire.h"

typedef struct op_replay op_replay;

/* truth_csv may be NULL. On a malformed file: -EINVAL and "file:line: why" in err. */
int op_replay_open(const char *pulses_csv, const char *truth_csv, op_replay **ret, char *err, size_t errcap);
void op_replay_close(op_replay *r);
uint32_t op_replay_count(const op_replay *r);
/* Event i (0-based, in file order): its pulses, their count, and truth (kind, energy, angles). */
const op_pulse *op_replay_event(const op_replay *r, uint32_t i, uint32_t *n, op_sim_truth *truth);

#endif
