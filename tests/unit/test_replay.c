/*
 * test_replay.c — the public IceCube files read by the replayer: event and pulse counts, the
 * sensor id mapping, times relative to the first pulse, truth, and clear errors for bad files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/replay.h"
#include "unit/check.h"

static uint32_t total(op_replay *r)
{
	uint32_t n, s = 0;
	for (uint32_t i = 0; i < op_replay_count(r); i++) {
		op_replay_event(r, i, &n, NULL);
		s += n;
	}
	return s;
}

int main(void)
{
	const char *dir = getenv("OUTPOST_ICECUBE_DATA");
	char p[512], t[512], err[512];
	op_replay *r = NULL;
	op_sim_truth tr;
	uint32_t n;

	snprintf(p, sizeof(p), "%s/oscnext_l7_5ev_pulses.csv", dir ? dir : "");
	FILE *f = fopen(p, "r");
	if (!dir || !f) {
		fprintf(stderr, "skipped: no IceCube data (OUTPOST_ICECUBE_DATA)\n");
		return 77;
	}
	fclose(f);
	snprintf(t, sizeof(t), "%s/oscnext_l7_5ev_truth.csv", dir);
	CHECK(op_replay_open(p, t, &r, err, sizeof(err)) == 0);
	CHECK_EQ_U64(op_replay_count(r), 5);
	CHECK_EQ_U64(total(r), 56);
	/* event 0's first pulse: string 85, DOM 54, t 9867 ns, 0.625 pe, HLC */
	const op_pulse *e0 = op_replay_event(r, 0, &n, &tr);
	CHECK(e0[0].sensor_id == 84 * 60 + 53 && e0[0].time_ns == 0.0f && e0[0].charge_pe == 0.625f &&
	      (e0[0].flags & 1));
	CHECK_NEAR(tr.energy_gev, 1.510082059087254, 1e-9);
	CHECK_NEAR(tr.zenith_rad, 2.786502562749092, 1e-9);
	CHECK(tr.kind == OP_SIM_TRACK); /* pid 14: muon neutrino */
	op_replay_close(r);

	snprintf(p, sizeof(p), "%s/upgrade_genie_5ev_pulses.csv", dir);
	snprintf(t, sizeof(t), "%s/upgrade_genie_5ev_truth.csv", dir);
	CHECK(op_replay_open(p, t, &r, err, sizeof(err)) == 0);
	CHECK_EQ_U64(op_replay_count(r), 5);
	CHECK_EQ_U64(total(r), 625);
	op_replay_close(r);

	snprintf(p, sizeof(p), "%s/prometheus_icecube_nue_10ev_photons.csv", dir);
	snprintf(t, sizeof(t), "%s/prometheus_icecube_nue_10ev_truth.csv", dir);
	CHECK(op_replay_open(p, t, &r, err, sizeof(err)) == 0);
	CHECK_EQ_U64(op_replay_count(r), 10);
	CHECK_EQ_U64(total(r), 217214);
	uint32_t biggest = 0;
	for (uint32_t i = 0; i < op_replay_count(r); i++) {
		op_replay_event(r, i, &n, &tr);
		if (n > biggest)
			biggest = n;
		CHECK(tr.kind == OP_SIM_CASCADE); /* electron neutrinos */
	}
	CHECK_EQ_U64(biggest, 151579);
	/* photon file: sensor_id is the DOM number in the string; string 28 DOM 29 = id 1648 */
	e0 = op_replay_event(r, 0, &n, &tr);
	int found = 0;
	for (uint32_t i = 0; i < n; i++)
		found |= e0[i].sensor_id == 1648;
	CHECK(found);
	op_replay_close(r);

	/* a bad file names itself and the line */
	char bad[] = "/tmp/outpost-test-replay-XXXXXX";
	int fd = mkstemp(bad);
	FILE *bf = fdopen(fd, "w");
	fprintf(bf, "event_no,string,dom_number,dom_type,x_m,y_m,z_m,t_ns,charge_pe,hlc\n0,1,1,20,0,0,0,5,1,1\n0,1,2,20,0,0,0,oops,1,1\n");
	fclose(bf);
	r = NULL;
	CHECK(op_replay_open(bad, NULL, &r, err, sizeof(err)) == -EINVAL && r == NULL);
	CHECK(strstr(err, bad) && strstr(err, ":3:"));
	fprintf(stderr, "bad file reported as: %s\n", err);
	/* what would be read as something else: a string number that is not whole (another
	 * sensor), a time beyond a float (the event's times NaN) */
	const char *odd[2] = {"0,1.5,1,20,0,0,0,5,1,1\n", "0,1,1,20,0,0,0,1e39,1,1\n"};
	const char *odd_says[2] = {"whole numbers", "float's range"};
	for (int i = 0; i < 2; i++) {
		bf = fopen(bad, "w");
		fprintf(bf, "event_no,string,dom_number,dom_type,x_m,y_m,z_m,t_ns,charge_pe,hlc\n%s", odd[i]);
		fclose(bf);
		r = NULL;
		CHECK(op_replay_open(bad, NULL, &r, err, sizeof(err)) == -EINVAL && r == NULL &&
		      strstr(err, ":2:") && strstr(err, odd_says[i]));
		fprintf(stderr, "%s\n", err);
	}
	/* truth: event_no found by its name, not assumed first; a row short of the header's
	 * columns, and an event with no row, refused with the file and line (before: the short
	 * row's missing columns were read uninitialised, and an event without truth was energy 0) */
	bf = fopen(bad, "w");
	fprintf(bf, "event_no,string,dom_number,dom_type,x_m,y_m,z_m,t_ns,charge_pe,hlc\n"
		    "7,1,1,20,0,0,0,5,1,1\n8,1,2,20,0,0,0,5,1,1\n");
	fclose(bf);
	char tbad[] = "/tmp/outpost-test-truth-XXXXXX";
	fd = mkstemp(tbad);
	bf = fdopen(fd, "w");
	fprintf(bf, "pid,energy_GeV,zenith_rad,azimuth_rad,event_no\n14,1000,0.5,1,7\n12,20,1,2,8\n");
	fclose(bf);
	r = NULL;
	CHECK(op_replay_open(bad, tbad, &r, err, sizeof(err)) == 0);
	if (r) {
		op_replay_event(r, 1, &n, &tr);
		CHECK(tr.energy_gev == 20 && tr.kind == OP_SIM_CASCADE);
		op_replay_event(r, 0, &n, &tr);
		CHECK(tr.energy_gev == 1000 && tr.kind == OP_SIM_TRACK);
		op_replay_close(r);
	}
	const char *tt[2] = {"pid,energy_GeV,zenith_rad,azimuth_rad,event_no\n14,1000,0.5,1,7\n12,20\n",
			     "pid,energy_GeV,zenith_rad,azimuth_rad,event_no\n14,1000,0.5,1,7\n"};
	const char *tt_says[2] = {":3: 2 fields", "event 8"};
	for (int i = 0; i < 2; i++) {
		bf = fopen(tbad, "w");
		fputs(tt[i], bf);
		fclose(bf);
		r = NULL;
		CHECK(op_replay_open(bad, tbad, &r, err, sizeof(err)) == -EINVAL && r == NULL && strstr(err, tbad) &&
		      strstr(err, tt_says[i]));
		fprintf(stderr, "%s\n", err);
	}
	unlink(tbad);
	unlink(bad);
	return check_finish("test_replay");
}
