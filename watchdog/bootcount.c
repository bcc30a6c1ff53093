/*
 * bootcount.c — the persistent start counter. See bootcount.h.
 */
#include "watchdog/bootcount.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int op_bootcount_set(const char *path, uint32_t count)
{
	char tmp[4096], dir[4096], text[32];
	int fd, n, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	n = snprintf(text, sizeof(text), "%u\n", count);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
		rc = errno ? -errno : -EIO;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int op_bootcount_bump(const char *path, uint32_t *count, char *err, size_t errlen)
{
	char text[32];
	unsigned long v = 0;
	int bad = 0, rc;
	FILE *f = fopen(path, "re");

	if (err && errlen)
		err[0] = 0;
	if (f) {
		size_t n = fread(text, 1, sizeof(text) - 1, f);
		char *end;
		text[n] = 0;
		errno = 0;
		v = strtoul(text, &end, 10);
		if (n == 0 || end == text || (*end && *end != '\n') || errno || v > 1000000) {
			bad = 1;
			v = 0;
			if (err)
				snprintf(err, errlen, "%s does not hold a start count; counting from 0", path);
		}
		fclose(f);
	} else if (errno != ENOENT) {
		bad = 1;
		if (err)
			snprintf(err, errlen, "cannot read %s: %s; counting from 0", path, strerror(errno));
	}
	*count = (uint32_t)v + 1;
	rc = op_bootcount_set(path, *count);
	return rc < 0 ? rc : bad;
}
