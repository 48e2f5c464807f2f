/* The distributed sampler (PyTorch's torch.utils.data.DistributedSampler, in data as there:
 * the loader applies it with .num_replicas/.rank): each rank's share of an epoch's order,
 * padded by repeating the order's head so every rank gets the same number of samples (equal
 * step counts keep the collectives in step), or uneven for evaluation. The shuffle is the
 * loader's own, so rank r of R sees positions r, r + R, ... of the permutation a single process
 * would use. The names keep dist's prefix (include/deepc/dist.h) that users know them by. */
#include "data-impl.h"

#include <deepc/dist.h>

/* The loader's shuffle stream (src/data/loader.c). */
#define DC__STREAM_SHUFFLE 0x5F1Eull

static int check(const char *what, int64_t n, int num_replicas, int rank) {
  if (n < 0 || num_replicas < 1 || rank < 0 || rank >= num_replicas)
    return dc__errs(DC_ERR_ARG,
                    "dist %s: need n >= 0, num_replicas >= 1 and 0 <= rank < "
                    "num_replicas (got n %lld, num_replicas %d, rank %d)",
                    what, (long long)n, num_replicas, rank);
  return DC_OK;
}

int64_t dc_dist_shard_len(int64_t n, int num_replicas, int rank, bool uneven) {
  if (check("shard_len", n, num_replicas, rank) != DC_OK) return -1;
  if (uneven) return n > rank ? (n - rank + num_replicas - 1) / num_replicas : 0;
  return (n + num_replicas - 1) / num_replicas;
}

int dc_dist_shard(const int64_t *order, int64_t n, int num_replicas, int rank, bool uneven,
                  int64_t *out) {
  int rc = check("shard", n, num_replicas, rank);
  if (rc != DC_OK) return rc;
  int64_t len = dc_dist_shard_len(n, num_replicas, rank, uneven);
  if (len > 0 && (!out || n == 0))
    return dc__errs(DC_ERR_ARG, "dist shard: NULL output or empty order");
  for (int64_t k = 0; k < len; k++) {
    int64_t pos = (k * num_replicas + rank) % n; /* padding wraps to the order's head */
    out[k] = order ? order[pos] : pos;
  }
  return DC_OK;
}

int dc_dist_sampler_indices(int64_t n, int num_replicas, int rank, bool shuffle, uint64_t seed,
                            int64_t epoch, bool uneven, int64_t *out) {
  int rc = check("sampler_indices", n, num_replicas, rank);
  if (rc != DC_OK || !shuffle)
    return rc ? rc : dc_dist_shard(NULL, n, num_replicas, rank, uneven, out);
  int64_t *perm = dc__malloc(sizeof *perm * (size_t)(n ? n : 1));
  if (!perm) return DC_ERR_NOMEM;
  dc__permutation(perm, n, dc__mix_seed(seed, DC__STREAM_SHUFFLE, (uint64_t)epoch));
  rc = dc_dist_shard(perm, n, num_replicas, rank, uneven, out);
  dc__free(perm);
  return rc;
}
