# appliance/ and watchdog/ unit tests.
op_unit_test(test_dedup unit/test_dedup.c)
op_unit_test(test_restart unit/test_restart.c)
