/*
 * bootcount.h — a persistent count of consecutive starts of outpostd that did not reach stable
 * operation. It is the last rung of the escalation ladder (docs/reliability.md): when systemd
 * restarts and even reboots have not helped, the next start comes up in safe mode instead of
 * looping forever.
 *
 * The count is one decimal number in a small file, replaced atomically (write a temporary
 * file, fsync it, rename it over the old one, fsync the directory): a power cut leaves the old
 * count or the new one, never a torn file.
 */
#ifndef OP_WATCHDOG_BOOTCOUNT_H
#define OP_WATCHDOG_BOOTCOUNT_H
#include <stddef.h>
#include <stdint.h>

/* Reads the count at path (missing: 0), adds one and writes it back durably. *count receives
 * the new value. A file that does not hold a number is reported in err (and counted from 0):
 * returns 1 then, 0 on success, -errno when the new count could not be written. */
int op_bootcount_bump(const char *path, uint32_t *count, char *err, size_t errlen);

/* Writes count durably. 0 or -errno. */
int op_bootcount_set(const char *path, uint32_t count);

#endif
