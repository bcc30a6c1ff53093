/*
 * segment.c — HDF5 result segments. See segment.h for the state diagram and invariants and
 * docs/result-format.md for the layout.
 *
 * Rows are buffered in memory and written a whole chunk at a time (an append is a memcpy);
 * op_segment_flush writes the partial buffer and asks HDF5 to flush, so a crashed writer leaves
 * a file op_segment_read can still open. HDF5's own error printing is switched off: every
 * failure comes back as a negative errno (-EIO for HDF5 errors, -ENOSPC for those where the
 * filesystem has less than 1 MiB left). Never logs.
 */
#include "uplink/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uplink/sha256.h"

int op_segment_space_low(const char *dir)
{
	struct statvfs v;
	if (statvfs(dir, &v) != 0)
		return 0;
	/* bytes, or inodes (many small files: a segment and its sidecar need two; a file system
	 * without a count of them says f_files 0) */
	return (unsigned long long)v.f_bavail * v.f_frsize < (1ull << 20) || (v.f_files > 0 && v.f_favail < 16);
}

/* What an HDF5 failure in dir most likely was: HDF5 reports no errno, and "input/output error"
 * would send the operator after a failing disk when it is a full one. */
static int h5_errno(const char *dir)
{
	return op_segment_space_low(dir) ? -ENOSPC : -EIO;
}

#define SEG_PATH 1024

struct op_segment {
	hid_t file, dset, mtype;
	char dir[SEG_PATH], name[256], path[SEG_PATH + 300];
	op_result_row *buf;
	uint32_t chunk, nbuf;
	uint64_t written, rows;
	uint64_t first_time, last_time;
};

static hid_t mem_type(void)
{
	hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(op_result_row));
	if (t < 0)
		return t;
#define M(name, type) H5Tinsert(t, #name, HOFFSET(op_result_row, name), type)
	M(stream_id, H5T_NATIVE_UINT32);
	M(n_pulses, H5T_NATIVE_UINT32);
	M(sequence, H5T_NATIVE_UINT64);
	M(detector_time_ns, H5T_NATIVE_UINT64);
	M(dir_x, H5T_NATIVE_FLOAT);
	M(dir_y, H5T_NATIVE_FLOAT);
	M(dir_z, H5T_NATIVE_FLOAT);
	M(zenith_rad, H5T_NATIVE_FLOAT);
	M(azimuth_rad, H5T_NATIVE_FLOAT);
	M(log10_energy_gev, H5T_NATIVE_FLOAT);
	M(track_score, H5T_NATIVE_FLOAT);
	M(guess_dir_x, H5T_NATIVE_FLOAT);
	M(guess_dir_y, H5T_NATIVE_FLOAT);
	M(guess_dir_z, H5T_NATIVE_FLOAT);
	M(model_id, H5T_NATIVE_UINT32);
	M(flags, H5T_NATIVE_UINT32);
#undef M
	return t;
}

/* The file type: the same members, packed, explicitly little-endian. */
static hid_t file_type(void)
{
	static const struct {
		const char *name;
		int kind; /* 0 u32, 1 u64, 2 f32 */
	} m[] = {{"stream_id", 0}, {"n_pulses", 0}, {"sequence", 1}, {"detector_time_ns", 1},
		 {"dir_x", 2}, {"dir_y", 2}, {"dir_z", 2}, {"zenith_rad", 2}, {"azimuth_rad", 2},
		 {"log10_energy_gev", 2}, {"track_score", 2}, {"guess_dir_x", 2}, {"guess_dir_y", 2},
		 {"guess_dir_z", 2}, {"model_id", 0}, {"flags", 0}};
	size_t off = 0;
	hid_t t = H5Tcreate(H5T_COMPOUND, OP_RESULT_ROW_BYTES); /* packed: 4 u32 + 2 u64 + 10 f32 */

	for (size_t i = 0; t >= 0 && i < sizeof(m) / sizeof(m[0]); i++) {
		hid_t ty = m[i].kind == 0 ? H5T_STD_U32LE : m[i].kind == 1 ? H5T_STD_U64LE : H5T_IEEE_F32LE;
		if (H5Tinsert(t, m[i].name, off, ty) < 0) {
			H5Tclose(t);
			return -1;
		}
		off += m[i].kind == 1 ? 8 : 4;
	}
	return t;
}

