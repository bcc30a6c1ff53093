# kernels/: formats, the kernel ladder, the model. These link op_kernels alone (no HDF5, no
# ZeroMQ) so that the same tests cross-build for aarch64 and run under qemu (tools/cross-test.sh).
function(op_kernel_test name)
  list(TRANSFORM ARGN PREPEND ${CMAKE_SOURCE_DIR}/tests/)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE op_kernels)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;kernels" SKIP_RETURN_CODE 77)
endfunction()
op_kernel_test(test_fp4_kernels unit/test_fp4_kernels.c)
# The oracle: NVIDIA's cuda_fp4.h / cuda_fp8.h host code, compiled as C, when the toolkit is here.
set(OP_CUDA_INCLUDE /usr/local/cuda/include CACHE PATH "CUDA headers for the FP4 oracle test")
if(EXISTS ${OP_CUDA_INCLUDE}/cuda_fp4.h AND EXISTS ${OP_CUDA_INCLUDE}/cuda_fp8.h)
  op_kernel_test(test_fp4_oracle unit/test_fp4_oracle.c)
  target_include_directories(test_fp4_oracle SYSTEM PRIVATE ${OP_CUDA_INCLUDE})
else()
  message(STATUS "outpost: no CUDA headers; the FP4 oracle test is not built")
endif()
# The AVX-512 rung's rounding of activations to E2M1 against the reference, value by value
# (skipped where the CPU lacks the rung). The probe includes the rung's source, with its flags.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND OP_CC_HAS_avx512)
  op_kernel_test(test_avx512_codes unit/test_avx512_codes.c unit/avx512_codes_probe.c)
  set_source_files_properties(${CMAKE_SOURCE_DIR}/tests/unit/avx512_codes_probe.c PROPERTIES
    COMPILE_OPTIONS "-mavx2;-mfma;-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx512vnni")
endif()
