/*
 * transfer.c — what both ends of the custody-transfer protocol share. See transfer.h.
 */
#include "uplink/transfer.h"

#include <string.h>

static int ends_with(const char *name, size_t len, const char *tail)
{
	size_t t = strlen(tail);
	return len >= t && memcmp(name + len - t, tail, t) == 0;
}

int op_xfer_name_ok(const char *name, size_t len)
{
	if (len < 1 || len > OP_XFER_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	/* names either end keeps for itself: sidecars, north's partials and intents, its ledger */
	if (ends_with(name, len, ".sha256") || ends_with(name, len, ".part") || ends_with(name, len, ".commit"))
		return 0;
	return !(len == 10 && memcmp(name, "ledger.tsv", 10) == 0);
}
