/*
 * text: an example taskgate plugin with small text-file transforms.
 *
 *   text.upper          (string in, string out)      ASCII letters to upper case
 *   text.lower          (string in, string out)      ASCII letters to lower case
 *   text.reverse_lines  (string in, string out)      lines in reverse order
 *   text.wrap           (string in, string out, i32 width, bool keep_blank)
 *                                                    re-flows paragraphs to width columns
 *   text.stats          (string in, double threshold)
 *                        -> {"lines":N,"words":N,"bytes":N,"long_line_ratio":R}
 *
 * The writers make the parent directories of `out` (mkdir -p, mode 0755),
 * write a temporary file next to it and rename it over `out` once complete,
 * so a reader never sees half a file. Their output is the number of bytes
 * written, in decimal. `in` and `out` may be the same file.
 *
 * Lines end with '\n'; a final line without one still counts as a line.
 * Words are runs of bytes other than ASCII white space (space, \t, \n, \v,
 * \f, \r). Everything streams in 64 KiB blocks, polling the task's
 * cancellation, except reverse_lines, which must hold the whole file.
 * Nothing is shared between calls but a counter for temporary file names:
 * every entry point is thread-safe.
 *
 * Build:
 *   gcc -std=c99 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
 *       -I include -o libtext.so examples/plugins/text.c
 */
#define _POSIX_C_SOURCE 200809L

#include "taskgate_plugin.h"
#include "plugin_support.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BLOCK_SIZE (64 * 1024)

static int set_output_count(tg_plugin_task *task, unsigned long long n) {
  char text[32];
  int len = snprintf(text, sizeof text, "%llu", n);
  return set_output(task, text, (size_t)len);
}

/* ---- reading -------------------------------------------------------------- */

typedef struct reader {
  tg_plugin_task *task;
  const char *path;
  int fd;
  unsigned char *buf;
} reader;

static int reader_open(reader *r, tg_plugin_task *task, const char *path) {
  r->task = task;
  r->path = path;
  r->buf = malloc(BLOCK_SIZE);
  if (!r->buf) return fail(task, "out of memory");
  do r->fd = open(path, O_RDONLY | O_CLOEXEC);
  while (r->fd < 0 && errno == EINTR);
  if (r->fd < 0) {
    int err = errno;
    free(r->buf);
    return fail_errno(task, "cannot open", path, err);
  }
  return TG_PLUGIN_OK;
}

/* The next block: *len > 0 with data, 0 at the end of the file. Polls for
   cancellation first. */
static int reader_next(reader *r, size_t *len) {
  if (r->task->host->cancelled(r->task)) return fail_cancelled(r->task);
  ssize_t n;
  do n = read(r->fd, r->buf, BLOCK_SIZE);
  while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno(r->task, "cannot read", r->path, errno);
  *len = (size_t)n;
  return TG_PLUGIN_OK;
}

static void reader_close(reader *r) {
  close(r->fd);
  free(r->buf);
}

/* ---- atomic writing --------------------------------------------------------- */

static unsigned long tmp_counter; /* with the pid: unique temporary names */

typedef struct writer {
  tg_plugin_task *task;
  const char *path; /* the final name */
  char *tmp;        /* the temporary file being written */
  int fd;
  unsigned char *buf;
  size_t fill;
  unsigned long long total; /* bytes handed to write() */
} writer;

