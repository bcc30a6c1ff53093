# power/: the governor on the simulated plant (the issue's control figures), the sensors.
op_unit_test(test_power_governor unit/test_power_governor.c)
op_unit_test(test_power_sensors unit/test_power_sensors.c)
op_unit_test(test_power_schedule unit/test_power_schedule.c)
