/*
 * sensor.h — node power readings. Each sensor is optional and found at start; node power is
 * the sum of the sensors the configuration says to count (power.sensors).
 *
 *   nvml   every NVIDIA GPU through libnvidia-ml.so.1, loaded with dlopen at run time (the
 *          driver's library, not the toolkit's): the energy counter (mJ since driver load) when
 *          the GPU has one, its power reading (mW, a 1 s mean) otherwise
 *   rapl   /sys/class/powercap/intel-rapl:N/energy_uj, top-level packages (sub-zones are inside
 *          them and would count twice); wraps at max_energy_range_uj
 *   hwmon  /sys/class/hwmon/hwmonN: energyK_input (µJ) preferred, powerK_input or
 *          powerK_average (µW) otherwise; every device, or those whose `name` is listed
 *   meter  an external site meter: readings arrive from outside (the appliance subscribes to
 *          its ZeroMQ endpoint) through op_power_sensor_feed; stale after 2 periods
 *   sim    the simulated plant (plant.h), fed the inference work the appliance measures
 *
 * Energy counters are read as differences (the mean power since the last read, exactly the
 * period's energy); a counter that goes backwards without a wrap range (a driver reload) gives
 * one period without a reading. A reading that is not finite, negative or above 100 kW is an
 * error, not a number to control on.
 */
#ifndef OP_POWER_SENSOR_H
#define OP_POWER_SENSOR_H
#include <stddef.h>
#include <stdint.h>

#include "power/plant.h"

typedef struct op_power_sensor op_power_sensor;

/* kind: nvml | rapl | hwmon | meter | sim. sysfs_root: "/sys" (tests point it elsewhere).
 * filter: hwmon device names, comma-separated ("" = all). plant: sim's parameters.
 * Returns 0, or a negative errno with the reason in err (no such sensor here: -ENODEV). */
int op_power_sensor_open(const char *kind, const char *sysfs_root, const char *filter,
			 const op_plant_params *plant, op_power_sensor **out, char *err, size_t errcap);
void op_power_sensor_close(op_power_sensor *s);
/* Mean watts since the last read (counters) or now (power readings). 0, or a negative errno
 * with the reason in err. */
int op_power_sensor_read(op_power_sensor *s, uint64_t now_ns, double *watts, char *err, size_t errcap);
const char *op_power_sensor_kind(const op_power_sensor *s);
/* What it reads, in words ("rapl: package-0, package-1 (energy counters)"). */
const char *op_power_sensor_describe(const op_power_sensor *s);
/* What the sensor found but cannot read and leaves out of its sum (RAPL: a package of several
 * whose counter cannot be read), naming the file; "" when it reads all it found. */
const char *op_power_sensor_unread(const op_power_sensor *s);
/* meter: a reading from the site meter. */
void op_power_sensor_feed(op_power_sensor *s, double watts, uint64_t now_ns);
void op_power_sensor_set_stale_after(op_power_sensor *s, uint64_t ns);
/* sim: its plant (NULL for other kinds). */
op_plant *op_power_sensor_plant(op_power_sensor *s);
/* nvml: the library handle, for the GPU actuators (NULL for other kinds). */
struct op_nvml;
struct op_nvml *op_power_sensor_nvml(op_power_sensor *s);

#endif
