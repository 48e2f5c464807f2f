/* Errors as values: library functions never exit. A failing call returns NULL (or a non-zero
 * dc_status) and leaves a thread-local message that names the op, the shapes and the fix. */
#ifndef DEEPC_ERROR_H
#define DEEPC_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dc_status {
  DC_OK = 0,
  DC_ERR_ARG,     /* bad argument: shape, dtype, dim, index, NULL */
  DC_ERR_NOMEM,   /* allocation failed */
  DC_ERR_IO,      /* file could not be opened, read or written */
  DC_ERR_FORMAT,  /* file content is malformed or unsupported */
  DC_ERR_STATE,   /* call is not valid in the current state (freed graph, ...) */
  DC_ERR_BACKEND, /* backend (oneDNN, CUDA) reported a failure */
  DC_ERR_UNSUPPORTED,
  DC_STATUS_COUNT
} dc_status;

/* The message of the last error on this thread ("" when none). */
DC_API const char *dc_last_error(void);
/* The status of the last error on this thread (DC_OK when none). */
DC_API dc_status dc_last_status(void);
DC_API void dc_clear_error(void);
DC_API const char *dc_strerror(dc_status s);

#ifdef __cplusplus
}
#endif
#endif
