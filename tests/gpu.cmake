# The backends. test_backend runs everywhere (CPU always; the CUDA plugin's refusal or, on a GPU,
# its agreement with the CPU). When CUDA is built: the Blackwell path's host-checkable parts
# (test_gpu_host, no GPU needed) and every GPU op against the CPU reference (test_gpu_ops,
# exit 77 without a GPU).
op_unit_test(test_backend unit/test_backend.c)
if(OUTPOST_HAVE_CUDA)
  set_property(TEST test_backend APPEND PROPERTY ENVIRONMENT "OUTPOST_TEST_CUDA_PLUGIN=$<TARGET_FILE:outpost-cuda>")
  add_dependencies(test_backend outpost-cuda)

  add_executable(test_gpu_host ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_host.c)
  target_link_libraries(test_gpu_host PRIVATE op_kernels op_cuda)
  target_include_directories(test_gpu_host PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  add_test(NAME test_gpu_host COMMAND test_gpu_host)
  set_tests_properties(test_gpu_host PROPERTIES LABELS "unit;kernels;gpu" SKIP_RETURN_CODE 77)

  add_executable(test_gpu_ops ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_ops.c)
  target_link_libraries(test_gpu_ops PRIVATE op_appliance op_cuda)
  target_include_directories(test_gpu_ops PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  add_test(NAME test_gpu_ops COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_ops PROPERTIES LABELS "gpu" SKIP_RETURN_CODE 77
    ENVIRONMENT "OUTPOST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

  # The same op tests with the kernels executed on the CPU (tests/gpu/emu/cuda_emu.h): every
  # machine checks the kernels' indexing, padding and arithmetic order against the reference.
  enable_language(CXX)
  set(OP_EMU ${CMAKE_BINARY_DIR}/emu/ops_emu.cpp)
  add_custom_command(OUTPUT ${OP_EMU}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/emu
    COMMAND ${OP_PY} ${CMAKE_SOURCE_DIR}/tests/gpu/emu/emulate.py ${CMAKE_SOURCE_DIR}/kernels/cuda/ops.cu ${OP_EMU}
    DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/ops.cu ${CMAKE_SOURCE_DIR}/tests/gpu/emu/emulate.py
    COMMENT "kernels/cuda/ops.cu for the CPU emulation")
  add_executable(test_gpu_emu ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_ops.c ${OP_EMU}
    ${CMAKE_SOURCE_DIR}/tests/gpu/emu/emu_runtime.cpp ${CMAKE_SOURCE_DIR}/kernels/cuda/device_model.c)
  target_compile_definitions(test_gpu_emu PRIVATE OP_GPU_EMULATED)
  set_source_files_properties(${OP_EMU} ${CMAKE_SOURCE_DIR}/tests/gpu/emu/emu_runtime.cpp PROPERTIES
    COMPILE_OPTIONS "-std=c++17;-Wall;-Wextra;-Wno-unknown-pragmas;-Wno-unused-parameter")
  target_include_directories(test_gpu_emu SYSTEM PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  target_include_directories(test_gpu_emu PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  target_link_libraries(test_gpu_emu PRIVATE op_appliance Threads::Threads)
  add_test(NAME test_gpu_emu COMMAND test_gpu_emu)
  set_tests_properties(test_gpu_emu PROPERTIES LABELS "unit;kernels;gpu" TIMEOUT 300)
endif()
