/*
 * curve.c — CURVE key files and north's ZAP handler (see curve.h; ZeroMQ RFC 27 for ZAP).
 */
#include "uplink/curve.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "uplink/escape.h"

static int valid_z85_key(const char *s)
{
	uint8_t bin[32];
	return strlen(s) == 40 && zmq_z85_decode(bin, s) != NULL;
}

static int write_new(const char *path, mode_t mode, const char *text, char *err, size_t cap)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		snprintf(err, cap, "%s: %s%s", path, strerror(e), e == EEXIST ? " (keys are never overwritten: move it away first)" : "");
		return -e;
	}
	size_t n = strlen(text);
	int bad = write(fd, text, n) != (ssize_t)n || fsync(fd) != 0;
	int e = errno;
	if (close(fd) != 0 || bad) {
		snprintf(err, cap, "%s: %s", path, strerror(e ? e : EIO));
		unlink(path);
		return -(e ? e : EIO);
	}
	return 0;
}

int op_curve_keygen(const char *name, char *err, size_t cap)
{
	char pub[41], sec[41], path[1024], text[512];
	if (!zmq_has("curve")) {
		snprintf(err, cap, "this libzmq has no CURVE support");
		return -ENOTSUP;
	}
	if (zmq_curve_keypair(pub, sec) != 0) {
		snprintf(err, cap, "zmq_curve_keypair: %s", zmq_strerror(errno));
		return -EIO;
	}
	snprintf(path, sizeof(path), "%s.key", name);
	snprintf(text, sizeof(text),
		 "# outpost CURVE key pair (secret: keep it on this machine, mode 0600)\npublic-key = %s\nsecret-key = %s\n",
		 pub, sec);
	int e = write_new(path, 0600, text, err, cap);
	if (e < 0)
		return e;
	snprintf(path, sizeof(path), "%s.pub", name);
	snprintf(text, sizeof(text), "# outpost CURVE public key (copy to the other side)\npublic-key = %s\n", pub);
	e = write_new(path, 0644, text, err, cap);
	if (e < 0) {
		snprintf(path, sizeof(path), "%s.key", name);
		unlink(path);
	}
	explicit_bzero(sec, sizeof(sec));
	explicit_bzero(text, sizeof(text));
	return e;
}

int op_curve_load(const char *path, int need_secret, op_curve_key *out, char *err, size_t cap)
{
	FILE *f = fopen(path, "re");
	char line[256];
	int ln = 0;

	memset(out, 0, sizeof(*out));
	if (!f) {
		int e = errno;
		snprintf(err, cap, "%s: %s", path, strerror(e));
		return -e;
	}
	if (need_secret) {
		struct stat st;
		if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
			fclose(f);
			snprintf(err, cap, "%s: a secret key readable by others (mode %03o): chmod 600 it", path,
				 (unsigned)(st.st_mode & 0777));
			return -EPERM;
		}
	}
	while (fgets(line, sizeof(line), f)) {
		ln++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		char key[32], val[64];
		if (sscanf(p, "%31[a-z-] = %63s", key, val) != 2) {
			snprintf(err, cap, "%s:%d: expected 'public-key = …' or 'secret-key = …'", path, ln);
			fclose(f);
			return -EINVAL;
		}
		char *dst = !strcmp(key, "public-key") ? out->public_z85 : !strcmp(key, "secret-key") ? out->secret_z85 : NULL;
		if (!dst) {
			snprintf(err, cap, "%s:%d: unknown entry '%s'", path, ln, key);
			fclose(f);
			return -EINVAL;
		}
		if (!valid_z85_key(val)) {
			snprintf(err, cap, "%s:%d: '%s' is not a CURVE key (40 Z85 characters)", path, ln, key);
			fclose(f);
			return -EINVAL;
		}
		memcpy(dst, val, 41); /* 40 characters and the NUL: checked above */
	}
	fclose(f);
	explicit_bzero(line, sizeof(line));
	if (!out->public_z85[0] || (need_secret && !out->secret_z85[0])) {
		snprintf(err, cap, "%s: no %s (make keys with `outpostctl keygen NAME`)", path,
			 !out->public_z85[0] ? "public-key" : "secret-key: this is a .pub file, the .key is needed");
		return -EINVAL;
	}
	if (!need_secret)
		out->secret_z85[0] = 0;
	return 0;
}

struct op_zap {
	void *sock;
	char dir[1024];
	uint64_t refused;
};

static int appliance_name_ok(const char *s, size_t n);
/* what appliance_name_ok refuses, in the words north's journal uses */
#define NAME_RULE "(no spaces or control characters, not '-')"

