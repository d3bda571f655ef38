/* Parallel execution gates through the C door: reports checked field by
 * field, batches, the integer cycle check, bad input. */
#define _POSIX_C_SOURCE 200809L
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tg_gate_task task(const char *id, const char *const *deps, size_t nd, const char *const *reads, size_t nr,
                         const char *const *writes, size_t nw, int32_t difficulty) {
  tg_gate_task t = TG_GATE_TASK_INIT;
  t.id = id;
  t.deps = deps;
  t.n_deps = nd;
  t.reads = reads;
  t.n_reads = nr;
  t.writes = writes;
  t.n_writes = nw;
  t.difficulty = difficulty;
  return t;
}

#define HAS(json, text) CHECK(strstr((json), (text)) != NULL, "report has %s: %s", (text), (json))

static void test_report(void) {
  const char *w_main[] = {"src/main.c"};
  const char *r_main[] = {"./src/../src/main.c"};  /* the same path, spelled otherwise */
  const char *w_cfg[] = {"/etc/app.json"};
  tg_gate_task ts[3];
  ts[0] = task("110_1", NULL, 0, NULL, 0, w_main, 1, 6);
  ts[1] = task("110_2", NULL, 0, NULL, 0, w_main, 1, 6);
  ts[2] = task("110_3", NULL, 0, r_main, 1, w_cfg, 1, 6);
  tg_gate_options o = TG_GATE_OPTIONS_INIT;
  o.base_dir = "/proj";
  o.active_tasks = 3;
  int can = -1;
  char *json = NULL;
  CHECK_RC(tg_gate_validate(ts, 3, &o, &can, &json), TG_OK);
  CHECK(can == 0, "a write-write conflict blocks");
  HAS(json, "{\"can_parallel\":false,\"task_count\":3,\"file_conflicts\":[");
  HAS(json, "{\"task1\":\"110_1\",\"task2\":\"110_2\",\"file\":\"/proj/src/main.c\",\"type\":\"blocking\"");
  HAS(json, "{\"task1\":\"110_1\",\"task2\":\"110_3\",\"file\":\"/proj/src/main.c\",\"type\":\"warning\"");
  HAS(json, "\"circular_dependencies\":[]");
  HAS(json, "\"lock_issues\":[]");
  HAS(json, "\"resource_capacity\":{\"max_parallel_tasks\":5,\"requested\":3,\"available\":2");
  HAS(json, "\"context_budget\":{\"total_complexity\":18,\"max_complexity\":30,\"within_budget\":true}");
  HAS(json, "\"Execute conflicting tasks sequentially\"");
  tg_free(json);

  /* Overlap allowed: read-write is a warning the scheduler does not serialise. */
  o.flags = TG_GATE_ALLOW_READ_WRITE_OVERLAP;
  o.active_tasks = 0;
  CHECK_RC(tg_gate_validate(ts + 1, 2, &o, &can, &json), TG_OK);
  CHECK(can == 1, "read-write with overlap allowed can run in parallel: %s", json);
  HAS(json, "\"type\":\"warning\",\"serialized\":false");
  tg_free(json);

  /* Budget: exactly at the limit is within, one over is not. */
  o = (tg_gate_options)TG_GATE_OPTIONS_INIT;
  o.max_complexity = 12;
  tg_gate_task two[2] = {task("a", NULL, 0, NULL, 0, NULL, 0, 6), task("b", NULL, 0, NULL, 0, NULL, 0, 6)};
  CHECK_RC(tg_gate_validate(two, 2, &o, &can, &json), TG_OK);
  CHECK(can == 1, "12 of 12 is within budget");
  HAS(json, "\"context_budget\":{\"total_complexity\":12,\"max_complexity\":12,\"within_budget\":true}");
  tg_free(json);
  two[1].difficulty = 7;
  CHECK_RC(tg_gate_validate(two, 2, &o, &can, &json), TG_OK);
  CHECK(can == 0, "13 of 12 is over budget");
  HAS(json, "\"within_budget\":false");
  tg_free(json);

  /* Cycles of length 1, 2 and 3, each named. */
  const char *self[] = {"s"};
  const char *to_y[] = {"y"}, *to_x[] = {"x"};
  const char *to_q[] = {"q"}, *to_r[] = {"r"}, *to_p[] = {"p"};
  tg_gate_task cyc[6] = {task("s", self, 1, NULL, 0, NULL, 0, 0), task("x", to_y, 1, NULL, 0, NULL, 0, 0),
                         task("y", to_x, 1, NULL, 0, NULL, 0, 0), task("p", to_q, 1, NULL, 0, NULL, 0, 0),
                         task("q", to_r, 1, NULL, 0, NULL, 0, 0), task("r", to_p, 1, NULL, 0, NULL, 0, 0)};
  o = (tg_gate_options)TG_GATE_OPTIONS_INIT;
  o.max_parallel_tasks = 10;
  CHECK_RC(tg_gate_validate(cyc, 6, &o, &can, &json), TG_OK);
  CHECK(can == 0, "cycles block");
  HAS(json, "\"circular_dependencies\":[[\"s\",\"s\"],[\"x\",\"y\",\"x\"],[\"p\",\"q\",\"r\",\"p\"]]");
  tg_free(json);
  CHECK_RC(tg_gate_suggest(cyc, 6, &o, &json), TG_ECYCLE);
  CHECK(strstr(tg_last_error(), "s -> s") != NULL || strstr(tg_last_error(), "cycle") != NULL, "names the cycle: %s", tg_last_error());
}

