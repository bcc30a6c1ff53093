# appliance/ and watchdog/ unit tests.
op_unit_test(test_dedup unit/test_dedup.c)
op_unit_test(test_modelfile unit/test_modelfile.c)
op_unit_test(test_restart unit/test_restart.c)
op_unit_test(test_config unit/test_config.c)
op_unit_test(test_outbox unit/test_outbox.c)
op_unit_test(test_log unit/test_log.c)

# docs/configuration.md is generated from the schema table: it must not drift from it.
add_executable(config_docs_tool unit/config_docs_tool.c)
target_link_libraries(config_docs_tool PRIVATE op_appliance)
add_test(NAME config_docs_current
  COMMAND sh -c "$<TARGET_FILE:config_docs_tool> > config-table.md && sed -n '/^| key |/,$p' ${CMAKE_SOURCE_DIR}/docs/configuration.md | diff -u - config-table.md"
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(config_docs_current PROPERTIES LABELS unit)
# The corpus of operator mistakes: each reported at its exact LINE:COL, nothing else reported.
add_test(NAME config_mistakes
  COMMAND ${OP_PY} ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_config_mistakes.py
          $<TARGET_FILE:outpostctl> ${CMAKE_CURRENT_SOURCE_DIR}/config/mistakes)
set_tests_properties(config_mistakes PROPERTIES LABELS integration)
