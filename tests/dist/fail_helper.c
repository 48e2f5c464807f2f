/* A job where one rank goes wrong, for test_failure.sh: fail_helper MODE, MODE one of
 *   error  the last rank reports an error and ends the job with dc_dist_abort while rank 0
 *          waits in an all-reduce;
 *   hang   the last rank stops answering (sleeps) and rank 0's all-reduce times out (3 s), then
 *          rank 0 ends the job;
 *   crash  the last rank dies (exit without finalize) while rank 0 waits.
 * Every way must end the whole job quickly with a message, never hang. */
#include <deepc/deepc.h>
#include <deepc/dist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "error";
  if (dc_dist_init(.timeout_s = 3) != DC_OK) {
    fprintf(stderr, "dist_init: %s\n", dc_last_error());
    return 1;
  }
  int r = dc_dist_rank(), last = dc_dist_size() - 1;
  float x[4] = {1, 2, 3, 4};
  if (dc_dist_all_reduce_buffer(x, 4, DC_F32, DC_DIST_SUM) != DC_OK) /* all ranks healthy */
    dc_dist_abort(1, "first all-reduce: %s", dc_last_error());
  if (r == last && last > 0) {
    if (strcmp(mode, "error") == 0) {
      dc_dist_abort(3, "epoch 1, batch 5: the loss became nan (simulated failure)");
    } else if (strcmp(mode, "hang") == 0) {
      sleep(120);
    } else {
      fprintf(stderr, "rank %d: exiting without a word to the others\n", r);
      fflush(stderr);
      _exit(4);
    }
  }
  if (dc_dist_all_reduce_buffer(x, 4, DC_F32, DC_DIST_SUM) != DC_OK) {
    dc_dist_abort(2, "%s", dc_last_error());
    return 2;
  }
  dc_dist_finalize();
  return 0;
}
