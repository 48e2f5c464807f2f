# Optional third-party libraries used by later subsystems (data, io, plots). Each found library
# is linked and announced with a DC_HAVE_* definition.
pkg_check_modules(ZLIB_PC IMPORTED_TARGET zlib)
if(ZLIB_PC_FOUND)
  list(APPEND DC_LIBS PkgConfig::ZLIB_PC)
  list(APPEND DC_DEFS DC_HAVE_ZLIB)
endif()
# Training outputs (src/io, src/train): checkpoint headers (cJSON) and curves (cairo PNG/SVG).
foreach(dep "CJSON:libcjson" "CAIRO:cairo")
  string(REPLACE ":" ";" dep "${dep}")
  list(GET dep 0 dc_dep_name)
  list(GET dep 1 dc_dep_module)
  pkg_check_modules(${dc_dep_name}_PC IMPORTED_TARGET ${dc_dep_module})
  if(${dc_dep_name}_PC_FOUND AND NOT PkgConfig::${dc_dep_name}_PC IN_LIST DC_LIBS)
    list(APPEND DC_LIBS PkgConfig::${dc_dep_name}_PC)
    list(APPEND DC_DEFS DC_HAVE_${dc_dep_name})
  endif()
endforeach()
