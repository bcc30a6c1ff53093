/*
 * outbox.c — alerts and telemetry into the uplink's class directories (see outbox.h).
 */
#include "appliance/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uplink/sha256.h"

static int write_all(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	int bad = write(fd, data, len) != (ssize_t)len || fsync(fd) != 0;
	int e = errno;
	if (close(fd) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	return bad ? -(e ? e : EIO) : 0;
}

static int place(const op_config *cfg, const char *sub, const char *kind, const char *data, size_t len)
{
	static unsigned seq;
	char dir[OP_CFG_STR + 32], name[160], site[64], path[OP_CFG_STR + 200], tmp[OP_CFG_STR + 220],
		side[OP_CFG_STR + 220], stamp[32], hex[65], line[256];
	uint8_t dg[32];
	op_sha256 h;

	snprintf(dir, sizeof(dir), "%s/outbox", cfg->state_dir);
	mkdir(dir, 0750);
	snprintf(dir, sizeof(dir), "%s/outbox/%s", cfg->state_dir, sub);
	mkdir(dir, 0750);
	/* the name: class-kind-site-UTC-pid-seq.json, characters north accepts only */
	size_t i = 0;
	for (const char *p = cfg->site_name; *p && i < sizeof(site) - 1; p++)
		site[i++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ? *p : '_';
	site[i] = 0;
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(name, sizeof(name), "%s-%s-%s-%s-%d-%u.json", sub, kind, site, stamp, (int)getpid(), seq++);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(side, sizeof(side), "%s/%s.sha256", dir, name);
	op_sha256_init(&h);
	op_sha256_update(&h, data, len);
	op_sha256_final(&h, dg);
	op_sha256_hex(dg, hex);
	int n = snprintf(line, sizeof(line), "%s  %s\n", hex, name);
	int e = write_all(tmp, data, len);
	if (e == 0)
		e = write_all(side, line, (size_t)n);
	if (e == 0 && rename(tmp, path) != 0)
		e = -errno;
	if (e < 0) {
		unlink(tmp);
		unlink(side);
		return e;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void json_escape(char *out, size_t cap, const char *in)
{
	size_t o = 0;
	for (; *in && o + 7 < cap; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else
			out[o++] = (char)c;
	}
	out[o] = 0;
}

int op_outbox_alert(const op_config *cfg, const char *kind, const char *text)
{
	char doc[2048], esc[1500], site[200], utc[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_escape(esc, sizeof(esc), text);
	json_escape(site, sizeof(site), cfg->site_name);
	int n = snprintf(doc, sizeof(doc), "{\"alert\":\"%s\",\"site\":\"%s\",\"utc\":\"%s\",\"text\":\"%s\"}\n", kind, site,
			 utc, esc);
	return place(cfg, "alert", kind, doc, (size_t)n < sizeof(doc) ? (size_t)n : sizeof(doc) - 1);
}

int op_outbox_telemetry(const op_config *cfg, const char *json, size_t len)
{
	return place(cfg, "telemetry", "status", json, len);
}
