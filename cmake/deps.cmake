# Optional third-party libraries used by later subsystems (data, io, plots). Each found library
# is linked and announced with a DC_HAVE_* definition.
pkg_check_modules(ZLIB_PC IMPORTED_TARGET zlib)
if(ZLIB_PC_FOUND)
  list(APPEND DC_LIBS PkgConfig::ZLIB_PC)
  list(APPEND DC_DEFS DC_HAVE_ZLIB)
endif()
