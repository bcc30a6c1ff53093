/*
 * stage_uplink.c — the uplink stage: offer sealed segments in outbox/ to outpost-north and
 * delete each local copy only after north confirmed a matching checksum (custody transfer;
 * the protocol and its guarantees live in uplink/sender.c and docs/uplink-protocol.md).
 * With no north endpoint configured it only reports what is waiting.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/stage.h"
#include "uplink/curve.h"
#include "uplink/segment.h"
#include "uplink/sender.h"

int op_stage_uplink(op_stage_ctx *s)
{
	const op_config *cfg = s->cfg;
	char outbox[OP_CFG_STR + 16], quarantine[OP_CFG_STR + 16];
	op_uplink_config ucfg;
	op_uplink *u = NULL;
	op_uplink_stats st, prev;
	char local_said[sizeof(st.last_local_error)] = "";
	uint64_t local_said_ns = 0, odd_said_ns = 0;
	uint64_t progress = 0;
	int rc = 1;

	snprintf(outbox, sizeof(outbox), "%s/outbox", cfg->state_dir);
	snprintf(quarantine, sizeof(quarantine), "%s/quarantine", cfg->state_dir);
	op_segment_mkdir(outbox, 0750);
	op_segment_mkdir(quarantine, 0750);
	if (!cfg->uplink_north[0])
		op_info("no north endpoint configured: segments stay in %s (uplink.disk_reserve still kept)", outbox);

	memset(&ucfg, 0, sizeof(ucfg));
	ucfg.outbox_dir = outbox;
	ucfg.quarantine_dir = quarantine;
	ucfg.north_endpoint = cfg->uplink_north;
	ucfg.chunk_bytes = (size_t)cfg->uplink_chunk_bytes;
	ucfg.window = 16; /* 16 MiB in flight at the default chunk: 100 Mbit/s over 600 ms without a cap */
	ucfg.timeout_ns = cfg->uplink_timeout_ns;
	ucfg.retry_ns = cfg->uplink_retry_ns;
	char sent[512];
	snprintf(sent, sizeof(sent), "%s/sent", cfg->state_dir);
	op_segment_mkdir(sent, 0750);
	ucfg.sent_dir = sent;
	ucfg.sent_keep_ns = 600000000000ull; /* 10 min: far beyond any stage restart's backoff */
	char quota_file[OP_CFG_STR + 32];
	snprintf(quota_file, sizeof(quota_file), "%s/uplink-quota", cfg->state_dir);
	ucfg.rate_bps = cfg->uplink_rate_bps;
	ucfg.daily_quota = cfg->uplink_daily_quota;
	ucfg.alert_reserve = cfg->uplink_alert_reserve;
	ucfg.quota_file = quota_file;
	ucfg.windows = cfg->uplink_windows;
	ucfg.disk_reserve = cfg->uplink_disk_reserve;
	ucfg.site = cfg->site_name;
	ucfg.max_age_s = cfg->uplink_max_age_ns / 1000000000ull;
	ucfg.share_pct[OP_UPLINK_TELEMETRY] = cfg->uplink_telemetry_share_pct;
	ucfg.share_pct[OP_UPLINK_BULK] = cfg->uplink_bulk_share_pct;
	ucfg.share_pct[OP_UPLINK_RESULTS] = cfg->uplink_telemetry_share_pct + cfg->uplink_bulk_share_pct < 99
						    ? 100 - cfg->uplink_telemetry_share_pct - cfg->uplink_bulk_share_pct
						    : 1;
	/* CURVE: both keys or neither. A key that cannot be read keeps the segments here (nothing
	 * is sent in plaintext instead) and says why, every minute, until a reload fixes it. */
	op_curve_key mine, north;
	int key_error = 0;
	char key_problem[600] = "";
	uint64_t key_logged = 0;
	if (cfg->uplink_curve_key[0] || cfg->uplink_north_public_key[0]) {
		char kerr[600];
		int ke = !cfg->uplink_curve_key[0] || !cfg->uplink_north_public_key[0] ? -EINVAL : 0;
		if (ke < 0)
			snprintf(kerr, sizeof(kerr), "uplink.curve_key and uplink.north_public_key go together (one is empty)");
		else if ((ke = op_curve_load(cfg->uplink_curve_key, 1, &mine, kerr, sizeof(kerr))) == 0)
			ke = op_curve_load(cfg->uplink_north_public_key, 0, &north, kerr, sizeof(kerr));
		if (ke < 0) {
			/* nothing goes north (never plaintext instead); the disk reserve is still kept */
			key_error = 1;
			snprintf(key_problem, sizeof(key_problem), "%s", kerr);
			ucfg.north_endpoint = "";
		} else {
			ucfg.curve_public_z85 = mine.public_z85;
			ucfg.curve_secret_z85 = mine.secret_z85;
			ucfg.north_public_z85 = north.public_z85;
		}
	}
	int err = op_uplink_open(s->zctx, &ucfg, &u);
	explicit_bzero(&mine, sizeof(mine));
	if (err < 0) {
		op_err("cannot open the uplink to %s: %s", cfg->uplink_north, strerror(-err));
		return 1;
	}
	if (ucfg.north_endpoint[0])
		op_info("shipping %s to %s%s", outbox, cfg->uplink_north,
			ucfg.curve_public_z85 ? " (CURVE: encrypted, north's key checked)" : " (plaintext)");
	int was_up = -1;            /* -1: not known yet (at start, and from a window's close) */
	uint64_t unknown_since = 0; /* when the link's state became unknown inside a window */
	memset(&prev, 0, sizeof(prev));
	/* the achieved rate on the wire (over 10 s) and how fast the disk fills (over the last hour,
	 * one sample a minute): days until only the reserve is left, -1 while it is not filling */
	uint64_t rate_t0 = op_now_ns(), rate_b0 = 0, disk_t[61] = {0}, disk_f[61] = {0};
	double rate_bps = 0, days_to_full = -1;
	int disk_n = 0;
	while (!op_stage_stop) {
		err = op_uplink_step(u, 100);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -ETIMEDOUT) {
			op_err("uplink step failed: %s", strerror(-err));
			goto out;
		}
		op_uplink_get_stats(u, &st);
		if (key_error && (!key_logged || op_now_ns() - key_logged >= 60000000000ull)) {
			op_err("uplink keys: %s; segments stay in %s until it is fixed (outpostctl reload)", key_problem, outbox);
			key_logged = op_now_ns();
		}
		if (st.files_confirmed != prev.files_confirmed)
			op_info("north confirmed %llu segment(s) in total, %llu bytes",
				(unsigned long long)st.files_confirmed, (unsigned long long)st.bytes_confirmed);
		if (st.refused_files_only != prev.refused_files_only) /* per file: up to hourly each */
			op_warn("north refused %s; that file is held alone, offered again up to hourly: rename it",
				st.last_file_refusal);
		else if (st.rejected != prev.rejected) /* spaced by the sender: at most one a uplink.retry, doubling */
			op_warn("north refused %s (%llu refused since north last confirmed a file)", st.last_refusal,
				(unsigned long long)st.refusals_running);
		if (st.quarantined != prev.quarantined)
			op_err("%llu file(s) in %s did not match their checksum: moved to %s (reason=corrupt; the last: %s)",
			       (unsigned long long)(st.quarantined - prev.quarantined), outbox, quarantine,
			       st.last_quarantined);
		if (st.quarantine_failed != prev.quarantine_failed) /* evidence that stays in the outbox */
			op_err("a file in %s did not match its checksum and could not be moved to %s: %s", outbox,
			       quarantine, st.last_local_error);
		/* each failure said with its file: at most a line every 10 s, the same one again at most
		 * once a minute (a quota file on a failing disk fails at every chunk) */
		const uint64_t now = op_now_ns(), since = now - local_said_ns;
		const int other = strcmp(st.last_local_error, local_said) != 0;
		if (st.local_errors != prev.local_errors &&
		    (!local_said_ns || since >= 60000000000ull || (other && since >= 10000000000ull))) {
			op_warn("uplink: %s (%llu local failures so far)", st.last_local_error,
				(unsigned long long)st.local_errors);
			snprintf(local_said, sizeof(local_said), "%s", st.last_local_error);
			local_said_ns = now;
		}
		/* north answering outside the protocol (its transfers stay stuck): once a minute */
		if (st.answers_ignored != prev.answers_ignored && (!odd_said_ns || now - odd_said_ns >= 60000000000ull)) {
			op_warn("uplink: north's answer ignored: %s (%llu so far: a north that does not keep to "
				"docs/uplink-protocol.md)",
				st.last_ignored_answer, (unsigned long long)st.answers_ignored);
			odd_said_ns = now;
		}
		if (st.local_errors == prev.local_errors && st.last_error && st.last_error != prev.last_error)
			/* listing outbox/, making the socket */
			op_warn("uplink: a local operation failed: %s (outbox %s)", strerror(-st.last_error), outbox);
		if (st.evicted_disk_full + st.evicted_expired != prev.evicted_disk_full + prev.evicted_expired)
			op_err("evicted %llu file(s) not yet north (%llu expired, %llu for disk space; %llu bytes in all): "
			       "tombstones go north (reason=evicted)",
			       (unsigned long long)(st.evicted_disk_full + st.evicted_expired - prev.evicted_disk_full -
						    prev.evicted_expired),
			       (unsigned long long)st.evicted_expired, (unsigned long long)st.evicted_disk_full,
			       (unsigned long long)st.evicted_bytes);
		if (st.quota_exhausted && !prev.quota_exhausted)
			op_warn("daily quota of %llu bytes spent (%llu sent today, up to %llu kept for alerts): until UTC "
				"midnight only alerts that fit in what is left go north; segments wait in %s",
				(unsigned long long)cfg->uplink_daily_quota, (unsigned long long)st.quota_used,
				(unsigned long long)st.alert_reserve, outbox);
		/* No connection outside the windows: the link's state is unknown there, as at start. No
		 * alarm when a window closes; "up" when an answer comes, "down" when none has come
		 * within two timeouts of the state becoming unknown in a window (the sender's keepalive
		 * needs one) */
		uint64_t lnow = op_now_ns();
		if (!st.in_window || st.quota_exhausted) /* no connection: a closed window, a spent quota */
			was_up = -1, unknown_since = 0;
		else if (was_up == -1 && !unknown_since)
			unknown_since = lnow;
		/* the sender's keepalive answer is due within its interval (a third of the timeout, a
		 * second at least) plus the timeout; twice that, for the connection's own set-up */
		const uint64_t to = cfg->uplink_timeout_ns ? cfg->uplink_timeout_ns : 1000000000ull;
		const uint64_t quiet = 2 * ((to / 3 > 1000000000ull ? to / 3 : 1000000000ull) + to);
		int silent = was_up == -1 && unknown_since && !st.link_up && lnow - unknown_since > quiet;
		if (ucfg.north_endpoint[0] && st.in_window && !st.quota_exhausted &&
		    (silent || (st.link_up != was_up && (was_up >= 0 || st.link_up)))) {
			if (st.link_up)
				op_info("link north up");
			else
				op_warn("link north down: no answer from %s within %.1f s (unreachable, or north does not "
					"accept this appliance%s)", cfg->uplink_north, (double)(silent ? quiet : to) / 1e9,
					ucfg.curve_public_z85 ? "'s key" : "");
			was_up = st.link_up;
		}
		progress = st.bytes_sent + st.files_confirmed + st.pings;
		prev = st;
		uint64_t tnow = op_now_ns();
		if (tnow - rate_t0 >= 10000000000ull) {
			rate_bps = (double)(st.wire_bytes - rate_b0) * 8e9 / (double)(tnow - rate_t0);
			rate_t0 = tnow;
			rate_b0 = st.wire_bytes;
		}
		if (st.disk_free && (!disk_n || tnow - disk_t[(disk_n - 1) % 61] >= 60000000000ull)) {
			disk_t[disk_n % 61] = tnow;
			disk_f[disk_n % 61] = st.disk_free;
			disk_n++;
			int oldest = disk_n > 61 ? disk_n % 61 : 0;
			double dt = (double)(tnow - disk_t[oldest]) / 1e9;
			double drop = (double)disk_f[oldest] - (double)st.disk_free;
			double left = (double)st.disk_free - (double)cfg->uplink_disk_reserve;
			days_to_full = dt >= 60 && drop > 0 ? (left > 0 ? left / (drop / dt) / 86400.0 : 0) : -1;
		}
		if (op_report_due(s, op_now_ns())) {
			op_report_begin(s, progress, st.files_pending == 0);
			op_report_counter(s, "files_confirmed", st.files_confirmed);
			op_report_counter(s, "bytes_sent", st.bytes_sent);
			op_report_counter(s, "bytes_confirmed", st.bytes_confirmed);
			op_report_counter(s, "bytes_acked", st.bytes_acked);
			op_report_counter(s, "bytes_retransmitted", st.bytes_retransmitted);
			op_report_counter(s, "disconnects", st.disconnects);
			op_report_gauge(s, "rate_bps", rate_bps);
			op_report_gauge(s, "cap_bps", (double)cfg->uplink_rate_bps);
			op_report_gauge(s, "disk_days_to_full", days_to_full);
			op_report_counter(s, "resumes", st.resumes);
			op_report_counter(s, "timeouts", st.timeouts);
			op_report_counter(s, "rejected", st.rejected);
			op_report_counter(s, "answers_ignored", st.answers_ignored);
			op_report_counter(s, "refused_files_only", st.refused_files_only);
			op_report_counter(s, "quarantined", st.quarantined);
			op_report_gauge(s, "files_pending", (double)st.files_pending);
			op_report_gauge(s, "link_up", st.link_up);
			op_report_counter(s, "wire_bytes", st.wire_bytes);
			op_report_counter(s, "rate_waits", st.rate_waits);
			op_report_counter(s, "alerts_stalled", st.alerts_stalled);
			op_report_gauge(s, "quota_used", (double)st.quota_used);
			op_report_gauge(s, "quota_exhausted", st.quota_exhausted);
			op_report_gauge(s, "in_window", st.in_window);
			op_report_gauge(s, "disk_free", (double)st.disk_free);
			op_report_counter(s, "evicted_expired", st.evicted_expired);
			op_report_counter(s, "evicted_disk_full", st.evicted_disk_full);
			op_report_counter(s, "evicted_bytes", st.evicted_bytes);
			op_report_counter(s, "tombstones", st.tombstones);
			op_report_counter(s, "tombstones_failed", st.tombstones_failed);
			op_report_counter(s, "leftovers_removed", st.leftovers_removed);
			op_report_gauge(s, "files_held", (double)st.files_held);
			op_report_gauge(s, "files_refused", (double)st.files_refused);
			op_report_gauge(s, "refusals_running", (double)st.refusals_running);
			op_report_gauge(s, "spaced_s", st.spaced_s);
			if (st.last_refusal[0])
				op_report_line(s, "t refusal", st.last_refusal);
			if (st.last_file_refusal[0])
				op_report_line(s, "t file_refusal", st.last_file_refusal);
			op_report_counter(s, "quarantine_failed", st.quarantine_failed);
			op_report_counter(s, "replaced_while_sent", st.replaced_while_sent);
			op_report_gauge(s, "last_error", -st.last_error);
			op_report_counter(s, "preemptions", st.preemptions);
			for (int c = 0; c < OP_UPLINK_CLASSES; c++) {
				char k[48];
				snprintf(k, sizeof(k), "%s_files_pending", op_uplink_class_names[c]);
				op_report_gauge(s, k, (double)st.cls[c].files_pending);
				snprintf(k, sizeof(k), "%s_bytes_pending", op_uplink_class_names[c]);
				op_report_gauge(s, k, (double)st.cls[c].bytes_pending);
				snprintf(k, sizeof(k), "%s_oldest_age_s", op_uplink_class_names[c]);
				op_report_gauge(s, k, st.cls[c].oldest_age_s);
				snprintf(k, sizeof(k), "%s_bytes_sent", op_uplink_class_names[c]);
				op_report_counter(s, k, st.cls[c].bytes_sent);
			}
			op_report_gauge(s, "key_error", key_error);
			op_report_gauge(s, "encrypted", ucfg.curve_public_z85 != NULL);
			op_report_gauge(s, "bytes_pending", (double)st.bytes_pending);
			/* A link that is down is not a stuck stage: the watchdog must not restart us for
			 * waiting on the satellite. */
			op_report_gauge(s, "blocked_downstream", st.files_pending ? 1 : 0);
			op_report_send(s);
		}
	}
	rc = 0;
out:
	op_uplink_close(u);
	return rc;
}
