# uplink/ unit tests and the h5py read-back of a sealed segment.
op_unit_test(test_sha256_segment unit/test_sha256_segment.c)
op_unit_test(test_uplink unit/test_uplink.c)
