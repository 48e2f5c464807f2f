/* What a run shows while it trains: on a terminal one progress bar per epoch redrawn in place
 * (batches, samples/s, running loss and accuracy, ETA), otherwise plain lines (a quarter-epoch
 * line and one summary line per epoch) that read well in a log file. */
#include "train-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

void dc__progress_init(dc__progress *p, FILE *f, dc_progress_mode mode, int epochs) {
  memset(p, 0, sizeof *p);
  p->f = f ? f : stderr;
  p->epochs = epochs;
  p->quiet = mode == DC_PROGRESS_QUIET;
  bool tty = isatty(fileno(p->f)) != 0;
  p->bar = mode == DC_PROGRESS_BAR || (mode == DC_PROGRESS_AUTO && tty);
  p->width = 100;
  struct winsize ws;
  if (tty && ioctl(fileno(p->f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) p->width = ws.ws_col;
  p->last_pct = -1;
}

static void fmt_time(char *buf, size_t n, double s) {
  if (!isfinite(s) || s < 0) s = 0;
  long t = lround(s);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void dc__progress_step(dc__progress *p, const dc_step_info *s, int64_t batch_size) {
  (void)batch_size;
  if (p->quiet || s->nbatches <= 0) return;
  double now = dc__now();
  bool last = s->batch >= s->nbatches;
  double rate = s->seconds > 0 ? (double)s->samples / s->seconds : 0;
  double eta = s->batch > 0 ? s->seconds / (double)s->batch * (double)(s->nbatches - s->batch) : 0;
  char eta_s[32];
  fmt_time(eta_s, sizeof eta_s, eta);
  int pct = (int)(100 * s->batch / s->nbatches);
  if (p->bar) {
    if (!last && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    char tail[160];
    snprintf(tail, sizeof tail,
             " %3d%% %lld/%lld | %6.0f samples/s | loss %.4f acc %5.2f%% | ETA %s", pct,
             (long long)s->batch, (long long)s->nbatches, rate, s->mean_loss, 100 * s->mean_acc,
             eta_s);
    char head[32];
    snprintf(head, sizeof head, "epoch %d/%d ", s->epoch, p->epochs);
    int barw = p->width - 1 - (int)strlen(head) - (int)strlen(tail) - 2;
    if (barw > 30) barw = 30;
    char bar[40] = "";
    if (barw >= 5) {
      int fill = (int)((double)barw * (double)s->batch / (double)s->nbatches);
      for (int i = 0; i < barw; i++) bar[i] = i < fill ? '#' : '.';
      bar[barw] = 0;
    }
    fprintf(p->f, "\r%s%s%s%s%s\033[K", head, barw >= 5 ? "[" : "", bar, barw >= 5 ? "]" : "",
            tail);
    fflush(p->f);
  } else {
    /* a line at each quarter of a long epoch */
    int q = pct / 25;
    if (last || q == 0 || q == p->last_pct || s->nbatches < 40) return;
    p->last_pct = q;
    fprintf(p->f, "epoch %d/%d %3d%% %lld/%lld  %.0f samples/s  loss %.4f  acc %.2f%%  ETA %s\n",
            s->epoch, p->epochs, q * 25, (long long)s->batch, (long long)s->nbatches, rate,
            s->mean_loss, 100 * s->mean_acc, eta_s);
    fflush(p->f);
  }
}

void dc__progress_epoch(dc__progress *p, const dc_epoch_stats *e, bool best) {
  if (p->quiet) return;
  if (p->bar) fprintf(p->f, "\r\033[K");
  p->last_pct = -1;
  char val[64] = "";
  if (!isnan(e->val_loss))
    snprintf(val, sizeof val, "  val loss %.4f acc %.2f%%", e->val_loss, 100 * e->val_acc);
  fprintf(p->f, "epoch %d/%d  train loss %.4f acc %.2f%%%s  lr %.3g  %.1fs%s\n", e->epoch,
          p->epochs, e->train_loss, 100 * e->train_acc, val, e->lr, e->seconds,
          best && !isnan(e->val_loss) ? "  *best" : "");
  fflush(p->f);
}
