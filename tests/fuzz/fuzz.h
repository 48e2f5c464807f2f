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

#endif
