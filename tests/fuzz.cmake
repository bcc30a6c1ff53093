# Fuzz targets: the wire decoder and the configuration loader.
#  - *_replay: the seed corpus through the target with the normal compiler (label unit, so it
#    also runs under ASan+UBSan);
#  - fuzz_*: clang's libFuzzer for a bounded time on a copy of the corpus (label fuzz).
foreach(target wire config)
  if(target STREQUAL wire)
    set(srcs ${CMAKE_SOURCE_DIR}/ingest/wire.c ${CMAKE_SOURCE_DIR}/ingest/crc32c.c)
    set(libs "")
  else()
    set(srcs ${CMAKE_SOURCE_DIR}/appliance/config.c)
    set(libs -lyaml)
  endif()
  add_executable(fuzz_${target}_replay fuzz/fuzz_${target}.c fuzz/fuzz_driver.c)
  target_link_libraries(fuzz_${target}_replay PRIVATE op_appliance)
  add_test(NAME fuzz_${target}_replay COMMAND fuzz_${target}_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target})
  set_tests_properties(fuzz_${target}_replay PROPERTIES LABELS unit)

  find_program(OP_CLANG NAMES clang clang-14)
  if(OP_CLANG AND NOT OUTPOST_SANITIZE)
    set(bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${target})
    add_custom_command(OUTPUT ${bin}
      COMMAND ${OP_CLANG} -g -O1 -std=c17 -D_GNU_SOURCE -DOUTPOST_VERSION="fuzz"
              -fsanitize=fuzzer,address,undefined -I${CMAKE_SOURCE_DIR}
              ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${srcs} ${libs} -o ${bin}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${srcs}
      COMMENT "libFuzzer target fuzz_${target}")
    add_custom_target(fuzz_${target}_bin ALL DEPENDS ${bin})
    add_test(NAME fuzz_${target}
      COMMAND sh -c "rm -rf corpus-${target} && cp -r ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target} corpus-${target} && ${bin} -max_total_time=30 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 corpus-${target}"
      WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
endforeach()
