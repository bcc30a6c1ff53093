# uplink/ unit tests and the h5py read-back of a sealed segment.
op_unit_test(test_sha256_segment unit/test_sha256_segment.c)
op_unit_test(test_uplink unit/test_uplink.c)
op_unit_test(test_escape unit/test_escape.c)
# The link north under CURVE: listed keys only, admission and rotation without restarts.
add_test(NAME uplink_curve
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_curve.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(uplink_curve PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK north_link)
# A full disk for real (a small tmpfs; needs root, else skipped): eviction order, tombstones,
# quarantine of a corrupt entry, no crash, nothing corrupt, recovery north.
add_test(NAME uplink_diskfull
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_diskfull.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(uplink_diskfull PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK north_link)
# North's disk with room for one of two files (a 16 MiB tmpfs; needs root, else skipped): the
# whole file reserved at OFFER, the other refused before a byte is sent, sent once there is room.
add_test(NAME uplink_north_full
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_north_full.py $<TARGET_FILE_DIR:outpostd>)
# both locks: it counts the bytes each appliance sends, exactly, under a 5 s sender timeout
set_tests_properties(uplink_north_full PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK "e2e_cpu;north_link")
# The disk filling up under the store (a small tmpfs; needs root, else skipped): it pauses
# instead of restarting into it, and resumes by itself with nothing lost once there is room.
add_test(NAME store_diskpause
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_diskpause.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(store_diskpause PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# A leftover whose rows are all in outbox/ already is removed only after outbox/ is fsynced
# (the real daemon under strace; needs strace, else skipped).
add_test(NAME store_salvage_durable
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_salvage_durable.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(store_salvage_durable PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# A segment north confirmed is linked into sent/ and sent/ fsynced before it leaves outbox/
# (strace on the real daemon; skipped without strace or ptrace).
add_test(NAME uplink_sent_durable
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_sent_durable.py $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(uplink_sent_durable PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# 100 cuts of the link at random offsets through a cutting proxy: byte-identical files north,
# none twice, every stored event north once.
add_test(NAME uplink_cuts
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_cuts.py $<TARGET_FILE_DIR:outpostd> 100)
set_tests_properties(uplink_cuts PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 900
  RESOURCE_LOCK north_link)
# 200 SIGKILLs of the uplink stage and of outpost-north during transfers: zero loss, no
# duplicate north, the ledger whole (one line per published file).
add_test(NAME uplink_kills
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_kills.py $<TARGET_FILE_DIR:outpostd> 200)
set_tests_properties(uplink_kills PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 900
  RESOURCE_LOCK north_link)
# North in its own network namespace over a tbf-shaped veth (root, iproute2; else skipped):
# interface cuts, the cap within ±5% over 60 s on the interface's counters, alerts behind 2 GiB
# of bulk within a chunk time, north's metrics file.
add_test(NAME uplink_netns
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_netns.py $<TARGET_FILE_DIR:outpostd>)
# both locks: it times the cap (±5 % over 60 s) and an alert's latency (a quarter second of slack)
set_tests_properties(uplink_netns PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 600
  RESOURCE_LOCK "e2e_cpu;north_link")