int op_zap_open(void *zctx, const char *dir, op_zap **out)
{
	op_zap *z = calloc(1, sizeof(*z));
	int linger = 0;
	if (!z)
		return -ENOMEM;
	snprintf(z->dir, sizeof(z->dir), "%s", dir);
	/* said at start as well as at each refused connection: an appliance only sees its link down */
	DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".pub") || de->d_name[0] == '.' || appliance_name_ok(de->d_name, n - 4))
			continue;
		char shown[256];
		snprintf(shown, sizeof(shown), "%s", de->d_name);
		op_text_printable(shown);
		fprintf(stderr, "outpost-north: %s/%s: not a name an appliance can have " NAME_RULE
				": its key is refused; rename the file\n", dir, shown);
	}
	if (d)
		closedir(d);
	z->sock = zmq_socket(zctx, ZMQ_REP);
	zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_bind(z->sock, "inproc://zeromq.zap.01") != 0) {
		int e = errno;
		zmq_close(z->sock);
		free(z);
		return -e;
	}
	*out = z;
	return 0;
}

void op_zap_close(op_zap *z)
{
	if (!z)
		return;
	zmq_close(z->sock);
	free(z);
}

void *op_zap_socket(op_zap *z)
{
	return z->sock;
}

uint64_t op_zap_refused(const op_zap *z)
{
	return z->refused;
}

/* 1 when a key file's stem can name an appliance: north's ledger, its listing and its metrics
 * take the name as one column (a space would split it, a tab or newline forge a line), and the
 * ledger's owner of a file decides which appliance may replace it. Only those are refused: any
 * other name (non-ASCII, '@', '+') was taken before and still is. */
static int appliance_name_ok(const char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '-')) /* "-": the ledger's word for a sender without a key */
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* 0: z85 is the key of DIR/NAME.pub, NAME in name; -1: no such key; -2: it is, but NAME cannot
 * name an appliance (appliance_name_ok): refused, NAME (op_text_printable) in name for the
 * journal */
static int find_key(const char *dir, const char *z85, char *name, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = -1;
	if (!d)
		return -1;
	while (found < 0 && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".pub") || de->d_name[0] == '.')
			continue;
		char path[2048], err[256];
		op_curve_key k;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (op_curve_load(path, 0, &k, err, sizeof(err)) == 0 && !strcmp(k.public_z85, z85)) {
			snprintf(name, cap, "%.*s", (int)(n - 4), de->d_name);
			found = 0;
			if (!appliance_name_ok(de->d_name, n - 4)) {
				op_text_printable(name);
				found = -2;
			}
		}
	}
	closedir(d);
	return found;
}

void op_zap_handle(op_zap *z, void (*on_refused)(void *, const char *, const char *), void *ctx)
{
	for (;;) {
		/* version, request id, domain, address, identity, mechanism, credentials… */
		zmq_msg_t f[8];
		int nf = 0, more = 1;
		while (more && nf < 8) {
			zmq_msg_init(&f[nf]);
			if (zmq_msg_recv(&f[nf], z->sock, nf ? 0 : ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&f[nf]);
				if (nf == 0)
					return;
				break;
			}
			more = zmq_msg_more(&f[nf]);
			nf++;
		}
		while (more) { /* more frames than a CURVE request has: drain them */
			zmq_msg_t x;
			zmq_msg_init(&x);
			zmq_msg_recv(&x, z->sock, 0);
			more = zmq_msg_more(&x);
			zmq_msg_close(&x);
		}
		const char *status = "400", *text = "not authorised";
		char user[256] = "", addr[64] = "?", key[41] = "";
		int found = -1;
		if (nf >= 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
		    zmq_msg_size(&f[6]) == 32) {
			zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
			found = find_key(z->dir, key, user, sizeof(user));
			if (found == 0) {
				status = "200";
				text = "OK";
			}
		}
		if (nf >= 4)
			snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]), (const char *)zmq_msg_data(&f[3]));
		if (status[0] != '2') {
			z->refused++;
			char why[400];
			if (found == -2)
				snprintf(why, sizeof(why), "key %.12s… is authorised as '%s.pub', a name an appliance cannot have "
							   NAME_RULE ": rename the file",
					 key, user);
			else
				snprintf(why, sizeof(why), "%s %.12s… is not in the authorised keys",
					 nf >= 6 && zmq_msg_size(&f[5]) == 5 ? "key" : "a peer without CURVE:", key[0] ? key : "");
			user[0] = 0; /* no user id with a refusal */
			if (on_refused)
				on_refused(ctx, addr, why);
		}
		/* reply: version, request id, status code, status text, user id, metadata */
		zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
		if (nf >= 2)
			zmq_send(z->sock, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
		else
			zmq_send(z->sock, "", 0, ZMQ_SNDMORE);
		zmq_send(z->sock, status, 3, ZMQ_SNDMORE);
		zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
		zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
		zmq_send(z->sock, "", 0, 0);
		for (int i = 0; i < nf; i++)
			zmq_msg_close(&f[i]);
	}
}
