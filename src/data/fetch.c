/* `deepc data fetch`: downloads MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from their usual
 * public mirrors with libcurl, checks every file's MD5 before keeping it, and unpacks .gz /
 * .tar.gz (file.c). $DEEPC_DATA_MIRROR replaces the mirrors (a local copy, file:// in tests). */
#include "data-impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef DC_HAVE_CURL
#include <curl/curl.h>
#endif

typedef struct fetch_file {
  const char *name, *md5;
} fetch_file;

typedef struct fetch_set {
  const char *name;
  const char *mirrors[3];
  fetch_file files[4];
  bool tar; /* one .tar.gz to extract; else .gz files to gunzip */
} fetch_set;

static const fetch_set SETS[] = {
    {"mnist",
     {"https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/", NULL},
     {{"train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
      {"train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"},
      {"t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"},
      {"t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"}},
     false},
    {"fashion-mnist",
     {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", NULL, NULL},
     {{"train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
      {"train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"},
      {"t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"},
      {"t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"}},
     false},
    {"cifar10",
     {"https://www.cs.toronto.edu/~kriz/", NULL, NULL},
     {{"cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"}},
     true},
    {"cifar100",
     {"https://www.cs.toronto.edu/~kriz/", NULL, NULL},
     {{"cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8"}},
     true},
};

int dc__check_md5(const char *path, const char *md5) {
  char hex[65];
  int rc = dc__file_digest(path, false, hex);
  if (rc) return rc;
  if (strcasecmp(hex, md5) != 0)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: MD5 checksum %s does not match the expected %s (a "
                    "corrupt, truncated or different file)",
                    path, hex, md5);
  return DC_OK;
}

#ifdef DC_HAVE_CURL
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct progress_ctx {
  FILE *out;
  const char *name;
  int last;
} progress_ctx;

static int on_progress(void *ud, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un) {
  (void)ut;
  (void)un;
  progress_ctx *p = ud;
  if (total <= 0) return 0;
  int pct = (int)(now * 100 / total);
  if (pct / 10 != p->last / 10 || (pct == 100 && p->last != 100)) {
    fprintf(p->out, "  %s: %3d%% of %.1f MB\n", p->name, pct, (double)total / 1e6);
    fflush(p->out);
    p->last = pct;
  }
  return 0;
}

typedef struct download_ctx {
  const char *url, *dest, *md5;
  FILE *progress;
} download_ctx;

/* The body of url into f, then its MD5 checked (a dc__write_atomic fill). */
static int fill_download(FILE *f, const char *tmp, void *ctx) {
  const download_ctx *d = ctx;
  CURL *c = curl_easy_init();
  char errbuf[CURL_ERROR_SIZE] = "";
  progress_ctx pc = {d->progress, d->url, -10};
  CURLcode res = CURLE_FAILED_INIT;
  if (c) {
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1000L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "deepc");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (d->progress) {
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pc);
    }
    res = curl_easy_perform(c);
    curl_easy_cleanup(c);
  }
  if (ferror(f)) return DC__WRITE_FAILED;
  if (res != CURLE_OK) {
    bool offline = res == CURLE_COULDNT_RESOLVE_HOST || res == CURLE_COULDNT_CONNECT ||
                   res == CURLE_COULDNT_RESOLVE_PROXY || res == CURLE_OPERATION_TIMEDOUT;
    return dc__errs(DC_ERR_IO, "cannot download %s: %s%s", d->url,
                    errbuf[0] ? errbuf : curl_easy_strerror(res),
                    offline ? " (no network here? copy the files into the folder by hand)" : "");
  }
  if (!d->md5) return DC_OK;
  if (fflush(f) != 0) return DC__WRITE_FAILED;
  char hex[65];
  int rc = dc__file_digest(tmp, false, hex);
  if (rc == DC_OK && strcasecmp(hex, d->md5) != 0)
    rc = dc__errs(DC_ERR_FORMAT,
                  "%s: the download from %s has MD5 checksum %s, which does not match the "
                  "expected %s (a corrupt, truncated or different file); nothing was kept",
                  d->dest, d->url, hex, d->md5);
  return rc;
}
#endif

int dc__download(const char *url, const char *dest, const char *md5, FILE *progress) {
#ifdef DC_HAVE_CURL
  pthread_once(&g_curl_once, curl_init_once);
  download_ctx d = {url, dest, md5, progress};
  return dc__write_atomic(dest, "the download", fill_download, &d);
#else
  (void)dest;
  (void)md5;
  (void)progress;
  return dc__errs(DC_ERR_UNSUPPORTED, "cannot download %s: deepc was built without libcurl", url);
#endif
}

int dc_data_fetch(const char *name, const char *dir, FILE *progress) {
  const fetch_set *set = NULL;
  for (size_t k = 0; name && k < sizeof SETS / sizeof *SETS; k++)
    if (strcmp(SETS[k].name, name) == 0) set = &SETS[k];
  if (!set)
    return dc__errs(DC_ERR_ARG,
                    "data fetch: unknown dataset '%s' (mnist, fashion-mnist, "
                    "cifar10, cifar100)",
                    name ? name : "(null)");
  const char *env = getenv("DEEPC_DATA");
  const char *base = dir ? dir : env && *env ? env : "data";
  char target[4096];
  snprintf(target, sizeof target, "%s/%s", base, set->name);
  int rc = dc__mkdirs(target);
  if (rc) return rc;
  const char *mirror = getenv("DEEPC_DATA_MIRROR");
  for (int i = 0; i < 4 && set->files[i].name && rc == DC_OK; i++) {
    const fetch_file *ff = &set->files[i];
    char *dest = dc__path_join(target, ff->name);
    if (!dest) return DC_ERR_NOMEM;
    if (dc__is_file(dest) && dc__check_md5(dest, ff->md5) == DC_OK) {
      if (progress) fprintf(progress, "  %s: present, checksum ok\n", ff->name);
    } else {
      dc_clear_error();
      char errors[4096] = "";
      size_t at = 0;
      rc = DC_ERR_IO;
      for (int m = 0; m < 3 && rc != DC_OK; m++) {
        const char *root = mirror && *mirror ? (m == 0 ? mirror : NULL) : set->mirrors[m];
        if (!root) break;
        char url[2048];
        snprintf(url, sizeof url, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/",
                 ff->name);
        if (progress) fprintf(progress, "  downloading %s\n", url);
        rc = dc__download(url, dest, ff->md5, progress);
        if (rc && at < sizeof errors)
          at += (size_t)snprintf(errors + at, sizeof errors - at, "%s%s", at ? "; " : "",
                                 dc_last_error());
      }
      if (rc)
        rc = dc__errs((dc_status)rc,
                      "data fetch %s: %s. Without network, place %s (MD5 %s) in "
                      "%s yourself",
                      set->name, errors, ff->name, ff->md5, target);
    }
    if (rc == DC_OK && !set->tar) { /* gunzip beside the .gz */
      char plain[4096];
      snprintf(plain, sizeof plain, "%.*s", (int)(strlen(dest) - 3), dest);
      if (!dc__is_file(plain)) rc = dc__gunzip_file(dest, plain);
    } else if (rc == DC_OK) {
      int64_t nfiles = 0;
      rc = dc__untar(dest, target, &nfiles);
      if (rc == DC_OK && progress)
        fprintf(progress, "  unpacked %lld files into %s\n", (long long)nfiles, target);
    }
    dc__free(dest);
  }
  return rc;
}
