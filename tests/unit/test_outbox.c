/*
 * test_outbox.c — alerts for north: one of a kind per 10 minutes, and those held back still
 * told of (in the status, so telemetry north) until the next one of their kind says how many,
 * however many other kinds come meanwhile.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/outbox.h"
#include "unit/check.h"

static int count_alerts(const char *dir, const char *kind)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char prefix[64];
	int n = 0;
	snprintf(prefix, sizeof(prefix), "alert-%s-", kind);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix)) && strstr(de->d_name, ".json.sha256") == NULL;
	closedir(d);
	return n;
}

int main(void)
{
	op_config cfg;
	char dir[] = "/tmp/op-outbox-XXXXXX", adir[64], held[1024];
	CHECK(mkdtemp(dir) != NULL);
	op_config_defaults(&cfg);
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", dir);
	snprintf(adir, sizeof(adir), "%s/outbox/alert", dir);

	CHECK(op_outbox_alerts_held(held, sizeof(held)) == 2 && !strcmp(held, "{}"));
	/* the first of a kind goes out; the next two within 10 minutes are held back and counted */
	CHECK(op_outbox_alert(&cfg, "restart_budget", "stage store failed 5 times") >= 0);
	CHECK(op_outbox_alert(&cfg, "restart_budget", "again") >= 0);
	CHECK(op_outbox_alert(&cfg, "restart_budget", "and again") >= 0);
	CHECK(count_alerts(adir, "restart_budget") == 1);
	op_outbox_alerts_held(held, sizeof(held));
	CHECK(!strcmp(held, "{\"restart_budget\":2}"));
	/* twenty other kinds, more than the table holds: the held count is not pushed out */
	for (int i = 0; i < 20; i++) {
		char kind[32];
		snprintf(kind, sizeof(kind), "kind%d", i);
		CHECK(op_outbox_alert(&cfg, kind, "one") >= 0);
	}
	op_outbox_alerts_held(held, sizeof(held));
	fprintf(stderr, "held back: %s\n", held);
	CHECK(!strcmp(held, "{\"restart_budget\":2}"));
	/* a buffer too small for the object: "{}", never a cut object */
	CHECK(op_outbox_alerts_held(held, 8) == 2 && !strcmp(held, "{}"));

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_finish("test_outbox");
}