static int writer_open(writer *w, tg_plugin_task *task, const char *path) {
  w->task = task;
  w->path = path;
  w->fd = -1;
  w->fill = 0;
  w->total = 0;
  w->tmp = NULL;
  w->buf = NULL;
  if (make_parents(task, path) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  size_t cap = strlen(path) + 64;
  w->tmp = malloc(cap);
  w->buf = malloc(BLOCK_SIZE);
  if (!w->tmp || !w->buf) {
    free(w->tmp);
    free(w->buf);
    return fail(task, "out of memory");
  }
  for (int tries = 0; tries < 100 && w->fd < 0; tries++) {
    unsigned long k = __atomic_add_fetch(&tmp_counter, 1, __ATOMIC_RELAXED);
    snprintf(w->tmp, cap, "%s.tmp.%ld.%lu", path, (long)getpid(), k);
    do w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    while (w->fd < 0 && errno == EINTR);
    if (w->fd < 0 && errno != EEXIST) break;
  }
  if (w->fd < 0) {
    int rc = fail_errno(task, "cannot create", w->tmp, errno);
    free(w->tmp);
    free(w->buf);
    return rc;
  }
  return TG_PLUGIN_OK;
}

/* Writes the buffer out; polls for cancellation once per block. */
static int writer_flush(writer *w) {
  if (w->task->host->cancelled(w->task)) return fail_cancelled(w->task);
  const unsigned char *p = w->buf;
  size_t left = w->fill;
  while (left > 0) {
    ssize_t n = write(w->fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(w->task, "cannot write", w->tmp, errno);
    }
    p += n;
    left -= (size_t)n;
  }
  w->total += w->fill;
  w->fill = 0;
  return TG_PLUGIN_OK;
}

static int writer_put(writer *w, const void *data, size_t len) {
  const unsigned char *p = data;
  while (len > 0) {
    if (w->fill == BLOCK_SIZE && writer_flush(w) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
    size_t take = BLOCK_SIZE - w->fill < len ? BLOCK_SIZE - w->fill : len;
    memcpy(w->buf + w->fill, p, take);
    w->fill += take;
    p += take;
    len -= take;
  }
  return TG_PLUGIN_OK;
}

static int writer_byte(writer *w, unsigned char c) {
  if (w->fill == BLOCK_SIZE && writer_flush(w) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  w->buf[w->fill++] = c;
  return TG_PLUGIN_OK;
}

/* Gives up: the temporary file goes away, `out` is untouched. */
static void writer_abort(writer *w) {
  close(w->fd);
  unlink(w->tmp);
  free(w->tmp);
  free(w->buf);
}

/* Flushes, closes and renames into place; on failure, as writer_abort. */
static int writer_commit(writer *w) {
  if (writer_flush(w) != TG_PLUGIN_OK) {
    writer_abort(w);
    return TG_PLUGIN_FAILED;
  }
  int rc = TG_PLUGIN_OK;
  if (close(w->fd) != 0) rc = fail_errno(w->task, "cannot close", w->tmp, errno);
  if (rc == TG_PLUGIN_OK && rename(w->tmp, w->path) != 0)
    rc = fail_errno(w->task, "cannot rename the temporary file to", w->path, errno);
  if (rc != TG_PLUGIN_OK) unlink(w->tmp);
  free(w->tmp);
  free(w->buf);
  return rc;
}

/* Ends a writer's entry point: commits when rc is OK, else aborts; then sets
   the output to the byte count. */
static int writer_finish(writer *w, int rc) {
  if (rc != TG_PLUGIN_OK) {
    writer_abort(w);
    return rc;
  }
  if (writer_commit(w) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  return set_output_count(w->task, w->total);
}

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* ---- upper, lower ------------------------------------------------------------ */

static int change_case(tg_plugin_task *task, const char *in, const char *out, int upper) {
  reader r;
  writer w;
  if (reader_open(&r, task, in) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  if (writer_open(&w, task, out) != TG_PLUGIN_OK) {
    reader_close(&r);
    return TG_PLUGIN_FAILED;
  }
  int rc;
  for (;;) {
    size_t n;
    rc = reader_next(&r, &n);
    if (rc != TG_PLUGIN_OK || n == 0) break;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = r.buf[i];
      if (upper && c >= 'a' && c <= 'z') r.buf[i] = (unsigned char)(c - 'a' + 'A');
      else if (!upper && c >= 'A' && c <= 'Z') r.buf[i] = (unsigned char)(c - 'A' + 'a');
    }
    rc = writer_put(&w, r.buf, n);
    if (rc != TG_PLUGIN_OK) break;
  }
  reader_close(&r);
  return writer_finish(&w, rc);
}

/* ---- reverse_lines -------------------------------------------------------------- */

/* Reads the whole file into a heap buffer. */
static int slurp(tg_plugin_task *task, const char *path, unsigned char **data, size_t *len) {
  reader r;
  if (reader_open(&r, task, path) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  struct stat st;
  size_t cap = (fstat(r.fd, &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1 : BLOCK_SIZE;
  unsigned char *buf = malloc(cap);
  size_t used = 0;
  int rc = buf ? TG_PLUGIN_OK : fail(task, "out of memory");
  while (rc == TG_PLUGIN_OK) {
    size_t n;
    rc = reader_next(&r, &n);
    if (rc != TG_PLUGIN_OK || n == 0) break;
    if (cap - used < n) {
      size_t bigger = cap * 2 >= used + n ? cap * 2 : used + n;
      unsigned char *p = realloc(buf, bigger);
      if (!p) {
        rc = fail(task, "out of memory reading '%s' (%zu bytes)", path, bigger);
        break;
      }
      buf = p;
      cap = bigger;
    }
    memcpy(buf + used, r.buf, n);
    used += n;
  }
  reader_close(&r);
  if (rc != TG_PLUGIN_OK) {
    free(buf);
    return rc;
  }
  *data = buf;
  *len = used;
  return TG_PLUGIN_OK;
}

static int reverse_lines(tg_plugin_task *task, const char *in, const char *out) {
  unsigned char *data;
  size_t len;
  if (slurp(task, in, &data, &len) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  writer w;
  if (writer_open(&w, task, out) != TG_PLUGIN_OK) {
    free(data);
    return TG_PLUGIN_FAILED;
  }
  int rc = TG_PLUGIN_OK;
  if (len > 0) {
    /* data[0 .. end) holds the lines separated by '\n'; the last line's own
       newline, when it has one, is left out. */
    size_t end = data[len - 1] == '\n' ? len - 1 : len;
    for (;;) {
      size_t start = end;
      while (start > 0 && data[start - 1] != '\n') start--;
      rc = writer_put(&w, data + start, end - start);
      if (rc == TG_PLUGIN_OK) rc = writer_byte(&w, '\n');
      if (rc != TG_PLUGIN_OK || start == 0) break;
      end = start - 1; /* before the '\n' that ended the previous line */
    }
  }
  free(data);
  return writer_finish(&w, rc);
}

/* ---- wrap --------------------------------------------------------------------------- */

/* A streaming greedy filler. A paragraph is a run of non-blank lines; its
   words are joined with single spaces into lines of at most `width`
   columns (a column is a UTF-8 character: every byte but 10xxxxxx); a word
   wider than that gets a line of its own. Each paragraph starts on a new
   line. keep_blank copies every blank input line (empty or all white space)
   as an empty output line; without it blank lines are dropped. */
typedef struct wrapper {
  writer *w;
  long width;
  int keep_blank;
  unsigned char *word; /* the word being read */
  size_t word_len, word_cap;
  long word_cols;
  long line_cols;     /* columns on the output line; 0 when nothing is on it */
  int line_has_words; /* whether the current input line had a word */
} wrapper;

static int wrap_word(wrapper *z) {
  if (z->word_len == 0) return TG_PLUGIN_OK;
  int rc = TG_PLUGIN_OK;
  if (z->line_cols > 0 && z->line_cols + 1 + z->word_cols <= z->width) {
    rc = writer_byte(z->w, ' ');
    z->line_cols += 1;
  } else if (z->line_cols > 0) {
    rc = writer_byte(z->w, '\n');
    z->line_cols = 0;
  }
  if (rc == TG_PLUGIN_OK) rc = writer_put(z->w, z->word, z->word_len);
  z->line_cols += z->word_cols;
  z->word_len = 0;
  z->word_cols = 0;
  return rc;
}

static int wrap_end_of_line(wrapper *z) {
  if (wrap_word(z) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  if (!z->line_has_words) { /* a blank line ends the paragraph */
    if (z->line_cols > 0) {
      if (writer_byte(z->w, '\n') != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
      z->line_cols = 0;
    }
    if (z->keep_blank && writer_byte(z->w, '\n') != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  }
  z->line_has_words = 0;
  return TG_PLUGIN_OK;
}

static int wrap_byte(wrapper *z, unsigned char c) {
  if (c == '\n') return wrap_end_of_line(z);
  if (is_space(c)) return wrap_word(z);
  if (z->word_len == z->word_cap) {
    size_t bigger = z->word_cap ? z->word_cap * 2 : 256;
    unsigned char *p = realloc(z->word, bigger);
    if (!p) return fail(z->w->task, "out of memory (a word of %zu bytes)", z->word_len);
    z->word = p;
    z->word_cap = bigger;
  }
  z->word[z->word_len++] = c;
  if ((c & 0xC0) != 0x80) z->word_cols++;
  z->line_has_words = 1;
  return TG_PLUGIN_OK;
}

static int wrap(tg_plugin_task *task, const char *in, const char *out, long width, int keep_blank) {
  if (width < 8 || width > 1000) return fail(task, "bad width %ld: it must be 8 .. 1000", width);
  reader r;
  writer w;
  if (reader_open(&r, task, in) != TG_PLUGIN_OK) return TG_PLUGIN_FAILED;
  if (writer_open(&w, task, out) != TG_PLUGIN_OK) {
    reader_close(&r);
    return TG_PLUGIN_FAILED;
  }
  wrapper z;
  memset(&z, 0, sizeof z);
  z.w = &w;
  z.width = width;
  z.keep_blank = keep_blank;
  int rc;
  for (;;) {
    size_t n;
    rc = reader_next(&r, &n);
    if (rc != TG_PLUGIN_OK || n == 0) break;
    for (size_t i = 0; i < n && rc == TG_PLUGIN_OK; i++) rc = wrap_byte(&z, r.buf[i]);
    if (rc != TG_PLUGIN_OK) break;
  }
  if (rc == TG_PLUGIN_OK) { /* the end: a last line without '\n', and the paragraph */
    rc = wrap_word(&z);
    if (rc == TG_PLUGIN_OK && z.line_cols > 0) rc = writer_byte(&w, '\n');
  }
  free(z.word);
  reader_close(&r);
  return writer_finish(&w, rc);
}

/* ---- stats ------------------------------------------------------------------------------ */

/* Line lengths (bytes, without the '\n') are kept as a histogram for the
   short ones and a list for the rest, so memory does not grow with the
   number of lines. */
#define SHORT_LINES 4096

typedef struct line_lengths {
  unsigned long long *histogram; /* [SHORT_LINES] */
  unsigned long long *long_ones;
  size_t n_long, cap_long;
} line_lengths;

static int note_line(tg_plugin_task *task, line_lengths *l, unsigned long long len) {
  if (len < SHORT_LINES) {
    l->histogram[len]++;
    return TG_PLUGIN_OK;
  }
  if (l->n_long == l->cap_long) {
    size_t bigger = l->cap_long ? l->cap_long * 2 : 64;
    unsigned long long *p = realloc(l->long_ones, bigger * sizeof *p);
    if (!p) return fail(task, "out of memory");
    l->long_ones = p;
    l->cap_long = bigger;
  }
  l->long_ones[l->n_long++] = len;
  return TG_PLUGIN_OK;
}

static int stats(tg_plugin_task *task, const char *in, double threshold) {
  if (!(threshold >= 0.0 && threshold <= DBL_MAX)) return fail(task, "bad threshold %g: it must be a finite number >= 0", threshold);
  line_lengths l;
  memset(&l, 0, sizeof l);
  l.histogram = calloc(SHORT_LINES, sizeof *l.histogram);
  if (!l.histogram) return fail(task, "out of memory");
  reader r;
  if (reader_open(&r, task, in) != TG_PLUGIN_OK) {
    free(l.histogram);
    return TG_PLUGIN_FAILED;
  }
  unsigned long long lines = 0, words = 0, bytes = 0, line_len = 0, total_len = 0;
  int in_word = 0, rc;
  for (;;) {
    size_t n;
    rc = reader_next(&r, &n);
    if (rc != TG_PLUGIN_OK || n == 0) break;
    bytes += n;
    for (size_t i = 0; i < n && rc == TG_PLUGIN_OK; i++) {
      unsigned char c = r.buf[i];
      if (is_space(c)) {
        in_word = 0;
      } else if (!in_word) {
        in_word = 1;
        words++;
      }
      if (c == '\n') {
        lines++;
        total_len += line_len;
        rc = note_line(task, &l, line_len);
        line_len = 0;
      } else {
        line_len++;
      }
    }
    if (rc != TG_PLUGIN_OK) break;
  }
  reader_close(&r);
  if (rc == TG_PLUGIN_OK && line_len > 0) { /* a last line without '\n' */
    lines++;
    total_len += line_len;
    rc = note_line(task, &l, line_len);
  }
  if (rc == TG_PLUGIN_OK) {
    unsigned long long long_lines = 0;
    if (lines > 0) {
      double limit = threshold * ((double)total_len / (double)lines);
      for (unsigned long long k = 0; k < SHORT_LINES; k++)
        if ((double)k > limit) long_lines += l.histogram[k];
      for (size_t k = 0; k < l.n_long; k++)
        if ((double)l.long_ones[k] > limit) long_lines++;
    }
    /* The ratio as %.4f, written by hand: printf's decimal point follows
       the host process's locale, which JSON must not. */
    unsigned long long scaled = lines ? (long_lines * 10000ull * 2 + lines) / (lines * 2) : 0;
    char json[160];
    int len = snprintf(json, sizeof json, "{\"lines\":%llu,\"words\":%llu,\"bytes\":%llu,\"long_line_ratio\":%llu.%04llu}",
                       lines, words, bytes, scaled / 10000, scaled % 10000);
    rc = set_output(task, json, (size_t)len);
  }
  free(l.histogram);
  free(l.long_ones);
  return rc;
}

/* ---- entry points ------------------------------------------------------------------------- */

TG_PLUGIN_EXPORT int text_upper(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int text_lower(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int text_reverse_lines(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int text_wrap(tg_plugin_task *task, ...);
TG_PLUGIN_EXPORT int text_stats(tg_plugin_task *task, ...);

/* upper(string in, string out) */
int text_upper(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in = va_arg(ap, const char *);
  const char *out = va_arg(ap, const char *);
  va_end(ap);
  return change_case(task, in, out, 1);
}

/* lower(string in, string out) */
int text_lower(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in = va_arg(ap, const char *);
  const char *out = va_arg(ap, const char *);
  va_end(ap);
  return change_case(task, in, out, 0);
}

/* reverse_lines(string in, string out) */
int text_reverse_lines(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in = va_arg(ap, const char *);
  const char *out = va_arg(ap, const char *);
  va_end(ap);
  return reverse_lines(task, in, out);
}

/* wrap(string in, string out, i32 width, bool keep_blank) */
int text_wrap(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in = va_arg(ap, const char *);
  const char *out = va_arg(ap, const char *);
  int32_t width = va_arg(ap, int32_t);  /* TG_TYPE_I32: an int */
  int keep_blank = va_arg(ap, int) != 0; /* TG_TYPE_BOOL: promoted to int */
  va_end(ap);
  return wrap(task, in, out, (long)width, keep_blank);
}

/* stats(string in, double threshold) */
int text_stats(tg_plugin_task *task, ...) {
  va_list ap;
  va_start(ap, task);
  const char *in = va_arg(ap, const char *);
  double threshold = va_arg(ap, double);
  va_end(ap);
  return stats(task, in, threshold);
}

/* ---- the descriptor --------------------------------------------------------------------------- */

static const uint8_t in_out[] = {TG_TYPE_STRING, TG_TYPE_STRING};
static const uint8_t wrap_args[] = {TG_TYPE_STRING, TG_TYPE_STRING, TG_TYPE_I32, TG_TYPE_BOOL};
static const uint8_t stats_args[] = {TG_TYPE_STRING, TG_TYPE_DOUBLE};

static const tg_plugin_processor processors[] = {
  {"upper", "text_upper", in_out, 2, 0, NULL, NULL, "copy a file with ASCII letters in upper case"},
  {"lower", "text_lower", in_out, 2, 0, NULL, NULL, "copy a file with ASCII letters in lower case"},
  {"reverse_lines", "text_reverse_lines", in_out, 2, 0, NULL, NULL, "copy a file with its lines in reverse order"},
  {"wrap", "text_wrap", wrap_args, 4, 0, NULL, NULL, "re-flow paragraphs to at most width columns (8 .. 1000)"},
  {"stats", "text_stats", stats_args, 2, 0, NULL, NULL, "line, word and byte counts, and the share of long lines, as JSON"},
};

TG_PLUGIN_EXPORT const tg_plugin_descriptor taskgate_plugin_descriptor = {
  TG_PLUGIN_DESCRIPTOR_HEAD,
  "text",
  "1.0.0",
  "Text file transforms and statistics",
  processors,
  sizeof processors / sizeof processors[0],
  0,
  NULL,
  NULL,
  NULL,
};
