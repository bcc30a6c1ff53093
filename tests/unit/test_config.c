/*
 * test_config.c — the YAML loader: defaults, a full file with units, every error kind with
 * its exact file:line:col, all errors in one pass, suggestions, duplicate keys, YAML 1.1
 * booleans, a failed load leaving the configuration untouched, and print round trips.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/config.h"
#include "unit/check.h"

static int load(op_config *c, const char *yaml, char *diag, size_t cap)
{
	FILE *f = fmemopen(diag, cap, "w");
	int rc = op_config_load_string(c, yaml, strlen(yaml), "cfg.yaml", f);
	fclose(f);
	return rc;
}

int main(void)
{
	op_config c, d, before;
	char diag[8192];

	op_config_defaults(&c);
	CHECK(!strcmp(c.state_dir, "/var/lib/outpost") && c.store_rotate_age_ns == 10000000000ull &&
	      c.store_rotate_bytes == 64ull << 20 && c.ingest_window_events == 65536 && c.infer_trim == 1 &&
	      !strcmp(c.ingest_pull, "tcp://127.0.0.1:5555") && !strcmp(c.log_level, "info"));

	/* a full valid file */
	const char *ok = "# comment\n"
			 "site:\n  name: south-pole\n"
			 "paths:\n  state_dir: /data/outpost\n"
			 "ingest:\n  pull_endpoint: \"tcp://0.0.0.0:5555\"\n  max_message_bytes: 1.5MiB\n"
			 "  resend_after: 2m\n"
			 "store:\n  rotate_age: 250ms\n  rotate_bytes: 10GB\n  deflate_level: 0\n"
			 "infer:\n  charge_weighted: false\n"
			 "uplink:\n  north_endpoint: \"\"\n"
			 "log:\n  level: debug\n";
	CHECK(load(&c, ok, diag, sizeof(diag)) == 0);
	CHECK(!strcmp(c.site_name, "south-pole") && !strcmp(c.state_dir, "/data/outpost"));
	CHECK_EQ_U64(c.ingest_max_message_bytes, 1572864);
	CHECK_EQ_U64(c.ingest_resend_after_ns, 120000000000ull);
	CHECK_EQ_U64(c.store_rotate_age_ns, 250000000ull);
	CHECK_EQ_U64(c.store_rotate_bytes, 10000000000ull);
	CHECK(c.store_deflate_level == 0 && c.infer_charge_weighted == 0 && c.uplink_north[0] == 0);
	CHECK(!strcmp(c.log_level, "debug"));

	/* a string key left empty, or given YAML's null: none, with a warning where the default has
	 * something on (a warning, not an error: files like these ran before) */
	op_config_defaults(&c);
	CHECK(load(&c, "uplink:\n  north_endpoint:\ningest:\n  sub_endpoint: ~\nsite:\n  name: ~\n", diag,
		   sizeof(diag)) == 0);
	fprintf(stderr, "--- empty and null strings ---\n%s---\n", diag);
	CHECK(c.uplink_north[0] == 0 && c.ingest_sub[0] == 0 && !strcmp(c.site_name, "~"));
	CHECK(strstr(diag, "cfg.yaml:2:3: warning: 'uplink.north_endpoint' is empty, which means none (the default "
			   "is tcp://127.0.0.1:5600)"));
	CHECK(strstr(diag, "cfg.yaml:4:17: warning: 'ingest.sub_endpoint': '~' is YAML's null, taken as empty (none)"));
	CHECK(strstr(diag, "cfg.yaml:6:9: warning: 'site.name': '~' is YAML's null, but here it is taken as the text"));
	op_config_defaults(&c);
	memset(diag, 0, sizeof(diag)); /* (nothing written: the last diagnostics would stay) */
	CHECK(load(&c, "ingest:\n  sub_endpoint:\n", diag, sizeof(diag)) == 0 && !strstr(diag, "warning"));

	/* paths.run_dir: its longest socket path, run_dir/ingest-ctl.sock, must fit 107 characters */
	char yaml_rd[256];
	snprintf(yaml_rd, sizeof(yaml_rd), "paths:\n  run_dir: /%0*d\n", 90, 0);
	op_config_defaults(&c);
	CHECK(load(&c, yaml_rd, diag, sizeof(diag)) == 0 && strlen(c.run_dir) == 91);
	snprintf(yaml_rd, sizeof(yaml_rd), "paths:\n  run_dir: /%0*d\n", 91, 0);
	CHECK(load(&c, yaml_rd, diag, sizeof(diag)) == 1 &&
	      strstr(diag, "'paths.run_dir' must be 1 to 91 characters long (it is 92)"));

	/* a duration or size past 2^64 is out of the key's range, said with the range */
	CHECK(load(&c, "store:\n  rotate_age: 99999999999d\n", diag, sizeof(diag)) == 1 &&
	      strstr(diag, "'store.rotate_age' must be between"));

	/* several errors in one file, each with its exact position */
	const char *bad = "store:\n"                   /* 1 */
			  "  rotate_age: 10\n"         /* 2: no unit */
			  "  rotate_agee: 5s\n"        /* 3: unknown, did you mean */
			  "  rotate_age: 5s\n"         /* 4: duplicate */
			  "  deflate_level: 12\n"      /* 5: out of range */
			  "ingest:\n"                  /* 6 */
			  "  window_events: [1, 2]\n"  /* 7: list where a scalar belongs */
			  "infer:\n"                   /* 8 */
			  "  charge_weighted: yes\n"   /* 9: YAML 1.1 boolean: warning and error */
			  "logg:\n  level: info\n";    /* 10: unknown section */
	op_config_defaults(&c);
	before = c;
	int n = load(&c, bad, diag, sizeof(diag));
	fprintf(stderr, "--- diagnostics of the bad file ---\n%s---\n", diag);
	CHECK_EQ_U64(n, 7);
	CHECK(strstr(diag, "cfg.yaml:2:15: error: 'store.rotate_age' needs a unit: write '10s'"));
	CHECK(strstr(diag, "cfg.yaml:3:3: error: unknown key 'store.rotate_agee'; did you mean 'store.rotate_age'?"));
	CHECK(strstr(diag, "cfg.yaml:4:3: error: duplicate key 'rotate_age' (first set on line 2)"));
	CHECK(strstr(diag, "cfg.yaml:5:18: error: 'store.deflate_level' must be between 0 and 9, not '12'"));
	CHECK(strstr(diag, "cfg.yaml:7:18: error: 'ingest.window_events' takes a single integer value, not a list"));
	CHECK(strstr(diag, "cfg.yaml:9:20: warning: 'yes' is a YAML 1.1 boolean"));
	CHECK(strstr(diag, "cfg.yaml:9:20: error: 'infer.charge_weighted' must be true or false, not 'yes'"));
	CHECK(strstr(diag, "cfg.yaml:10:1: error: unknown key 'logg'; did you mean 'log'?"));
	CHECK(strstr(diag, "  rotate_agee: 5s\n    ^\n")); /* the line, and a caret under the column */
	CHECK(memcmp(&c, &before, sizeof(c)) == 0);      /* nothing applied */

	/* syntax error: libyaml's position */
	n = load(&c, "store:\n  rotate_age: 5s\n bad indent: [\n", diag, sizeof(diag));
	CHECK(n == 1 && strstr(diag, "cfg.yaml:3:") && strstr(diag, "YAML syntax"));
	/* sizes and bounds in units; strings too long; a scalar root */
	CHECK(load(&c, "ingest:\n  max_message_bytes: 2GiB\n", diag, sizeof(diag)) == 1 &&
	      strstr(diag, "between 64B and 1GiB"));
	CHECK(load(&c, "store:\n  rotate_bytes: 12 parsecs\n", diag, sizeof(diag)) == 1);
	/* hexadecimal and exponents: read as always (refusing them would keep an upgraded box
	 * from starting), each with a warning that says how it was read */
	CHECK(load(&c, "ingest:\n  max_message_bytes: 0x10MiB\nstore:\n  rotate_age: 1e3s\npower:\n  budget: 1.5e2W\n",
		   diag, sizeof(diag)) == 0);
	fprintf(stderr, "--- numbers in other notations ---\n%s---\n", diag);
	CHECK(c.ingest_max_message_bytes == 16 * 1048576ull && c.store_rotate_age_ns == 1000 * 1000000000ull &&
	      c.power_budget_mw == 150000);
	CHECK(strstr(diag, "cfg.yaml:2:22: warning: 'ingest.max_message_bytes': '0x10MiB' holds a number in "
			   "hexadecimal notation, read as 16MiB; write 16MiB"));
	CHECK(strstr(diag, "cfg.yaml:4:15: warning: 'store.rotate_age': '1e3s' holds a number in exponent notation"));
	CHECK(strstr(diag, "cfg.yaml:6:11: warning: 'power.budget': '1.5e2W' holds a number in exponent notation"));
	memset(diag, 0, sizeof(diag));
	CHECK(load(&c, "store:\n  rotate_age: 2.5m\n  rotate_bytes: 1.5MiB\n", diag, sizeof(diag)) == 0 &&
	      !strstr(diag, "warning"));
	char longname[200] = "site:\n  name: ";
	memset(longname + strlen(longname), 'x', 100);
	CHECK(load(&c, longname, diag, sizeof(diag)) == 1 && strstr(diag, "1 to 63 characters"));
	CHECK(load(&c, "just a string\n", diag, sizeof(diag)) == 1);
	CHECK(load(&c, "", diag, sizeof(diag)) == 0);           /* empty file: defaults */
	CHECK(load(&c, "# only\n# comments\n", diag, sizeof(diag)) == 0);
	CHECK(load(&c, "a: 1\n---\nb: 2\n", diag, sizeof(diag)) == 2); /* unknown key + 2nd doc */

	/* --print-defaults loads back to exactly the defaults */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	op_config_print_defaults(f);
	fclose(f);
	op_config_defaults(&d);
	memset(&c, 0x5a, sizeof(c));
	op_config_defaults(&c);
	strcpy(c.site_name, "changed");
	CHECK(op_config_load_string(&c, buf, len, "defaults", stderr) == 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	free(buf);
	/* the effective print of a changed configuration loads back to the same, same hash */
	op_config_defaults(&c);
	CHECK(load(&c, ok, diag, sizeof(diag)) == 0);
	f = open_memstream(&buf, &len);
	op_config_print(&c, f);
	fclose(f);
	op_config_defaults(&d);
	CHECK(op_config_load_string(&d, buf, len, "effective", stderr) == 0);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	char h1[17], h2[17], h3[17];
	op_config_hash(&c, h1);
	op_config_hash(&d, h2);
	op_config_defaults(&d);
	op_config_hash(&d, h3);
	CHECK(!strcmp(h1, h2) && strcmp(h1, h3) && strlen(h1) == 16);
	free(buf);
	/* a schedule written as a YAML block (its lines end in newlines, a tab between parts) loads,
	 * and the effective print, which the stages read, gives back exactly the same value */
	op_config_defaults(&c);
	CHECK(load(&c, "power:\n  schedule: |\n    05-01..08-31 150W;\n    22:00-06:00\t120W\n", diag, sizeof(diag)) == 0);
	CHECK(!strcmp(c.power_schedule, "05-01..08-31 150W;\n22:00-06:00\t120W\n"));
	f = open_memstream(&buf, &len);
	op_config_print(&c, f);
	fclose(f);
	op_config_defaults(&d);
	CHECK(op_config_load_string(&d, buf, len, "effective", stderr) == 0);
	CHECK(!strcmp(d.power_schedule, c.power_schedule));
	free(buf);
	/* anywhere else a control character but the tab is refused, at its line and column; a tab
	 * (files with one ran before) loads and prints back the same */
	op_config_defaults(&c);
	CHECK(load(&c, "site:\n  name: \"pole\\b1\"\n", diag, sizeof(diag)) == 1);
	CHECK(strstr(diag, "cfg.yaml:2:9: error: 'site.name' holds a control character (0x08, byte 5)") != NULL);
	CHECK(!strcmp(c.site_name, "outpost"));
	CHECK(load(&c, "site:\n  name: \"pole\\t1\"\n", diag, sizeof(diag)) == 0 && !strcmp(c.site_name, "pole\t1"));
	f = open_memstream(&buf, &len);
	op_config_print(&c, f);
	fclose(f);
	op_config_defaults(&d);
	CHECK(op_config_load_string(&d, buf, len, "effective", stderr) == 0 && !strcmp(d.site_name, "pole\t1"));
	free(buf);

	/* bytes that are not UTF-8 (a Latin-1 comment), or a raw control character, are refused at
	 * their own line and column: libyaml gives only their offset, and they were reported at 1:1 */
	op_config_defaults(&c);
	CHECK(load(&c, "site:\n  name: pole\n# Gr\xfc\xdf" "e\nlog:\n  level: info\n", diag, sizeof(diag)) == 1);
	fprintf(stderr, "--- not UTF-8 ---\n%s---\n", diag);
	CHECK(strstr(diag, "cfg.yaml:3:5: error: YAML syntax: ") != NULL && strstr(diag, "(byte 0xfc)") != NULL);
	CHECK(load(&c, "site:\n  name: pole\nlog:\n  level: info \x01\n", diag, sizeof(diag)) == 1);
	CHECK(strstr(diag, "cfg.yaml:4:15: error: YAML syntax: ") != NULL && strstr(diag, "(byte 0x01)") != NULL);
	/* a NUL escape would cut the value short (the rest dropped, unseen): refused */
	CHECK(load(&c, "paths:\n  state_dir: \"/srv/outpost\\0old\"\n", diag, sizeof(diag)) == 1);
	CHECK(strstr(diag, "cfg.yaml:2:14: error: 'paths.state_dir': the value holds a NUL character") != NULL);
	CHECK(!strcmp(c.state_dir, "/var/lib/outpost"));
	/* a rate or size that is not 0 but rounds to it (0 means none: no cap, no reserve): refused */
	CHECK(load(&c, "uplink:\n  rate: 0.4bit/s\n", diag, sizeof(diag)) == 1);
	CHECK(strstr(diag, "cfg.yaml:2:9: error: 'uplink.rate': '0.4bit/s' is under 1 bit/s and would be 0") != NULL);
	CHECK(load(&c, "uplink:\n  disk_reserve: 0.4B\n", diag, sizeof(diag)) == 1);
	CHECK(strstr(diag, "'uplink.disk_reserve': '0.4B' is under a byte and would be 0") != NULL);
	CHECK(load(&c, "uplink:\n  rate: 0\n  disk_reserve: 0\n", diag, sizeof(diag)) == 0 && c.uplink_rate_bps == 0);
	return check_finish("test_config");
}
