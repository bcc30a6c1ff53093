/*
 * curve.h — ZeroMQ CURVE keys for the link north: generating them, reading them, and the
 * north side's gatekeeper (a ZAP handler that admits only the appliance keys it lists).
 *
 * Key files are text, one "name = value" per line, '#' comments; values are Z85 (40 chars):
 *   NAME.key   public-key and secret-key; mode 0600; stays on the machine it was made for
 *   NAME.pub   public-key only; copied to the other side
 * `outpostctl keygen NAME` makes both. The appliance holds its .key and north's .pub; north holds
 * its .key and a directory of the .pub files of the appliances it accepts (the file's name
 * without .pub is the appliance's name in north's ledger). The directory is read at every
 * connection, so adding or removing a .pub takes effect without a restart: that is how keys
 * are rotated (docs/operator-guide.md).
 */
#ifndef OP_UPLINK_CURVE_H
#define OP_UPLINK_CURVE_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_curve_key {
	char public_z85[41];
	char secret_z85[41]; /* "" in a .pub */
} op_curve_key;

/* NAME.key (0600) and NAME.pub (0644); refuses to overwrite. 0, or -errno with err. */
int op_curve_keygen(const char *name, char *err, size_t errcap);
/* Reads a .key (need_secret) or a .pub. Errors name the file and line. */
int op_curve_load(const char *path, int need_secret, op_curve_key *out, char *err, size_t errcap);

/* North: the ZAP handler. */
typedef struct op_zap op_zap;
/* Binds inproc://zeromq.zap.01 in zctx: must be opened before the CURVE socket binds. */
int op_zap_open(void *zctx, const char *authorized_dir, op_zap **out);
void op_zap_close(op_zap *z);
void *op_zap_socket(op_zap *z); /* to poll */
/* Answer pending requests. Calls on_refused(ctx, peer address, reason) for each refusal. */
void op_zap_handle(op_zap *z, void (*on_refused)(void *, const char *, const char *), void *ctx);
uint64_t op_zap_refused(const op_zap *z);

#endif