static void test_locks_and_batches(void) {
  char dir[] = "/tmp/tg-gates-XXXXXX";
  if (!mkdtemp(dir)) return;
  char locks[256];
  snprintf(locks, sizeof locks, "%s/locks", dir);
  tg_lock *l = NULL;
  tg_lock_options lo = TG_LOCK_OPTIONS_INIT;
  lo.holder_id = "other-run";
  CHECK_RC(tg_lock_open(locks, "/proj/data.json", &lo, &l), TG_OK);
  CHECK_RC(tg_lock_acquire(l, 0), TG_OK);
  const char *w_data[] = {"data.json"};
  tg_gate_task ts[1] = {task("t", NULL, 0, NULL, 0, w_data, 1, 1)};
  tg_gate_options o = TG_GATE_OPTIONS_INIT;
  o.base_dir = "/proj";
  o.lock_dir = locks;
  int can = -1;
  char *json = NULL;
  CHECK_RC(tg_gate_validate(ts, 1, &o, &can, &json), TG_OK);
  CHECK(can == 0, "a held lock blocks");
  HAS(json, "\"lock_issues\":[{\"task\":\"t\",\"file\":\"/proj/data.json\",\"holder\":\"other-run\"");
  HAS(json, "\"Wait for file locks to be released\"");
  tg_free(json);
  tg_lock_close(l);
  CHECK_RC(tg_gate_validate(ts, 1, &o, &can, &json), TG_OK);
  CHECK(can == 1, "released: no lock issue: %s", json);
  tg_free(json);

  /* Batches: a and b write one file; c depends on a. */
  const char *w[] = {"out.txt"};
  const char *dep_a[] = {"a"};
  tg_gate_task bs[4] = {task("a", NULL, 0, NULL, 0, w, 1, 1), task("b", NULL, 0, NULL, 0, w, 1, 1),
                        task("c", dep_a, 1, NULL, 0, NULL, 0, 1), task("d", NULL, 0, NULL, 0, NULL, 0, 1)};
  char *first = NULL, *second = NULL;
  CHECK_RC(tg_gate_suggest(bs, 4, &o, &first), TG_OK);
  HAS(first, "\"batches\":[[\"a\",\"d\"],[\"b\",\"c\"]]");
  CHECK_RC(tg_gate_suggest(bs, 4, &o, &second), TG_OK);
  CHECK(first && second && strcmp(first, second) == 0, "the same input gives the same batches");
  tg_free(first);
  tg_free(second);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static void test_find_cycles(void) {
  enum { V = 20000, E = 80000 };
  uint32_t *from = malloc(sizeof(uint32_t) * (E + 1)), *to = malloc(sizeof(uint32_t) * (E + 1));
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int e = 0; e < E; e++) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    uint32_t a = (uint32_t)(s % V), b = (uint32_t)((s >> 32) % V);
    if (a == b) b = (b + 1) % V;
    from[e] = a > b ? a : b;  /* depends on a smaller node: acyclic */
    to[e] = a > b ? b : a;
  }
  size_t count = 99;
  char *json = NULL;
  CHECK_RC(tg_gate_find_cycles(V, from, to, E, &count, &json), TG_OK);
  CHECK(count == 0 && json && strcmp(json, "[]") == 0, "a random DAG has no cycle");
  tg_free(json);
  from[E] = to[0];  /* a back edge: to[0] now depends on from[0] */
  to[E] = from[0];
  CHECK_RC(tg_gate_find_cycles(V, from, to, E + 1, &count, &json), TG_OK);
  CHECK(count == 1, "the back edge makes one cyclic component (%zu): %s", count, json);
  tg_free(json);
  uint32_t bad_from[] = {0}, bad_to[] = {V};
  CHECK_RC(tg_gate_find_cycles(V, bad_from, bad_to, 1, &count, NULL), TG_ERANGE);
  CHECK_RC(tg_gate_find_cycles(V, NULL, NULL, 3, &count, NULL), TG_EINVAL);
  free(from);
  free(to);
}

