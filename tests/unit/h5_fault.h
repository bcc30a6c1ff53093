/*
 * h5_fault.h — a file that breaks the HDF5 library, for the program that includes it: this
 * H5Fopen takes the place of the library's for the code linked into the program. A path that
 * holds "h5crash" dies of SIGSEGV, as the library does on a file whose structures it trusts
 * and should not; "h5hang" waits a minute, as on a structure that loops. Every other path goes
 * to the library. Include it in one file of a test program only.
 */
#ifndef OP_TEST_H5_FAULT_H
#define OP_TEST_H5_FAULT_H
#include <dlfcn.h>
#include <hdf5.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

hid_t H5Fopen(const char *filename, unsigned flags, hid_t fapl_id)
{
	if (strstr(filename, "h5crash")) {
		signal(SIGSEGV, SIG_DFL); /* not a sanitizer's report: a plain death */
		raise(SIGSEGV);
	}
	if (strstr(filename, "h5hang"))
		sleep(60);
	hid_t (*real)(const char *, unsigned, hid_t);
	*(void **)&real = dlsym(RTLD_NEXT, "H5Fopen");
	return real(filename, flags, fapl_id);
}
#endif
