/*
 * test_sha256_segment.c — SHA-256 against the NIST FIPS 180-4 examples and incremental
 * updates split everywhere; HDF5 segments: rows read back exactly, the seal's durability order
 * (file in outbox/, sidecar matching the file, nothing left in segments/), refusals that leave
 * outbox/ clean, a writer killed after a flush whose rows can still be read, and a file that
 * crashes or hangs the HDF5 library costing only its row count.
 */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit/check.h"
#include "unit/h5_fault.h"
#include "uplink/segment.h"
#include "uplink/sha256.h"

static op_result_row row(uint64_t i)
{
	return (op_result_row){.stream_id = (uint32_t)(i % 3), .n_pulses = (uint32_t)(i * 7 % 1000),
			       .sequence = i, .detector_time_ns = 1700000000000000000ull + i * 370370,
			       .dir_x = (float)i * 0.5f, .dir_y = -(float)i, .dir_z = 0.25f, .zenith_rad = 1.0f,
			       .azimuth_rad = (float)(i % 628) / 100.0f, .log10_energy_gev = 3.5f,
			       .track_score = 0.125f, .model_id = 4, .flags = (uint32_t)(i & 0xf)};
}

static int rows_equal(const op_result_row *a, const op_result_row *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const op_result_row *x = &a[i], *y = &b[i];
		if (x->stream_id != y->stream_id || x->n_pulses != y->n_pulses || x->sequence != y->sequence ||
		    x->detector_time_ns != y->detector_time_ns || x->dir_x != y->dir_x || x->dir_y != y->dir_y ||
		    x->dir_z != y->dir_z || x->zenith_rad != y->zenith_rad || x->azimuth_rad != y->azimuth_rad ||
		    x->log10_energy_gev != y->log10_energy_gev || x->track_score != y->track_score ||
		    x->model_id != y->model_id || x->flags != y->flags)
			return 0;
	}
	return 1;
}

static int exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

