# The systemd unit, verified by the real systemd-analyze.
add_test(NAME unit_file_verify
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/verify_unit.sh
          ${CMAKE_SOURCE_DIR}/deploy/outpost.service $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(unit_file_verify PROPERTIES LABELS integration SKIP_RETURN_CODE 77)
