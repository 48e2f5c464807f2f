/* Export macro for deepc's public API: DC_API marks every public function.
 * Built as a shared library with -fvisibility=hidden, only DC_API symbols are exported. */
#ifndef DEEPC_EXPORT_H
#define DEEPC_EXPORT_H

#if defined(_WIN32) && defined(DC_SHARED)
#ifdef DC_BUILDING
#define DC_API __declspec(dllexport)
#else
#define DC_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define DC_API __attribute__((visibility("default")))
#else
#define DC_API
#endif

#endif