static void utc_now(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int attr_str(hid_t obj, const char *name, const char *value)
{
	hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a;
	int rc = -EIO;

	if (t < 0 || sp < 0)
		goto out;
	H5Tset_size(t, strlen(value) > 0 ? strlen(value) : 1);
	H5Tset_strpad(t, H5T_STR_NULLPAD);
	H5Tset_cset(t, H5T_CSET_UTF8);
	if (H5Aexists(obj, name) > 0)
		H5Adelete(obj, name);
	a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
	if (a >= 0) {
		rc = H5Awrite(a, t, value) < 0 ? -EIO : 0;
		H5Aclose(a);
	}
out:
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
	return rc;
}

static int attr_u64(hid_t obj, const char *name, uint64_t v)
{
	hid_t sp = H5Screate(H5S_SCALAR), a;
	int rc = -EIO;

	if (sp < 0)
		return -EIO;
	/* in place when it exists: deleting first would leave none if the create then failed */
	a = H5Aexists(obj, name) > 0 ? H5Aopen(obj, name, H5P_DEFAULT)
				     : H5Acreate2(obj, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
	if (a >= 0) {
		rc = H5Awrite(a, H5T_NATIVE_UINT64, &v) < 0 ? -EIO : 0;
		H5Aclose(a);
	}
	H5Sclose(sp);
	return rc;
}

int op_segment_create(const char *segments_dir, const char *name, const op_segment_meta *meta, op_segment **ret)
{
	op_segment *s = calloc(1, sizeof(*s));
	hid_t fapl = -1, dcpl = -1, space = -1, ftype = -1;
	hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk;
	char now[32];
	int rc = -EIO;

	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (!s)
		return -ENOMEM;
	s->file = s->dset = s->mtype = -1;
	if (strlen(segments_dir) >= sizeof(s->dir) || strlen(name) >= sizeof(s->name) || strchr(name, '/')) {
		rc = -EINVAL;
		goto fail;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", segments_dir);
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->path, sizeof(s->path), "%s/%s.h5", segments_dir, name);
	if (access(s->path, F_OK) == 0) {
		rc = -EEXIST;
		goto fail;
	}
	s->chunk = meta->chunk_rows ? meta->chunk_rows : 4096;
	s->buf = malloc((size_t)s->chunk * sizeof(op_result_row));
	if (!s->buf) {
		rc = -ENOMEM;
		goto fail;
	}
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
	s->file = H5Fcreate(s->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
	if (s->file < 0) {
		rc = access(segments_dir, W_OK) != 0 ? -errno : h5_errno(segments_dir);
		goto fail;
	}
	s->mtype = mem_type();
	ftype = file_type();
	if (ftype < 0)
		goto fail;
	space = H5Screate_simple(1, &dims, &maxdims);
	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	chunk = s->chunk;
	H5Pset_chunk(dcpl, 1, &chunk);
	if (meta->deflate_level > 0) {
		H5Pset_shuffle(dcpl);
		H5Pset_deflate(dcpl, (unsigned)meta->deflate_level);
	}
	s->dset = H5Dcreate2(s->file, "results", ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	if (s->mtype < 0 || s->dset < 0)
		goto fail;
	utc_now(now, sizeof(now));
	if (attr_str(s->file, "format", "outpost-results") < 0 || attr_u64(s->file, "format_version", 2) < 0 ||
	    attr_str(s->file, "model", meta->model_name ? meta->model_name : "") < 0 ||
	    attr_str(s->file, "config_hash", meta->config_hash ? meta->config_hash : "") < 0 ||
	    attr_str(s->file, "software_version", meta->software_version ? meta->software_version : "") < 0 ||
	    attr_str(s->file, "site", meta->site ? meta->site : "") < 0 || attr_str(s->file, "created_utc", now) < 0 ||
	    attr_u64(s->file, "rows_flushed", 0) < 0)
		goto fail;
	rc = 0;
	*ret = s;
	goto out;
fail:
	if (s->file >= 0)
		unlink(s->path); /* we created it: a half-made segment must not stay */
	op_segment_abandon(s);
out:
	if (fapl >= 0)
		H5Pclose(fapl);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (space >= 0)
		H5Sclose(space);
	if (ftype >= 0)
		H5Tclose(ftype);
	return rc;
}

/* Write the buffered rows at the end of the dataset. */
static int write_buf(op_segment *s)
{
	hsize_t start = s->written, count = s->nbuf, size = s->written + s->nbuf;
	hid_t fs, ms;
	int rc;

	if (s->nbuf == 0)
		return 0;
	if (H5Dset_extent(s->dset, &size) < 0)
		return h5_errno(s->dir);
	rc = -EIO;
	fs = H5Dget_space(s->dset);
	ms = H5Screate_simple(1, &count, NULL);
	if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
	    H5Dwrite(s->dset, s->mtype, ms, fs, H5P_DEFAULT, s->buf) >= 0) {
		s->written += s->nbuf;
		s->nbuf = 0;
		rc = 0;
	} else {
		rc = h5_errno(s->dir);
		/* back to the rows written, so that a file closed after this keeps no rows of fill values */
		hsize_t was = s->written;
		H5Dset_extent(s->dset, &was);
	}
	if (fs >= 0)
		H5Sclose(fs);
	if (ms >= 0)
		H5Sclose(ms);
	return rc;
}

int op_segment_append(op_segment *s, const op_result_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s->rows == 0)
			s->first_time = rows[i].detector_time_ns;
		s->last_time = rows[i].detector_time_ns;
		s->buf[s->nbuf++] = rows[i];
		s->rows++;
		if (s->nbuf == s->chunk) {
			int rc = write_buf(s);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/*
 * The rows first, then rows_flushed saying how many there are, then that: a reader of a file
 * left open (salvage) takes no more rows than the attribute, so a write cut short — a full disk,
 * a crash — cannot hand it rows that were never written (HDF5 reads them as zeros).
 */
int op_segment_flush(op_segment *s)
{
	int rc = write_buf(s);
	if (rc < 0)
		return rc;
	if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0 || attr_u64(s->file, "rows_flushed", s->written) < 0 ||
	    H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0)
		return h5_errno(s->dir);
	return 0;
}

uint64_t op_segment_rows(const op_segment *s)
{
	return s->rows;
}

uint64_t op_segment_bytes(const op_segment *s)
{
	hsize_t size = 0;
	if (H5Fget_filesize(s->file, &size) < 0)
		size = 0;
	return (uint64_t)size + (uint64_t)s->nbuf * OP_RESULT_ROW_BYTES;
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC), rc = 0;
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int op_segment_sync_dir(const char *dir)
{
	return fsync_path(dir, 1);
}

int op_segment_mkdir(const char *path, mode_t mode)
{
	const int made = mkdir(path, mode) == 0;
	if (!made && errno != EEXIST)
		return -errno;
	char parent[4096];
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/') /* "dir/": its parent, not itself */
		len--;
	if (len >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, len);
	parent[len] = 0;
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		parent[1] = 0;
	else
		*slash = 0;
	/* there already: fsynced again all the same, at no cost worth counting (starts, alerts),
	 * in case a start before this one died between its mkdir and that fsync; best effort, since
	 * a parent such as / may not be ours to sync */
	const int rc = fsync_path(parent, 1);
	return made && rc != -EACCES && rc != -EPERM ? rc : 0; /* a parent we may not open: no fault of the disk */
}

int op_segment_seal(op_segment *s, const char *outbox_dir, char sha256_hex[65])
{
	char side[SEG_PATH + 320], side_out[SEG_PATH + 320], final[SEG_PATH + 320], line[400], now[32];
	int rc, fd = -1;
	hid_t file;

	rc = write_buf(s);
	if (rc < 0)
		goto fail;
	utc_now(now, sizeof(now));
	/* the rows, flushed, before any attribute that counts them */
	if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) {
		rc = h5_errno(s->dir);
		goto fail;
	}
	if (attr_u64(s->file, "rows", s->rows) < 0 || attr_u64(s->file, "rows_flushed", s->rows) < 0 ||
	    attr_u64(s->file, "first_detector_time_ns", s->first_time) < 0 ||
	    attr_u64(s->file, "last_detector_time_ns", s->last_time) < 0 || attr_str(s->file, "sealed_utc", now) < 0 ||
	    H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) {
		rc = h5_errno(s->dir);
		goto fail;
	}
	H5Dclose(s->dset);
	H5Tclose(s->mtype);
	s->dset = s->mtype = -1;
	file = s->file;
	s->file = -1;
	if (H5Fclose(file) < 0) {
		rc = h5_errno(s->dir);
		goto fail;
	}
	/* write → flush → close → fsync file */
	if ((rc = fsync_path(s->path, 0)) < 0)
		goto fail;
	if ((rc = op_sha256_file(s->path, sha256_hex)) < 0)
		goto fail;
	/* the sidecar, durable, before anything moves */
	snprintf(side, sizeof(side), "%s/%s.h5.sha256", s->dir, s->name);
	snprintf(side_out, sizeof(side_out), "%s/%s.h5.sha256", outbox_dir, s->name);
	snprintf(final, sizeof(final), "%s/%s.h5", outbox_dir, s->name);
	int len = snprintf(line, sizeof(line), "%s  %s.h5\n", sha256_hex, s->name);
	errno = 0; /* a short write sets none: -EIO, not an earlier call's errno */
	fd = open(side, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || write(fd, line, (size_t)len) != len || fsync(fd) != 0) {
		rc = errno ? -errno : -EIO;
		goto fail;
	}
	close(fd);
	fd = -1;
	/* rename sidecar, then the segment, into outbox/; then make the renames durable */
	if (rename(side, side_out) != 0) {
		rc = -errno;
		unlink(side);
		goto fail;
	}
	if (rename(s->path, final) != 0) {
		rc = -errno;
		unlink(side_out); /* nothing incomplete may stay in outbox/ */
		goto fail;
	}
	if ((rc = fsync_path(outbox_dir, 1)) < 0)
		goto fail_published;
	if ((rc = fsync_path(s->dir, 1)) < 0)
		goto fail_published;
	op_segment_abandon(s);
	return 0;
fail_published:
	/* The renames happened but may not be durable: report it; the caller must not ack. */
fail:
	if (fd >= 0)
		close(fd);
	op_segment_abandon(s);
	return rc < 0 ? rc : -EIO;
}

void op_segment_abandon(op_segment *s)
{
	if (!s)
		return;
	if (s->dset >= 0)
		H5Dclose(s->dset);
	if (s->mtype >= 0)
		H5Tclose(s->mtype);
	if (s->file >= 0)
		H5Fclose(s->file);
	free(s->buf);
	free(s);
}

static int read_attr_u64(hid_t obj, const char *name, uint64_t *v)
{
	if (H5Aexists(obj, name) <= 0)
		return -ENOENT;
	hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		return -EIO;
	int rc = H5Aread(a, H5T_NATIVE_UINT64, v) < 0 ? -EIO : 0;
	H5Aclose(a);
	return rc;
}

int op_segment_read(const char *path, op_result_row **rows, size_t *n)
{
	hid_t file, dset = -1, space = -1, mt = -1;
	hssize_t count;
	int rc = -EIO;
	op_result_row *out = NULL;

	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (file < 0)
		return access(path, R_OK) != 0 ? -errno : -EIO;
	dset = H5Dopen2(file, "results", H5P_DEFAULT);
	if (dset < 0)
		goto out;
	space = H5Dget_space(dset);
	count = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
	if (count < 0)
		goto out;
	/* only the rows a flush vouched for (op_segment_flush; a seal sets it to all): a file left
	 * open by a crash or a full disk may be longer than what was written, and only they are
	 * read, so that a chunk beyond them cut short by the crash cannot fail the read of the
	 * rows before it. A file without the attribute was not written by this code, and is taken
	 * whole. */
	uint64_t vouched;
	if (read_attr_u64(file, "rows_flushed", &vouched) == 0 && vouched < (uint64_t)count)
		count = (hssize_t)vouched;
	out = calloc(count > 0 ? (size_t)count : 1, sizeof(op_result_row));
	if (!out) {
		rc = -ENOMEM;
		goto out;
	}
	mt = mem_type();
	if (count > 0) {
		hsize_t start = 0, len = (hsize_t)count;
		hid_t mem = H5Screate_simple(1, &len, NULL);
		herr_t r = mem >= 0 ? H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &len, NULL) : -1;
		if (r >= 0)
			r = H5Dread(dset, mt, mem, space, H5P_DEFAULT, out);
		if (mem >= 0)
			H5Sclose(mem);
		if (r < 0)
			goto out;
	}
	*rows = out;
	*n = (size_t)count;
	out = NULL;
	rc = 0;
out:
	free(out);
	if (mt >= 0)
		H5Tclose(mt);
	if (space >= 0)
		H5Sclose(space);
	if (dset >= 0)
		H5Dclose(dset);
	H5Fclose(file);
	return rc;
}

static long count_rows_here(const char *path)
{
	hid_t file, dset, space;
	long n = -EIO;

	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (file < 0)
		return -EIO;
	dset = H5Dopen2(file, "results", H5P_DEFAULT);
	if (dset >= 0) {
		space = H5Dget_space(dset);
		if (space >= 0) {
			n = (long)H5Sget_simple_extent_npoints(space);
			if (n < 0)
				n = -EIO;
			H5Sclose(space);
		}
		H5Dclose(dset);
	}
	H5Fclose(file);
	return n;
}

/*
 * The file is read by a child process: it came from elsewhere (north reads what appliances
 * send; the uplink, a file that may have rotted on the disk), and the HDF5 library parses it
 * trusting its structures. A file that makes the library crash or loop then costs one count,
 * not the process that asked: north, restarted on the same partial and the same COMMIT, would
 * otherwise die again on every offer of it, for every site it serves.
 */
long op_segment_count_rows(const char *path)
{
	enum { LIMIT_MS = 10000 }; /* a local file of any size opens in well under a second */
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	const pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]), close(p[1]);
		return -e;
	}
	if (pid == 0) {
		/* a looping reader does not outlive the one who asked (nor a parent gone already);
		 * it holds none of its descriptors (a listening socket kept by a child would stop
		 * the next north from binding), and dies of what would end a process */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		signal(SIGTERM, SIG_DFL), signal(SIGINT, SIG_DFL), signal(SIGHUP, SIG_DFL);
		if (p[1] != 3 && dup2(p[1], 3) != 3)
			_exit(1);
		int nul = open("/dev/null", O_RDWR); /* 0-2 too (a parent started with them closed
						      * has its pipe or a socket there) */
		for (int fd = 0; fd < 3 && nul >= 0; fd++)
			if (fd != nul)
				dup2(nul, fd);
		if (close_range(4, ~0u, 0) != 0) { /* a kernel before 5.9, or a filter without it */
			long max = sysconf(_SC_OPEN_MAX);
			for (long fd = 4; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
				close((int)fd);
		}
		long n = count_rows_here(path);
		_exit(write(3, &n, sizeof(n)) == (ssize_t)sizeof(n) ? 0 : 1);
	}
	close(p[1]);
	long n = -ECHILD; /* no answer: the reader died */
	size_t got = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long left = LIMIT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int r = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) { /* the limit: it loops, or waits on something it never gets */
			kill(pid, SIGKILL);
			n = -ETIMEDOUT;
			break;
		}
		ssize_t k = read(p[0], (char *)&n + got, sizeof(n) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			n = -ECHILD;
			break;
		}
		if ((got += (size_t)k) == sizeof(n))
			break;
	}
	close(p[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) /* ECHILD: a SIGCHLD handler reaped it */
		;
	return n;
}

