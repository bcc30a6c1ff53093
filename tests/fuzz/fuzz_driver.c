/*
 * fuzz_driver.c — replays every file of the corpus directories given on the command line
 * through LLVMFuzzerTestOneInput, so the seed corpus (and any crash a fuzzer once found, kept
 * in it) runs with the ordinary compiler and under ASan in every test run.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	int files = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		if (!d) {
			fprintf(stderr, "fuzz_driver: cannot open %s\n", argv[i]);
			return 1;
		}
		while ((de = readdir(d))) {
			char path[4096];
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			FILE *f = fopen(path, "rb");
			if (!f)
				continue;
			uint8_t *buf = malloc(1 << 20);
			size_t n = fread(buf, 1, 1 << 20, f);
			fclose(f);
			LLVMFuzzerTestOneInput(buf, n);
			free(buf);
			files++;
		}
		closedir(d);
	}
	fprintf(stderr, "fuzz_driver: %d inputs replayed, no crash\n", files);
	return files > 0 ? 0 : 1;
}
