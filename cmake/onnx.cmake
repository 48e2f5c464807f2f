# ONNX export/import (src/io/onnx_*.c): C code for the vendored third_party/onnx/onnx.proto,
# generated at build time by protoc-c (Debian protobuf-c-compiler), linked with libprotobuf-c
# (libprotobuf-c-dev). Without them the ONNX calls return DC_ERR_UNSUPPORTED (onnx_none.c).
find_program(DC_PROTOC_C protoc-c)
pkg_check_modules(PROTOBUF_C_PC IMPORTED_TARGET libprotobuf-c)
set(DC_ONNX_GEN ${CMAKE_BINARY_DIR}/onnx-gen)
if(DC_PROTOC_C AND PROTOBUF_C_PC_FOUND)
  file(MAKE_DIRECTORY ${DC_ONNX_GEN})
  add_custom_command(
    OUTPUT ${DC_ONNX_GEN}/onnx.pb-c.c ${DC_ONNX_GEN}/onnx.pb-c.h
    COMMAND ${DC_PROTOC_C} --proto_path=${PROJECT_SOURCE_DIR}/third_party/onnx
            --c_out=${DC_ONNX_GEN} ${PROJECT_SOURCE_DIR}/third_party/onnx/onnx.proto
    DEPENDS ${PROJECT_SOURCE_DIR}/third_party/onnx/onnx.proto
    COMMENT "protoc-c: third_party/onnx/onnx.proto")
  list(APPEND DC_SOURCES ${DC_ONNX_GEN}/onnx.pb-c.c)
  list(FILTER DC_SOURCES EXCLUDE REGEX "/src/io/onnx_none\\.c$")
  list(APPEND DC_LIBS PkgConfig::PROTOBUF_C_PC)
  list(APPEND DC_PC_REQUIRES libprotobuf-c)
  list(APPEND DC_DEFS DC_HAVE_ONNX)
  set(DC_HAVE_ONNX ON)
else()
  message(STATUS "ONNX export/import off: needs protoc-c and libprotobuf-c "
                 "(scripts/install-deps.sh installs them)")
  list(FILTER DC_SOURCES EXCLUDE REGEX "/src/io/onnx_[a-z_]+\\.c$")
  list(APPEND DC_SOURCES ${PROJECT_SOURCE_DIR}/src/io/onnx_none.c)
  set(DC_HAVE_ONNX OFF)
endif()
