/* Shared by the fuzz targets: every target defines LLVMFuzzerTestOneInput; with libFuzzer
 * (DC_FUZZ=ON, clang) that is the whole program, otherwise replay.c's main runs the seed corpus
 * and a few seconds of deterministic mutations through it (the CI run, also under ASan). */
#ifndef DC_TESTS_FUZZ_H
#define DC_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct dc_weights dc_weights;
/* Reads back everything a reader returned (CRC-32s, tensors), writes it again as safetensors in
 * memory, frees it and checks that no tensor is left alive. NULL is ignored. */
void dc_fuzz_use(dc_weights *w);
/* Writes the input to <TMPDIR>/dc-fuzz-<pid>/<name> (for readers that take a path); returns the
 * path (static storage, valid until the next call). */
const char *dc_fuzz_file(const uint8_t *data, size_t size, const char *name);
typedef struct dc_tensor dc_tensor;
/* Reads every element of a tensor a reader returned (so ASan sees any short buffer). */
void dc_fuzz_touch(const dc_tensor *t);
/* Aborts when a reader left tensors alive (a leak the sanitizers cannot see: scoped tensors). */
void dc_fuzz_check_live(const char *target);

#endif
