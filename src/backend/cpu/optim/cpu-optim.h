/* Internal to the CPU optimizer kernels (fused.c, clip.c): chunking shared by the threaded
 * passes and the clipping kernels that fused.c puts into the dc__cpu_optim table. */
#ifndef DC_CPU_OPTIM_H
#define DC_CPU_OPTIM_H

#include "../cpu-impl.h"
#include "../../optim-kernels.h"

/* Elements per work item of the threaded loops (every buffer is cut into chunks of this size,
 * the last one shorter), and per stack-scratch block inside a chunk. */
#define DC__OPTK_CHUNK 16384
#define DC__OPTK_BLOCK 1024

/* first[k] = index of the first chunk of buffer k (first[n] = *nchunks), sizes[k] elements. */
bool dc__optk_plan_chunks(const int64_t *sizes, int n, int64_t **first, int64_t *nchunks,
                          int64_t *total);
/* The buffer that chunk c belongs to. */
int dc__optk_chunk_owner(const int64_t *first, int n, int64_t c);

int dc__cpu_optk_norms(const dc_optk_buf *bufs, int nbufs, double p, double *norms);
int dc__cpu_optk_scale(const dc_optk_buf *bufs, int nbufs, double coef);
int dc__cpu_optk_clamp(const dc_optk_buf *bufs, int nbufs, double lo, double hi);

#endif
