/*
 * outbox.c — alerts and telemetry into the uplink's class directories (see outbox.h).
 */
#include "appliance/outbox.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uplink/escape.h"
#include "uplink/segment.h"
#include "uplink/sender.h"

static int place(const op_config *cfg, const char *sub, const char *kind, const char *data, size_t len)
{
	static unsigned seq;
	char dir[OP_CFG_STR + 32], name[160], site[64], stamp[32];

	snprintf(dir, sizeof(dir), "%s/outbox", cfg->state_dir);
	op_segment_mkdir(dir, 0750);
	snprintf(dir, sizeof(dir), "%s/outbox/%s", cfg->state_dir, sub);
	op_segment_mkdir(dir, 0750);
	/* the name: class-kind-site-UTC-pid-seq.json, characters north accepts only */
	op_uplink_name_part(cfg->site_name, site, sizeof(site));
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(name, sizeof(name), "%s-%s-%s-%s-%d-%u.json", sub, kind, site, stamp, (int)getpid(), seq++);
	return op_uplink_publish(dir, name, data, len);
}

/* At most one alert of a kind per ALERT_EVERY_S: a flapping sensor or a link down for a year
 * must not fill the disk with alerts (they are never evicted). The ones held back are counted
 * and the next alert of the kind says how many; until then the status (and so telemetry north)
 * shows them (op_outbox_alerts_held), and a kind with some held back keeps its place in the
 * table. */
#define ALERT_EVERY_S 600
static struct {
	char kind[32];
	struct timespec last;
	unsigned held;
} alert_log[16];
static pthread_mutex_t alert_mu = PTHREAD_MUTEX_INITIALIZER;

int op_outbox_alert(const op_config *cfg, const char *kind, const char *text)
{
	/* doc holds the longest of each part (site: 63 characters, six bytes each escaped) */
	char doc[2304], esc[1500], site[400], utc[32], more[96] = "";
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&alert_mu);
	int k, oldest = 0;
	for (k = 0; k < 16 && strcmp(alert_log[k].kind, kind); k++)
		if (alert_log[k].last.tv_sec < alert_log[oldest].last.tv_sec)
			oldest = k;
	if (k == 16) { /* a new kind (the table holds the 16 most recent, those with alerts held first) */
		for (int i = 0; i < 16; i++)
			if (!alert_log[i].held && (alert_log[oldest].held || alert_log[i].last.tv_sec < alert_log[oldest].last.tv_sec))
				oldest = i;
		k = oldest;
		snprintf(alert_log[k].kind, sizeof(alert_log[k].kind), "%s", kind);
		alert_log[k].last.tv_sec = 0;
		alert_log[k].held = 0;
	}
	if (alert_log[k].last.tv_sec && now.tv_sec - alert_log[k].last.tv_sec < ALERT_EVERY_S) {
		alert_log[k].held++;
		pthread_mutex_unlock(&alert_mu);
		return 0;
	}
	if (alert_log[k].held)
		snprintf(more, sizeof(more), ",\"held_back\":%u", alert_log[k].held);
	alert_log[k].last = now;
	alert_log[k].held = 0;
	pthread_mutex_unlock(&alert_mu);
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	op_json_escape(esc, sizeof(esc), text);
	op_json_escape(site, sizeof(site), cfg->site_name);
	int n = snprintf(doc, sizeof(doc), "{\"alert\":\"%s\",\"site\":\"%s\",\"utc\":\"%s\",\"text\":\"%s\"%s}\n", kind,
			 site, utc, esc, more);
	return place(cfg, "alert", kind, doc, (size_t)n < sizeof(doc) ? (size_t)n : sizeof(doc) - 1);
}

size_t op_outbox_alerts_held(char *out, size_t cap)
{
	size_t n = 0;
	if (!cap)
		return 0;
	pthread_mutex_lock(&alert_mu);
	n += (size_t)snprintf(out, cap, "{");
	for (int k = 0; k < 16; k++) {
		if (!alert_log[k].held || n >= cap)
			continue;
		/* kinds are the appliance's own words: nothing to escape */
		n += (size_t)snprintf(out + n, cap - n, "%s\"%s\":%u", n > 1 ? "," : "", alert_log[k].kind, alert_log[k].held);
	}
	if (n < cap)
		n += (size_t)snprintf(out + n, cap - n, "}");
	pthread_mutex_unlock(&alert_mu);
	if (n >= cap) { /* never a cut JSON object */
		snprintf(out, cap, "{}");
		return 2;
	}
	return n;
}

int op_outbox_telemetry(const op_config *cfg, const char *json, size_t len)
{
	return place(cfg, "telemetry", "status", json, len);
}
