/* Process settings shared by `deepc train`, `search` and `eval` (cmd_train.c defines them):
 * training allocates and frees the same large tensors every step and runs OpenMP regions next
 * to the loader's threads, and glibc's and libgomp's defaults suit neither. */
#ifndef DC_CLI_TRAIN_CLI_H
#define DC_CLI_TRAIN_CLI_H

/* Keeps freed memory in the heap instead of returning blocks over 128 kB to the kernel (each
 * step then paid fresh page faults: up to half of the step time). */
void dc_cli_keep_freed_memory(void);

/* OpenMP threads that spin while waiting take the cores the loader threads need: on 2 cores a
 * training step is several times slower. libgomp reads OMP_WAIT_POLICY only at start-up, so
 * when it is unset this sets it to passive and re-executes the command (argv as the command
 * got it, argv[0] being the command's name); returns only if that is not needed or fails. */
void dc_cli_prefer_passive_omp(int argc, char **argv);

#endif
