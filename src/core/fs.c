/* The file-system helpers of the library, in one place: what a path is (file, folder, size),
 * mkdir -p, the one atomic write of every writer (temporary file, fsync, rename, fsync of the
 * folder) and the removal of the temporary files a killed writer left. What goes into a file is
 * the caller's business; reading files with size caps is src/data/file.c's. */
#include "core-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

/* ---- what a path is ---- */

bool dc__path_exists(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0;
}

bool dc__is_dir(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool dc__is_file(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int64_t dc__file_size(const char *path) {
  struct stat st;
  if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  return (int64_t)st.st_size;
}

/* ---- folders ---- */

int dc__mkdirs(const char *path) {
  if (!path || !*path) return dc__errs(DC_ERR_ARG, "mkdirs: no folder named");
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return dc__errs(DC_ERR_IO, "%.64s...: cannot create the folder (the path is too long)", path);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return dc__errs(DC_ERR_IO, "%s: cannot create the folder (%s)", buf, strerror(errno));
    *p = c;
    if (!c) break;
  }
  if (!dc__is_dir(path))
    return dc__errs(DC_ERR_IO, "%s: cannot create the folder (a file of that name is there)", path);
  return DC_OK;
}

int dc__mkdirs_for(const char *file) {
  const char *slash = file ? strrchr(file, '/') : NULL;
  if (!slash || slash == file) return DC_OK; /* the current folder, or / */
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
  return dc__mkdirs(dir);
}

/* ---- the atomic write ---- */

/* fsync of the folder holding path, so that a rename into it survives a crash. Best effort: the
 * file is already in place, and some file systems refuse fsync on folders. */
static void fsync_parent(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    dir[1] = 0;
  else if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

static unsigned g_temp_seq; /* makes the temporary names of one process distinct */

/* Creates "<path>.tmp-<pid>-<k>" exclusively (never another writer's file) into tmp. */
static FILE *open_temp(const char *path, char *tmp, size_t n) {
  for (int tries = 0; tries < 64; tries++) {
    unsigned k = __atomic_fetch_add(&g_temp_seq, 1, __ATOMIC_RELAXED);
    snprintf(tmp, n, "%s.tmp-%ld-%u", path, (long)getpid(), k);
    FILE *f = fopen(tmp, "wbx");
    if (f || errno != EEXIST) return f;
  }
  return NULL;
}

int dc__write_atomic(const char *path, const char *what, dc__fill_fn fill, void *ctx) {
  if (!path || !what || !fill) return dc__errs(DC_ERR_ARG, "write_atomic: NULL argument");
  size_t n = strlen(path) + 48;
  char *tmp = dc__malloc(n);
  if (!tmp) return DC_ERR_NOMEM;
  FILE *f = open_temp(path, tmp, n);
  if (!f) {
    int rc = dc__errs(DC_ERR_IO, "%s: cannot create the temporary file %s for %s (%s)", path, tmp,
                      what, strerror(errno));
    dc__free(tmp);
    return rc;
  }
  errno = 0;
  int rc = fill(f, tmp, ctx);
  int e = rc == DC__WRITE_FAILED || ferror(f) ? (errno ? errno : EIO) : 0; /* wins over rc */
  bool ok = rc == DC_OK && !e;
  if (ok && fflush(f) != 0) e = errno, ok = false;
  if (ok && fsync(fileno(f)) != 0) e = errno, ok = false;
  if (fclose(f) != 0 && ok) e = errno, ok = false;
  if (ok && rename(tmp, path) != 0) e = errno, ok = false;
  if (ok) {
    fsync_parent(path);
  } else {
    remove(tmp);
    if (e)
      rc =
          dc__errs(DC_ERR_IO, "%s: writing %s failed (%s); the previous file, if any, is unchanged",
                   path, what, strerror(e));
  }
  dc__free(tmp);
  return rc;
}

/* ---- temporary files a killed writer left ---- */

/* A name's ".tmp-<pid>[-<k>]" tail of a process that no longer exists, or an old ".tmp" tail. */
static bool stale_temp(const char *name) {
  const char *t = strstr(name, ".tmp");
  if (!t) return false;
  if (strcmp(t, ".tmp") == 0) return true;
  if (t[4] != '-') return false;
  char *end;
  long pid = strtol(t + 5, &end, 10);
  if (*end == '-') {
    char *k = end + 1;
    (void)strtoul(k, &end, 10);
    if (end == k) return false;
  }
  return *end == 0 && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void dc__remove_stale_temps(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (!stale_temp(e->d_name)) continue;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) remove(path);
  }
  closedir(d);
}
