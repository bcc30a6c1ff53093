# ingest/ unit tests.
op_unit_test(test_crc32c unit/test_crc32c.c)
op_unit_test(test_wire unit/test_wire.c)
op_unit_test(test_seqtrack unit/test_seqtrack.c)
op_unit_test(test_receiver unit/test_receiver.c)
op_unit_test(test_wal unit/test_wal.c)
# allocations that fail on demand (test_wal.c: __wrap_malloc), for the log's out-of-memory path
target_link_options(test_wal PRIVATE -Wl,--wrap=malloc)
op_unit_test(test_geometry_linefit unit/test_geometry_linefit.c)
op_unit_test(test_replay unit/test_replay.c)
