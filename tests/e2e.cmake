# End-to-end tests: the real daemon, simulator and north receiver; results read back with h5py.
foreach(case synthetic pyproducer detector_restart wild_first replay kill malformed window_bytes salvage nocheckpoint first_report north_refusing clock_behind supervisor_dies stop_held live notify budget safemode safemode_storm safemode_nostart metrics reload model_change badconfig badmodel demo)
  add_test(NAME e2e_${case}
    COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_e2e.py
            $<TARGET_FILE_DIR:outpostd> ${case} ${OP_ICECUBE_DATA})
  set_tests_properties(e2e_${case} PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
    RESOURCE_LOCK e2e_cpu COST 60) # COST: tests/CMakeLists.txt
endforeach()
# outpost-quantize reproduces the committed model and refuses broken inputs clearly.
add_test(NAME quantize_model
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_quantize.py $<TARGET_FILE_DIR:outpost-quantize> ${CMAKE_SOURCE_DIR})
set_tests_properties(quantize_model PROPERTIES LABELS integration TIMEOUT 120)
# Fault-injection soak (short): random crashes and hangs of infer/store/uplink under load.
add_test(NAME soak_short
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_soak.py $<TARGET_FILE_DIR:outpostd> 45 1)
# beside no other daemon and no CPU hog (tests/CMakeLists.txt): it times how fast the supervisor
# acts on a fault (within the stage deadline + 1 s), and a fuzz target's full core beside it
# would time the machine instead
set_tests_properties(soak_short PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 400
  RESOURCE_LOCK "e2e_cpu;north_link;cpu_hog")
