/* Checkpoints and weight files with tensors on the test device, whose memory the host cannot
 * read: the cases of device_io_cases.h (the same files byte for byte as from cpu tensors, and
 * loads bit for bit onto either device). */
#define _GNU_SOURCE
#define IO_DEV DC_TESTDEV
#define IO_SUITE testdev_io
#define IO_REQUIRE() cr_assert(dc_device_available(DC_TESTDEV), "this build lacks the test device")
#include "device_io_cases.h"
