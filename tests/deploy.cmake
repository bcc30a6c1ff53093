# The systemd unit, verified by the real systemd-analyze.
add_test(NAME unit_file_verify
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/integration/verify_unit.sh
          ${CMAKE_SOURCE_DIR}/deploy/outpost.service $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(unit_file_verify PROPERTIES LABELS integration SKIP_RETURN_CODE 77)
# The same unit under a real systemd booted as PID 1 in private namespaces: READY=1, the
# hardening, the user, rung 1 (stage restart) and rung 2 (process restart by systemd).
add_test(NAME systemd_unit
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/systemd/run.sh $<TARGET_FILE_DIR:outpostd>)
set_tests_properties(systemd_unit PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 300
  RESOURCE_LOCK e2e_cpu)
# The Debian package: lintian-clean, installs with dpkg -i (unit verified in place), purges.
add_test(NAME package_deb COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/deploy/package.sh ${CMAKE_BINARY_DIR})
set_tests_properties(package_deb PROPERTIES LABELS integration SKIP_RETURN_CODE 77 TIMEOUT 600
  RESOURCE_LOCK e2e_cpu)