int op_segment_read_attr(const char *path, const char *name, char *buf, size_t cap)
{
	hid_t file, a = -1, ft = -1, mt = -1;
	int rc = -EIO;
	char *tmp = NULL;

	if (cap == 0)
		return -EINVAL;
	buf[0] = 0;
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (file < 0)
		return access(path, R_OK) != 0 ? -errno : -EIO;
	if (H5Aexists(file, name) <= 0) {
		rc = -ENOENT;
		goto out;
	}
	if ((a = H5Aopen(file, name, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 ||
	    H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) != 0)
		goto out; /* this code writes fixed-length strings only */
	hid_t sp = H5Aget_space(a);
	hssize_t points = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
	if (sp >= 0)
		H5Sclose(sp);
	if (points != 1)
		goto out; /* one string, not an array of them (H5Aread would fill every element) */
	size_t size = H5Tget_size(ft);
	if (!(tmp = calloc(size + 1, 1))) {
		rc = -ENOMEM;
		goto out;
	}
	mt = H5Tcopy(H5T_C_S1);
	if (mt < 0 || H5Tset_size(mt, size) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0 ||
	    H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Aread(a, mt, tmp) < 0) /* no conversion between csets */
		goto out;
	snprintf(buf, cap, "%s", tmp);
	rc = 0;
out:
	free(tmp);
	if (mt >= 0)
		H5Tclose(mt);
	if (ft >= 0)
		H5Tclose(ft);
	if (a >= 0)
		H5Aclose(a);
	H5Fclose(file);
	return rc;
}
