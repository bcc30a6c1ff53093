# uplink/ unit tests and the h5py read-back of a sealed segment.
op_unit_test(test_sha256_segment unit/test_sha256_segment.c)
op_unit_test(test_uplink unit/test_uplink.c)
# The link north under CURVE: listed keys only, admission and rotation without restarts.
add_test(NAME uplink_curve
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_curve.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(uplink_curve PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# A full disk for real (a small tmpfs; needs root, else skipped): eviction order, tombstones,
# quarantine of a corrupt entry, no crash, nothing corrupt, recovery north.
add_test(NAME uplink_diskfull
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_diskfull.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(uplink_diskfull PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# 100 cuts of the link at random offsets through a cutting proxy: byte-identical files north,
# none twice, every stored event north once.
add_test(NAME uplink_cuts
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cuts.py $<TARGET_FILE_DIR:outpostd> 100)
set_tests_properties(uplink_cuts PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 900
  RESOURCE_LOCK e2e_cpu)
