/*
 * fuzz_config.c — libFuzzer target for the YAML configuration loader: any bytes must give
 * either a loaded configuration or counted errors, never a crash, a leak or a hang.
 */
#include <stdint.h>
#include <stdio.h>

#include "appliance/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	op_config c;
	op_config_defaults(&c);
	int rc = op_config_load_string(&c, (const char *)data, size, "fuzz", NULL);
	if (rc < 0 && rc != -12)
		__builtin_trap();
	return 0;
}
