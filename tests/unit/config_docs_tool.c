/* Prints the generated part of docs/configuration.md (the reference table). */
#include <stdio.h>

#include "appliance/config.h"

int main(void)
{
	op_config_print_docs(stdout);
	return 0;
}
