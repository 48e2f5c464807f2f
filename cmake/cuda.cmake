# The CUDA backend (src/backend/cuda, docs/cuda.md): built by default where the CUDA toolkit
# (nvcc, cudart, cuBLAS headers and library) and cuDNN 9 are found; without them the build is the CPU-only one.
# Sets DC_HAVE_CUDA_BACKEND, adds the .cu sources to DC_SOURCES and the libraries to DC_LIBS;
# DC_CUDA_OPTIONS holds nvcc's flags for deepc_obj. Sanitizer and fuzz builds leave it out (nvcc
# takes no -fsanitize, and those builds check host code).
option(DC_WITH_CUDA "Build the CUDA backend when the CUDA toolkit and cuDNN are found" ON)
set(DC_HAVE_CUDA_BACKEND OFF)
set(DC_CUDA_OPTIONS "")
set(DC_CUDA_WHY "DC_WITH_CUDA is OFF")
# CUDAToolkit is also what cmake/deps.cmake's NCCL detection uses.
find_package(CUDAToolkit QUIET)
if(DC_WITH_CUDA AND (DC_SANITIZE OR DC_FUZZ))
  set(DC_CUDA_WHY "sanitizer/fuzz builds leave it out")
elseif(DC_WITH_CUDA AND NOT CUDAToolkit_FOUND)
  set(DC_CUDA_WHY "no CUDA toolkit found")
elseif(DC_WITH_CUDA)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER ${CUDAToolkit_NVCC_EXECUTABLE})
  endif()
  check_language(CUDA)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include
            /usr/include /usr/include/x86_64-linux-gnu)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64
               /usr/lib/x86_64-linux-gnu)
  if(NOT CMAKE_CUDA_COMPILER)
    set(DC_CUDA_WHY "no nvcc that CMake can use")
  elseif(NOT TARGET CUDA::cublas)
    set(DC_CUDA_WHY "no cuBLAS")
  elseif(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
    set(DC_CUDA_WHY "no cuDNN (cudnn.h, libcudnn)")
  else()
    set(DC_HAVE_CUDA_BACKEND ON)
  endif()
endif()

if(DC_HAVE_CUDA_BACKEND)
  # sm_90 (H100/H200) machine code plus its PTX, so newer GPUs JIT it.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  enable_language(CUDA)
  file(GLOB DC_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/cuda/*.cu)
  list(APPEND DC_SOURCES ${DC_CUDA_SOURCES})
  # The optimizer kernels round like the CPU's (compiled with fp-contract=off): no fused
  # multiply-add contraction (src/backend/cuda/optim-rules.cuh).
  set_source_files_properties(${PROJECT_SOURCE_DIR}/src/backend/cuda/optim.cu PROPERTIES
    COMPILE_OPTIONS "-fmad=false")
  add_library(DC::cudnn UNKNOWN IMPORTED)
  set_target_properties(DC::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
  # cuBLAS is dlopen'ed on first use (src/backend/cuda/linalg.c): linked, its 500 MB would be
  # mapped and relocated by every process, which costs each Criterion test (an exec) 0.35 s.
  list(APPEND DC_LIBS CUDA::cudart DC::cudnn ${CMAKE_DL_LIBS})
  list(APPEND DC_DEFS DC_WITH_CUDA)
  # Host code of the .cu files gets the C warnings that make sense for C++; DC_WERROR makes
  # both nvcc's own warnings and the host compiler's errors.
  set(dc_cuda_flags -O3 -Xcompiler=-fvisibility=hidden -Xcompiler=-Wall -Xcompiler=-Wextra
      -Xcompiler=-Wno-unused-parameter --expt-relaxed-constexpr)
  if(DC_WERROR)
    list(APPEND dc_cuda_flags -Xcompiler=-Werror --Werror=all-warnings)
  endif()
  string(JOIN ";" dc_cuda_flags_str ${dc_cuda_flags})
  set(DC_CUDA_OPTIONS "$<$<COMPILE_LANGUAGE:CUDA>:${dc_cuda_flags_str}>")
  # deepc.pc (static linking) and deepcConfig.cmake (the exported targets name these)
  set(DC_PC_LIBS_CUDA "-L${CUDAToolkit_LIBRARY_DIR} -lcudnn -lcudart -ldl")
  get_filename_component(dc_cudnn_dir ${CUDNN_LIBRARY} DIRECTORY)
  if(NOT dc_cudnn_dir STREQUAL CUDAToolkit_LIBRARY_DIR)
    set(DC_PC_LIBS_CUDA "-L${dc_cudnn_dir} ${DC_PC_LIBS_CUDA}")
  endif()
  message(STATUS "deepc: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "archs ${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${CUDNN_LIBRARY})")
else()
  list(FILTER DC_SOURCES EXCLUDE REGEX "/src/backend/cuda/")
  set(DC_PC_LIBS_CUDA "")
  message(STATUS "deepc: CUDA backend OFF (${DC_CUDA_WHY})")
endif()
