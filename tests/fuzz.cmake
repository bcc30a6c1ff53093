# Fuzz targets: the wire decoder and the configuration loader.
#  - *_replay: the seed corpus through the target with the normal compiler (label unit, so it
#    also runs under ASan+UBSan);
#  - fuzz_*: clang's libFuzzer for a bounded time on a copy of the corpus (label fuzz).
foreach(target wire config)
  if(target STREQUAL wire)
    set(srcs ${CMAKE_SOURCE_DIR}/ingest/wire.c ${CMAKE_SOURCE_DIR}/ingest/crc32c.c)
    set(libs "")
  else()
    set(srcs ${CMAKE_SOURCE_DIR}/appliance/config.c ${CMAKE_SOURCE_DIR}/power/schedule.c ${CMAKE_SOURCE_DIR}/uplink/windows.c)
    set(libs -lyaml -lm)
  endif()
  add_executable(fuzz_${target}_replay fuzz/fuzz_${target}.c fuzz/fuzz_driver.c)
  target_link_libraries(fuzz_${target}_replay PRIVATE op_appliance)
  add_test(NAME fuzz_${target}_replay COMMAND fuzz_${target}_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target})
  set_tests_properties(fuzz_${target}_replay PROPERTIES LABELS unit)
  if(target STREQUAL config) # the operator-mistake corpus is seed input too
    add_test(NAME fuzz_config_mistakes_replay COMMAND fuzz_config_replay ${CMAKE_SOURCE_DIR}/tests/config/mistakes)
    set_tests_properties(fuzz_config_mistakes_replay PROPERTIES LABELS unit)
  endif()

  find_program(OP_CLANG NAMES clang clang-14)
  if(OP_CLANG AND NOT OUTPOST_SANITIZE)
    set(bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_${target})
    add_custom_command(OUTPUT ${bin}
      COMMAND ${OP_CLANG} -g -O1 -std=c17 -D_GNU_SOURCE -DOUTPOST_VERSION="fuzz"
              -fsanitize=fuzzer,address,undefined -I${CMAKE_SOURCE_DIR}
              ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${srcs} ${libs} -o ${bin}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${srcs}
      IMPLICIT_DEPENDS C ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c
      COMMENT "libFuzzer target fuzz_${target}")
    add_custom_target(fuzz_${target}_bin ALL DEPENDS ${bin})
    add_test(NAME fuzz_${target}
      COMMAND sh -c "rm -rf corpus-${target} && cp -r ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target} corpus-${target} && if [ ${target} = config ]; then cp ${CMAKE_SOURCE_DIR}/tests/config/mistakes/*.yaml corpus-${target}/; fi && ${bin} -max_total_time=30 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 corpus-${target}"
      WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
endforeach()

# The model loader: a structure-aware target (tests/fuzz/fuzz_model.c) editing a real model file.
add_executable(fuzz_model_replay fuzz/fuzz_model.c fuzz/fuzz_driver.c)
target_link_libraries(fuzz_model_replay PRIVATE op_appliance)
add_test(NAME fuzz_model_replay COMMAND fuzz_model_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/model)
set_tests_properties(fuzz_model_replay PROPERTIES LABELS unit)
if(OP_CLANG AND NOT OUTPOST_SANITIZE AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_model)
  # all of kernels/ but the aarch64 rung and the AVX-512 one (one clang command builds every
  # file with the same flags; -mavx512 everywhere would not run on CPUs without it)
  file(GLOB ksrcs ${CMAKE_SOURCE_DIR}/kernels/*.c)
  list(FILTER ksrcs EXCLUDE REGEX "_(neon|neondot|avx512)\\.c$")
  set(msrcs ${CMAKE_SOURCE_DIR}/appliance/modelfile.c ${CMAKE_SOURCE_DIR}/uplink/escape.c ${ksrcs})
  list(TRANSFORM HDF5_INCLUDE_DIRS PREPEND -I OUTPUT_VARIABLE hdf5_inc)
  add_custom_command(OUTPUT ${bin}
    COMMAND ${OP_CLANG} -g -O1 -std=c17 -D_GNU_SOURCE -DOP_NO_AVX512 -mavx2 -mfma
            -fsanitize=fuzzer,address,undefined -I${CMAKE_SOURCE_DIR} ${hdf5_inc}
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_model.c ${msrcs} ${CMAKE_BINARY_DIR}/generated/default_model.c
            ${HDF5_LDFLAGS} -lm -lpthread -o ${bin}
    # every source the command compiles, so that a changed one rebuilds it (a binary left stale
    # here once hid a link error that only a fresh build showed); default_model.c is generated
    # by op_appliance (add_dependencies below); IMPLICIT_DEPENDS (headers) works with the
    # Makefile generator, the one CI and tools/run-tests.sh use
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_model.c ${msrcs} ${CMAKE_SOURCE_DIR}/kernels/models/event-v1.h5
    IMPLICIT_DEPENDS C ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_model.c C ${CMAKE_SOURCE_DIR}/appliance/modelfile.c
    COMMENT "libFuzzer target fuzz_model")
  add_custom_target(fuzz_model_bin ALL DEPENDS ${bin})
  add_dependencies(fuzz_model_bin op_appliance) # generates default_model.c
  add_test(NAME fuzz_model
    COMMAND sh -c "rm -rf corpus-model && cp -r ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/model corpus-model && ${bin} -max_total_time=30 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 corpus-model"
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(fuzz_model PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