int main(void)
{
	char hex[65], hex2[65], dir[] = "/tmp/outpost-test-seg-XXXXXX", seg[128], out[128], path[300], line[200];
	const char *abc = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	op_sha256_buf_hex("", 0, hex);
	CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	op_sha256_buf_hex("abc", 3, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	op_sha256_buf_hex(abc, strlen(abc), hex);
	CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
	char *million = malloc(1000000);
	memset(million, 'a', 1000000);
	op_sha256_buf_hex(million, 1000000, hex);
	CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
	free(million);
	uint8_t msg[200];
	for (int i = 0; i < 200; i++)
		msg[i] = (uint8_t)(i * 31 + 7);
	op_sha256_buf_hex(msg, 200, hex);
	int split_ok = 1;
	for (size_t cut = 0; cut <= 200; cut++) {
		op_sha256 s;
		uint8_t dig[32];
		op_sha256_init(&s);
		op_sha256_update(&s, msg, cut);
		op_sha256_update(&s, msg + cut, 200 - cut);
		op_sha256_final(&s, dig);
		op_sha256_hex(dig, hex2);
		split_ok &= !strcmp(hex, hex2);
	}
	CHECK(split_ok);

	/* segments */
	CHECK(mkdtemp(dir) != NULL);
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	snprintf(out, sizeof(out), "%s/outbox", dir);
	mkdir(seg, 0750);
	mkdir(out, 0750);
	op_segment_meta meta = {.model_name = "linefit-trim-qw-v1", .config_hash = "00112233aabbccdd",
				.software_version = "test", .site = "pole", .chunk_rows = 4096, .deflate_level = 4};
	op_segment *s = NULL;
	CHECK(op_segment_create(seg, "a", &meta, &s) == 0);
	static const size_t batches[] = {1, 7, 4095, 4096, 4097, 1, 1703};
	op_result_row *rows = malloc(20000 * sizeof(op_result_row));
	uint64_t n = 0;
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		for (size_t i = 0; i < batches[b]; i++)
			rows[n + i] = row(n + i);
		CHECK(op_segment_append(s, rows + n, batches[b]) == 0);
		n += batches[b];
	}
	CHECK_EQ_U64(op_segment_rows(s), 14000);
	op_segment *dup = NULL;
	CHECK(op_segment_create(seg, "a", &meta, &dup) == -EEXIST && dup == NULL);
	CHECK(op_segment_seal(s, out, hex) == 0);
	snprintf(path, sizeof(path), "%s/a.h5", out);
	CHECK(exists(path));
	snprintf(path, sizeof(path), "%s/a.h5", seg);
	CHECK(!exists(path));
	snprintf(path, sizeof(path), "%s/a.h5", out);
	CHECK(op_sha256_file(path, hex2) == 0 && !strcmp(hex, hex2));
	snprintf(path, sizeof(path), "%s/a.h5.sha256", out);
	FILE *f = fopen(path, "r");
	CHECK(f && fgets(line, sizeof(line), f));
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s  a.h5\n", hex);
	CHECK(!strcmp(line, path));
	op_result_row *back = NULL;
	size_t nb = 0;
	snprintf(path, sizeof(path), "%s/a.h5", out);
	CHECK(op_segment_read(path, &back, &nb) == 0 && nb == 14000);
	CHECK(back && rows_equal(back, rows, 14000));
	free(back);
	CHECK(op_segment_count_rows(path) == 14000);
	/* the attributes the store keeps when it salvages a file: what model, what configuration */
	char attr[64];
	CHECK(op_segment_read_attr(path, "model", attr, sizeof(attr)) == 0 && !strcmp(attr, meta.model_name));
	CHECK(op_segment_read_attr(path, "config_hash", attr, sizeof(attr)) == 0 && !strcmp(attr, meta.config_hash));
	CHECK(op_segment_read_attr(path, "model", attr, 4) == 0 && strlen(attr) == 3 &&
	      !strncmp(attr, meta.model_name, 3)); /* cut to the buffer, still a string */
	CHECK(op_segment_read_attr(path, "no_such_attribute", attr, sizeof(attr)) == -ENOENT && !attr[0]);
	CHECK(op_segment_read_attr(path, "rows", attr, sizeof(attr)) < 0); /* a number, not a string */
	{ /* an array of strings (a file written by hand): refused, not read past the buffer */
		hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), t = H5Tcopy(H5T_C_S1);
		hsize_t four = 4;
		hid_t sp = H5Screate_simple(1, &four, NULL);
		H5Tset_size(t, 8);
		hid_t a = H5Acreate2(file, "names", t, sp, H5P_DEFAULT, H5P_DEFAULT);
		CHECK(a >= 0 && H5Awrite(a, t, "event-a\0event-b\0event-c\0event-d") >= 0);
		H5Aclose(a);
		H5Sclose(sp);
		H5Tclose(t);
		H5Fclose(file);
		CHECK(op_segment_read_attr(path, "names", attr, sizeof(attr)) < 0);
	}

	/* empty segment */
	CHECK(op_segment_create(seg, "empty", &meta, &s) == 0);
	CHECK(op_segment_seal(s, out, hex) == 0);
	snprintf(path, sizeof(path), "%s/empty.h5", out);
	CHECK(op_segment_read(path, &back, &nb) == 0 && nb == 0);
	free(back);

	/* sealing into a directory that isn't there: an error, data still in segments/ */
	CHECK(op_segment_create(seg, "b", &meta, &s) == 0);
	CHECK(op_segment_append(s, rows, 10) == 0);
	snprintf(path, sizeof(path), "%s/missing", dir);
	CHECK(op_segment_seal(s, path, hex) < 0);
	snprintf(path, sizeof(path), "%s/b.h5", seg);
	CHECK(exists(path));
	CHECK(op_segment_read(path, &back, &nb) == 0 && nb == 10);
	free(back);
	snprintf(path, sizeof(path), "%s/b.h5.sha256", out);
	CHECK(!exists(path));

	/* a writer that dies after a flush, without closing: its rows are readable */
	pid_t pid = fork();
	if (pid == 0) {
		op_segment *c = NULL;
		if (op_segment_create(seg, "crash", &meta, &c) != 0 || op_segment_append(c, rows, 5000) != 0 ||
		    op_segment_flush(c) != 0)
			_exit(1);
		op_segment_append(c, rows + 5000, 100); /* buffered, never flushed: lost with the process */
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(path, sizeof(path), "%s/crash.h5", seg);
	back = NULL;
	CHECK(op_segment_read(path, &back, &nb) == 0 && nb == 5000);
	CHECK(back && rows_equal(back, rows, 5000));
	free(back);
	/* The same file grown past what was vouched for, the chunk beyond it damaged (a write the
	 * crash cut short): the vouched rows still read back, where reading the whole dataset
	 * failed and salvage moved them all to corrupt/ */
	{
		char grown[300];
		snprintf(grown, sizeof(grown), "%s/grown.h5", seg);
		int ok = 0;
		FILE *src = fopen(path, "rb"), *dst = fopen(grown, "wb");
		char cb[65536];
		size_t nr;
		while (src && dst && (nr = fread(cb, 1, sizeof(cb), src)) > 0)
			fwrite(cb, 1, nr, dst);
		if (src)
			fclose(src);
		if (dst)
			fclose(dst);
		hid_t hf = H5Fopen(grown, H5F_ACC_RDWR, H5P_DEFAULT), d = hf >= 0 ? H5Dopen2(hf, "results", H5P_DEFAULT) : -1;
		haddr_t addr = HADDR_UNDEF;
		hsize_t csize = 0;
		if (d >= 0) {
			hid_t ft = H5Dget_type(d);
			size_t rs = H5Tget_size(ft);
			char *buf = malloc(4000 * rs);
			hsize_t start = 0, len = 4000, ext = 9000, at = 5000, c2 = 8192;
			hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &len, NULL);
			H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &len, NULL);
			ok = buf && H5Dread(d, ft, ms, fs, H5P_DEFAULT, buf) >= 0 && H5Dset_extent(d, &ext) >= 0;
			H5Sclose(fs);
			fs = H5Dget_space(d);
			H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &len, NULL);
			ok = ok && H5Dwrite(d, ft, ms, fs, H5P_DEFAULT, buf) >= 0 && H5Fflush(hf, H5F_SCOPE_GLOBAL) >= 0;
			unsigned fm;
			ok = ok && H5Dget_chunk_info_by_coord(d, &c2, &fm, &addr, &csize) >= 0 && addr != HADDR_UNDEF;
			H5Sclose(fs), H5Sclose(ms), H5Tclose(ft), free(buf);
			H5Dclose(d);
		}
		if (hf >= 0)
			H5Fclose(hf);
		CHECK(ok);
		FILE *g = ok ? fopen(grown, "r+b") : NULL;
		if (g) { /* rows 8192… (all beyond the 5,000 vouched) no longer inflate */
			fseek(g, (long)addr, SEEK_SET);
			for (hsize_t i = 0; i < csize; i++)
				fputc(0xa5, g);
			fclose(g);
		}
		back = NULL;
		CHECK(op_segment_read(grown, &back, &nb) == 0 && nb == 5000);
		CHECK(back && rows_equal(back, rows, 5000));
		free(back);
	}
	/* garbage is an error, not a crash */
	snprintf(path, sizeof(path), "%s/garbage.h5", seg);
	f = fopen(path, "w");
	fputs("not hdf5", f);
	fclose(f);
	CHECK(op_segment_read(path, &back, &nb) < 0);
	CHECK(op_segment_count_rows(path) < 0);
	CHECK(op_segment_read_attr(path, "model", attr, sizeof(attr)) < 0);
	/* a file that crashes the HDF5 library, or makes it loop, costs the count, not this process
	 * (north reads what appliances send; h5_fault.h plays the library's part) */
	char good[300];
	snprintf(good, sizeof(good), "%s/crash.h5", seg); /* the 5,000 rows of the killed writer */
	snprintf(path, sizeof(path), "%s/seg-h5crash.h5", seg);
	CHECK(link(good, path) == 0);
	CHECK_EQ_U64((uint64_t)-op_segment_count_rows(path), ECHILD);
	snprintf(path, sizeof(path), "%s/seg-h5hang.h5", seg);
	CHECK(link(good, path) == 0);
	CHECK_EQ_U64((uint64_t)-op_segment_count_rows(path), ETIMEDOUT);
	CHECK(op_segment_count_rows(good) == 5000); /* and the next file is read as before */

	free(rows);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	CHECK(system(path) == 0);
	return check_finish("test_sha256_segment");
}
