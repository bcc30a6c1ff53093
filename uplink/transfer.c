/*
 * transfer.c — what both ends of the custody-transfer protocol share. See transfer.h.
 */
#include "uplink/transfer.h"

#include <string.h>

int op_xfer_name_ok(const char *name, size_t len)
{
	if (len < 4 || len > OP_XFER_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return memcmp(name + len - 3, ".h5", 3) == 0 || (len >= 6 && memcmp(name + len - 5, ".json", 5) == 0);
}
