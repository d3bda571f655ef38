/* Gates through the C door, beside ../shared/baselines/dag/kahn.c (run it in
 * the same benchmark run):
 *  - tg_gate_find_cycles on kahn.c's own random DAG (same generator, same seed,
 *    V nodes, E edges), acyclic, and with one back edge (a 2-cycle to find);
 *  - tg_gate_validate and tg_gate_suggest on 10,000 tasks x 8 declared paths
 *    drawn from 20,000 distinct ~40-byte paths (a quarter of them writes).
 * Every timing includes the C-to-Swift conversion of the input; the JSON
 * report is timed both without (can_parallel only) and with.
 * usage: bench_gates [V E [REPS]] */
#define _POSIX_C_SOURCE 200809L
#include <taskgate.h>
#define BENCH_NAME "bench_gates"
#define N 1
#define MAX_REPS 64
#include "bench_common.h"

static uint64_t s = 0x9E3779B97F4A7C15ull; /* kahn.c's seed and xorshift */
static inline uint64_t rnd(void) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

/* Sorts v in place; its median. */
static double median(double *v, int reps) {
  qsort(v, (size_t)reps, sizeof(double), cmp_double);
  return v[reps / 2];
}

static void result(const char *label, double *v, int reps, const char *note) {
  median(v, reps);
  printf("RESULT %s sec=%.4f (in-process median of %d reps; min %.4f max %.4f; %s)\n", label, v[reps / 2], reps,
         v[0], v[reps - 1], note);
  fflush(stdout);
}

static void cycles(int V, long E, int reps) {
  uint32_t *rank = malloc(sizeof(uint32_t) * (size_t)V);
  uint32_t *from = malloc(sizeof(uint32_t) * (size_t)(E + 1));
  uint32_t *to = malloc(sizeof(uint32_t) * (size_t)(E + 1));
  if (!rank || !from || !to) fail("out of memory");
  for (int i = 0; i < V; i++) rank[i] = (uint32_t)i;
  for (int i = V - 1; i > 0; i--) {
    int j = (int)(rnd() % (uint64_t)(i + 1));
    uint32_t t = rank[i];
    rank[i] = rank[j];
    rank[j] = t;
  }
  for (long e = 0; e < E; e++) {
    int u, v;
    do {
      u = (int)(rnd() % (uint64_t)V);
      v = (int)(rnd() % (uint64_t)V);
    } while (u == v);
    if (rank[u] > rank[v]) {
      int t = u;
      u = v;
      v = t;
    }
    from[e] = (uint32_t)u;
    to[e] = (uint32_t)v;
  }
  double va[MAX_REPS], vc[MAX_REPS];
  size_t found = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    CHECK(tg_gate_find_cycles((size_t)V, from, to, (size_t)E, &found, NULL));
    va[r] = now_s() - t0;
    if (found != 0) fail("acyclic graph: %zu cycles reported", found);
  }
  from[E] = to[0]; /* reverse of an existing edge: one 2-cycle */
  to[E] = from[0];
  char *json = NULL;
  for (int r = 0; r < reps; r++) {
    tg_free(json);
    json = NULL;
    double t0 = now_s();
    CHECK(tg_gate_find_cycles((size_t)V, from, to, (size_t)E + 1, &found, &json));
    vc[r] = now_s() - t0;
    if (found != 1) fail("one back edge: %zu cycles reported, want 1", found);
  }
  char label[128], note[160];
  snprintf(label, sizeof label, "taskgate_gate_find_cycles_acyclic_V%d_E%ld", V, E);
  snprintf(note, sizeof note, "ns_per_edge %.2f", median(va, reps) / (double)E * 1e9);
  result(label, va, reps, note);
  snprintf(label, sizeof label, "taskgate_gate_find_cycles_1backedge_V%d_E%ld", V, E + 1);
  snprintf(note, sizeof note, "cycle named: %.60s", json ? json : "(none)");
  result(label, vc, reps, note);
  tg_free(json);
  free(rank);
  free(from);
  free(to);
}

enum { TASKS = 10000, PATHS_PER_TASK = 8, PATHS = 20000 };

static void gates(int reps) {
  static char path_text[PATHS][64];
  static char ids[TASKS][16];
  static const char *reads[TASKS][PATHS_PER_TASK], *writes[TASKS][PATHS_PER_TASK];
  static tg_gate_task tasks[TASKS];
  for (int k = 0; k < PATHS; k++) snprintf(path_text[k], sizeof path_text[k], "/work/project/src/module%d/file_%05d.c", k % 97, k);
  uint64_t keep = s;
  s = 12345;
  for (int t = 0; t < TASKS; t++) {
    snprintf(ids[t], sizeof ids[t], "task_%d", t);
    tg_gate_task g = TG_GATE_TASK_INIT;
    g.id = ids[t];
    g.reads = reads[t];
    g.writes = writes[t];
    for (int p = 0; p < PATHS_PER_TASK; p++) {
      const char *path = path_text[rnd() % PATHS];
      if (rnd() % 4 == 0) writes[t][g.n_writes++] = path;
      else reads[t][g.n_reads++] = path;
    }
    g.difficulty = (int32_t)(rnd() % 5) + 1;
    tasks[t] = g;
  }
  s = keep;
  tg_gate_options o = TG_GATE_OPTIONS_INIT;
  double v[MAX_REPS];
  int can = -1;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    CHECK(tg_gate_validate(tasks, TASKS, &o, &can, NULL));
    v[r] = now_s() - t0;
    if (can != 0) fail("10,000 tasks over 20,000 paths must conflict");
  }
  result("taskgate_gate_validate_10000x8_verdict", v, reps, "can_parallel only");
  size_t bytes = 0;
  for (int r = 0; r < reps; r++) {
    char *json = NULL;
    double t0 = now_s();
    CHECK(tg_gate_validate(tasks, TASKS, &o, &can, &json));
    v[r] = now_s() - t0;
    bytes = strlen(json);
    tg_free(json);
  }
  char note[96];
  snprintf(note, sizeof note, "with the JSON report, %zu bytes", bytes);
  result("taskgate_gate_validate_10000x8_report", v, reps, note);
  for (int r = 0; r < reps; r++) {
    char *json = NULL;
    double t0 = now_s();
    CHECK(tg_gate_suggest(tasks, TASKS, &o, &json));
    v[r] = now_s() - t0;
    bytes = strlen(json);
    tg_free(json);
  }
  snprintf(note, sizeof note, "batches as JSON, %zu bytes", bytes);
  result("taskgate_gate_suggest_10000x8", v, reps, note);
}

int main(int argc, char **argv) {
  int V = argc > 1 ? atoi(argv[1]) : 1000000;
  long E = argc > 2 ? atol(argv[2]) : 4000000;
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  if (V < 2 || E < 1 || reps < 1 || reps > MAX_REPS) fail("usage: bench_gates [V E [REPS]]");
  cycles(V, E, reps);
  gates(reps);
  return 0;
}
