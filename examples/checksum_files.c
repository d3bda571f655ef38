/*
 * checksum_files: a real workload on taskgate's C API.
 *
 *   checksum_files DIR [MANIFEST]
 *
 * Every regular file under DIR becomes a task (id = its path, a declared read
 * of that path; files over 64 KiB get high priority so the long ones start
 * first). Each task computes the file's CRC-32 and size. A final "manifest"
 * task depends on all of them and writes MANIFEST (default DIR.manifest),
 * declared as a write. Progress goes to stderr, the summary to stdout.
 * Exit status: 0 all succeeded, 1 some task failed, 2 bad usage or input.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <taskgate.h>

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

/* Processor: CRC-32 and size of the file named by the task id. */
static int checksum(tg_task_ctx *ctx, void *user) {
  (void)user;
  const char *path = tg_task_id(ctx);
  FILE *f = fopen(path, "rb");
  if (!f) {
    char msg[512];
    snprintf(msg, sizeof msg, "cannot open %s: %s", path, strerror(errno));
    tg_task_set_error(ctx, msg);
    return TG_TASK_FAILED;
  }
  uint32_t crc = 0xFFFFFFFFu;
  uint64_t size = 0;
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (tg_task_cancelled(ctx)) break;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
    size += n;
  }
  int failed = ferror(f);
  fclose(f);
  if (failed) {
    tg_task_set_error(ctx, "read error");
    return TG_TASK_FAILED;
  }
  char line[64];
  int len = snprintf(line, sizeof line, "%08" PRIx32 " %" PRIu64, crc ^ 0xFFFFFFFFu, size);
  tg_task_set_output(ctx, line, (size_t)len);
  return TG_TASK_SUCCEEDED;
}

struct job {
  tg_pool *pool;
  char **paths;
  size_t count;
  const char *manifest;
};

/* Processor: writes "crc size path" for every file, in submission order. */
static int write_manifest(tg_task_ctx *ctx, void *user) {
  struct job *job = user;
  FILE *out = fopen(job->manifest, "w");
  if (!out) {
    tg_task_set_error(ctx, "cannot create the manifest");
    return TG_TASK_FAILED;
  }
  for (size_t i = 0; i < job->count; i++) {
    tg_result r = TG_RESULT_INIT;
    if (tg_pool_result(job->pool, job->paths[i], &r) != TG_OK || r.status != TG_STATUS_SUCCEEDED) continue;
    fprintf(out, "%.*s %s\n", (int)r.output_len, (const char *)r.output, job->paths[i]);
  }
  return fclose(out) == 0 ? TG_TASK_SUCCEEDED : TG_TASK_FAILED;
}

static char **files;
static size_t nfiles, capfiles;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)ftw;
  if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
  if (nfiles == capfiles) {
    capfiles = capfiles ? capfiles * 2 : 64;
    files = realloc(files, capfiles * sizeof *files);
    if (!files) return -1;
  }
  files[nfiles++] = strdup(path);
  return 0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: %s DIR [MANIFEST]\n", argv[0]);
    return 2;
  }
  struct stat st;
  if (stat(argv[1], &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "checksum_files: %s: not a directory\n", argv[1]);
    return 2;
  }
  char manifest[4096];
  snprintf(manifest, sizeof manifest, "%s", argc == 3 ? argv[2] : "");
  if (argc == 2) snprintf(manifest, sizeof manifest, "%s.manifest", argv[1]);
  if (nftw(argv[1], collect, 16, FTW_PHYS) != 0) {
    fprintf(stderr, "checksum_files: cannot walk %s\n", argv[1]);
    return 2;
  }
  crc_init();

  tg_pool *pool;
  if (tg_pool_create(NULL, &pool) != TG_OK) {
    fprintf(stderr, "checksum_files: %s\n", tg_last_error());
    return 2;
  }
  double t0 = now();
  tg_task_desc *tasks = calloc(nfiles + 1, sizeof *tasks);
  for (size_t i = 0; i < nfiles; i++) {
    tg_task_desc d = TG_TASK_DESC_INIT;
    d.id = files[i];
    d.fn = checksum;
    d.reads = (const char *const *)&files[i];
    d.n_reads = 1;
    struct stat fs;
    d.priority = (stat(files[i], &fs) == 0 && fs.st_size > 65536) ? TG_PRIORITY_HIGH : TG_PRIORITY_NORMAL;
    tasks[i] = d;
  }
  struct job job = {pool, files, nfiles, manifest};
  const char *manifest_path = manifest;
  tg_task_desc m = TG_TASK_DESC_INIT;
  m.id = "manifest";
  m.fn = write_manifest;
  m.user = &job;
  m.deps = (const char *const *)files;
  m.n_deps = nfiles;
  m.writes = &manifest_path;
  m.n_writes = 1;
  tasks[nfiles] = m;
  if (tg_pool_submit_batch(pool, tasks, nfiles + 1, NULL) != TG_OK) {
    fprintf(stderr, "checksum_files: %s\n", tg_last_error());
    return 2;
  }
  if (tg_pool_wait_all(pool, -1) != TG_OK) {
    fprintf(stderr, "checksum_files: %s\n", tg_last_error());
    return 2;
  }
  double wall = now() - t0;

  tg_pool_stats s = TG_POOL_STATS_INIT;
  tg_pool_stats_get(pool, &s);
  uint64_t bytes = 0;
  for (size_t i = 0; i <= nfiles; i++) {
    tg_result r = TG_RESULT_INIT;
    tg_pool_result_at(pool, i, &r);
    if (r.status != TG_STATUS_SUCCEEDED) {
      fprintf(stderr, "%s: %s: %s\n", r.id, tg_status_name(r.status), r.error ? r.error : "");
    } else if (i < nfiles) {
      const char *space = memchr(r.output, ' ', r.output_len);
      if (space) bytes += strtoull(space + 1, NULL, 10);
    }
  }
  printf("%zu files, %" PRIu64 " bytes, %u workers: %" PRIu64 " succeeded, %" PRIu64 " failed, %" PRIu64
         " skipped in %.3f s; manifest: %s\n",
         nfiles, bytes, s.workers, s.succeeded, s.failed, s.skipped, wall, manifest);
  int failed = s.succeeded != nfiles + 1;
  tg_pool_destroy(pool);
  for (size_t i = 0; i < nfiles; i++) free(files[i]);
  free(files);
  free(tasks);
  return failed ? 1 : 0;
}
