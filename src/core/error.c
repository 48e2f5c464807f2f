/* Thread-local last-error message and status. Library code reports through dc__err/dc__errs and
 * never exits; only the CLI turns errors into exit codes. */
#include "core-impl.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[2048];
static _Thread_local dc_status g_status = DC_OK;

const char *dc_last_error(void) { return g_msg; }
dc_status dc_last_status(void) { return g_status; }

void dc_clear_error(void) {
  g_msg[0] = '\0';
  g_status = DC_OK;
}

const char *dc_strerror(dc_status s) {
  switch (s) {
  case DC_OK:
    return "ok";
  case DC_ERR_ARG:
    return "invalid argument";
  case DC_ERR_NOMEM:
    return "out of memory";
  case DC_ERR_IO:
    return "i/o error";
  case DC_ERR_FORMAT:
    return "malformed or unsupported file";
  case DC_ERR_STATE:
    return "invalid state";
  case DC_ERR_BACKEND:
    return "backend failure";
  case DC_ERR_UNSUPPORTED:
    return "not supported";
  case DC_STATUS_COUNT:
    break;
  }
  return "unknown status";
}

void dc__verr(dc_status s, const char *fmt, va_list ap) {
  g_status = s;
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
}

void *dc__err(dc_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dc__verr(s, fmt, ap);
  va_end(ap);
  return NULL;
}

int dc__errs(dc_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  dc__verr(s, fmt, ap);
  va_end(ap);
  return (int)s;
}

void dc__invariant_broken(const char *expr, const char *file, int line) {
  dc__err(DC_ERR_STATE,
          "internal error: invariant '%s' broken at %s:%d (a deepc bug: please report it)", expr,
          file, line);
}