static void test_bad_input(void) {
  char *json = NULL;
  int can;
  tg_gate_task t[2] = {task("x", NULL, 0, NULL, 0, NULL, 0, 1), task("x", NULL, 0, NULL, 0, NULL, 0, 1)};
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "'x'") != NULL, "names the duplicate: %s", tg_last_error());
  t[1].id = "";
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EINVAL);
  t[1].id = NULL;
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EINVAL);
  CHECK(strstr(tg_last_error(), "tasks[1].id") != NULL, "names the index: %s", tg_last_error());
  t[1].id = "y";
  t[1].difficulty = -1;
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EINVAL);
  t[1].difficulty = 1;
  t[1].n_writes = 2;
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EINVAL);
  t[1].n_writes = 0;
  t[0].struct_size = 4;
  CHECK_RC(tg_gate_validate(t, 2, NULL, &can, &json), TG_EVERSION);
  t[0].struct_size = sizeof(tg_gate_task);
  tg_gate_options o = TG_GATE_OPTIONS_INIT;
  o.flags = 0x100;
  CHECK_RC(tg_gate_validate(t, 2, &o, &can, &json), TG_EINVAL);
  o = (tg_gate_options)TG_GATE_OPTIONS_INIT;
  o.base_dir = "relative";
  CHECK_RC(tg_gate_validate(t, 2, &o, &can, &json), TG_EINVAL);
  o = (tg_gate_options)TG_GATE_OPTIONS_INIT;
  o.memory_threshold = 2;
  CHECK_RC(tg_gate_validate(t, 2, &o, &can, &json), TG_EINVAL);
  CHECK_RC(tg_gate_validate(NULL, 1, NULL, &can, &json), TG_EINVAL);
  CHECK(json == NULL, "no text on failure");
  CHECK_RC(tg_gate_validate(NULL, 0, NULL, &can, &json), TG_OK);
  HAS(json, "\"can_parallel\":true,\"task_count\":0");
  tg_free(json);
  CHECK_RC(tg_gate_suggest(t, 2, NULL, NULL), TG_EINVAL);
  o.flags = TG_GATE_CHECK_SYSTEM;
  o.memory_threshold = 0;
  CHECK_RC(tg_gate_validate(t, 2, &o, &can, &json), TG_OK);
  HAS(json, "\"cpu_load\":");
  HAS(json, "\"open_file_limit\":");
  tg_free(json);
}

int main(void) {
  tap_init();
  test_report();
  test_locks_and_batches();
  test_find_cycles();
  test_bad_input();
  return tg_test_summary();
}
