/* LD_PRELOAD shim for tests/fault/test_enospc.sh: a full disk or a failing disk, without root.
 * Files whose name contains DEEPC_SHIM_MATCH (default ".tmp-") get, once DEEPC_SHIM_ENOSPC_AFTER
 * bytes have been written to such files in all, ENOSPC from fwrite/write; with
 * DEEPC_SHIM_EIO_FSYNC=1 their fsync fails with EIO instead. Other files are untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FD 4096
static char g_watched[MAX_FD]; /* fds of matching files */
static long long g_written;

static const char *match(void) {
  const char *m = getenv("DEEPC_SHIM_MATCH");
  return m && *m ? m : ".tmp-";
}
static long long limit(void) {
  const char *e = getenv("DEEPC_SHIM_ENOSPC_AFTER");
  return e && *e ? atoll(e) : -1;
}
static int watched(int fd) { return fd >= 0 && fd < MAX_FD && g_watched[fd]; }

/* n bytes may go to a watched file: how many (fewer once the "disk" is full) */
static size_t allow(size_t n) {
  long long lim = limit();
  if (lim < 0) return n;
  long long room = lim - g_written;
  if (room <= 0) return 0;
  return (long long)n < room ? n : (size_t)room;
}

FILE *fopen(const char *path, const char *mode) {
  static FILE *(*real)(const char *, const char *);
  if (!real) real = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "fopen");
  FILE *f = real(path, mode);
  if (f && strstr(path, match()) && fileno(f) < MAX_FD) g_watched[fileno(f)] = 1;
  return f;
}
FILE *fopen64(const char *path, const char *mode) { return fopen(path, mode); }

int fclose(FILE *f) {
  static int (*real)(FILE *);
  if (!real) real = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
  int fd = fileno(f);
  int rc = real(f);
  if (fd >= 0 && fd < MAX_FD) g_watched[fd] = 0;
  return rc;
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
  static size_t (*real)(const void *, size_t, size_t, FILE *);
  if (!real) real = (size_t(*)(const void *, size_t, size_t, FILE *))dlsym(RTLD_NEXT, "fwrite");
  if (!watched(fileno(f)) || size == 0) return real(p, size, n, f);
  size_t want = size * n, ok = allow(want);
  size_t done = ok ? real(p, 1, ok, f) : 0;
  g_written += (long long)done;
  if (done < want) {
    errno = ENOSPC;
    return done / size;
  }
  return n;
}

ssize_t write(int fd, const void *p, size_t n) {
  static ssize_t (*real)(int, const void *, size_t);
  if (!real) real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
  if (!watched(fd)) return real(fd, p, n);
  size_t ok = allow(n);
  if (ok == 0 && n > 0) {
    errno = ENOSPC;
    return -1;
  }
  ssize_t done = real(fd, p, ok);
  if (done > 0) g_written += done;
  return done;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  const char *e = getenv("DEEPC_SHIM_EIO_FSYNC");
  if (watched(fd) && e && *e == '1') {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
