/* "Did you mean": the edit distance between what was typed and a known name, and whether it is
 * close enough to suggest. Used by the configuration reader (keys, sections, variables, model
 * names) and the value parser (choices). */
#include "spec.h"

#include <ctype.h>
#include <string.h>

/* Damerau-Levenshtein (optimal string alignment), case-insensitive; 99 for names over 63. */
int dc__edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int c = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int v = d[i - 1][j - 1] + c;
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1; /* transposition */
      d[i][j] = v;
    }
  return d[la][lb];
}

bool dc__close_enough(const char *typed, const char *cand, int dist) {
  int len = (int)strlen(typed);
  int lim = len <= 3 ? 1 : len <= 6 ? 2 : 3;
  return dist <= lim || (len >= 3 && strstr(cand, typed) != NULL) ||
         (strlen(cand) >= 4 && strstr(typed, cand) != NULL);
}
