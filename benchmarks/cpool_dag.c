/*
 * cpool_dag.c: the baseline for taskgate_dag_1e6: the same 1,000,000-task
 * fan-out/fan-in DAG run on a plain pthread pool, the kind of pool
 * ../shared/baselines/cpool/cpool.c measures (one FIFO, one mutex, condvars,
 * one malloc per queued task), with dependencies tracked by atomic counters.
 *
 * usage: cpool_dag WORKERS REPS
 * prints: RESULT cpool_dag_1e6_T<W> ns_per_op=<x> ops_per_s=<y> (median of R reps ...)
 *
 * The DAG, in node order (the same shape and numbering as bench_taskgate.c):
 *   node 0                      the root
 *   per round r (999 rounds), b = 1 + r * 1001:
 *     nodes b .. b+999          fan-out, each depending on the previous join
 *     node  b+1000              the join, depending on those 1000
 * The previous join of round 0 is the root. 1 + 999 * 1001 = 1,000,000 nodes.
 *
 * The graph (successor lists, in CSR form, and dependency counts) is built
 * before the timed region, as bench_taskgate prepares its descriptors. Timed:
 * resetting every node's pending-dependency counter, submitting the root, and
 * waiting until every node has run. A node, when it runs, decrements each
 * successor's counter and submits the successors that reach zero. Each rep
 * uses a fresh pool, created outside the timed region.
 *
 * Correctness: every rep checks that each node ran exactly once; one extra,
 * untimed rep first also stamps start/finish tickets and checks that every
 * node started after all of its dependencies finished.
 *
 * build: gcc -std=c99 -O2 -pthread -o cpool_dag cpool_dag.c
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 1000000L
#define FANOUT 1000L
#define ROUNDS ((N - 1) / (FANOUT + 1))
#define MAX_REPS 64

/* ---- the pool: one FIFO list, one mutex, two condvars ---------------------- */

typedef struct job {
  void (*fn)(void *);
  void *arg;
  struct job *next;
} job;

typedef struct pool {
  pthread_mutex_t mu;
  pthread_cond_t has_work, all_done;
  job *head, *tail;
  long unfinished; /* submitted and not yet returned */
  int stop, nthreads;
  pthread_t *threads;
} pool;

static void *pool_worker(void *arg) {
  pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    while (!p->head && !p->stop) pthread_cond_wait(&p->has_work, &p->mu);
    if (!p->head) { /* stopping and drained */
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    job *j = p->head;
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    pthread_mutex_unlock(&p->mu);

    j->fn(j->arg); /* may submit more jobs before this one counts as done */
    free(j);

    pthread_mutex_lock(&p->mu);
    if (--p->unfinished == 0) pthread_cond_broadcast(&p->all_done);
    pthread_mutex_unlock(&p->mu);
  }
}

static void pool_init(pool *p, int nthreads) {
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->has_work, NULL);
  pthread_cond_init(&p->all_done, NULL);
  p->head = p->tail = NULL;
  p->unfinished = 0;
  p->stop = 0;
  p->nthreads = nthreads;
  p->threads = malloc(sizeof(pthread_t) * (size_t)nthreads);
  for (int i = 0; i < nthreads; i++) pthread_create(&p->threads[i], NULL, pool_worker, p);
}

static void pool_submit(pool *p, void (*fn)(void *), void *arg) {
  job *j = malloc(sizeof *j);
  if (!j) abort();
  j->fn = fn;
  j->arg = arg;
  j->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->tail) p->tail->next = j;
  else p->head = j;
  p->tail = j;
  p->unfinished++;
  pthread_cond_signal(&p->has_work);
  pthread_mutex_unlock(&p->mu);
}

static void pool_wait(pool *p) {
  pthread_mutex_lock(&p->mu);
  while (p->unfinished) pthread_cond_wait(&p->all_done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

static void pool_destroy(pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->has_work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->has_work);
  pthread_cond_destroy(&p->all_done);
}

/* ---- the DAG -------------------------------------------------------------- */

static int32_t *n_deps;    /* dependencies of each node */
static int32_t *pending;   /* dependencies not yet finished (atomic) */
static int64_t *succ_off;  /* CSR: successors of i are succ[succ_off[i] .. succ_off[i+1]) */
static int32_t *succ;
static int32_t *ran;       /* times each node ran */
static pool *the_pool;

/* Verification rep only: a global ticket order of starts and finishes. */
static int stamp;
static uint64_t ticket;
static uint64_t *start_ticket, *finish_ticket;

static long join_of_round(long r) { return r < 0 ? 0 : 1 + r * (FANOUT + 1) + FANOUT; }

static void build_dag(void) {
  n_deps = calloc((size_t)N, sizeof *n_deps);
  pending = calloc((size_t)N, sizeof *pending);
  ran = calloc((size_t)N, sizeof *ran);
  succ_off = calloc((size_t)N + 1, sizeof *succ_off);
  start_ticket = calloc((size_t)N, sizeof *start_ticket);
  finish_ticket = calloc((size_t)N, sizeof *finish_ticket);
  /* successor counts: the previous join -> 1000 fan-out nodes -> the join */
  long edges = 0;
  for (long r = 0; r < ROUNDS; r++) {
    long prev = join_of_round(r - 1), first = 1 + r * (FANOUT + 1);
    succ_off[prev + 1] += FANOUT;
    for (long k = 0; k < FANOUT; k++) succ_off[first + k + 1] = 1;
    n_deps[first + FANOUT] = FANOUT;
    for (long k = 0; k < FANOUT; k++) n_deps[first + k] = 1;
    edges += 2 * FANOUT;
  }
  for (long i = 0; i < N; i++) succ_off[i + 1] += succ_off[i];
  succ = malloc(sizeof *succ * (size_t)edges);
  if (!n_deps || !pending || !ran || !succ_off || !succ || !start_ticket || !finish_ticket) abort();
  for (long r = 0; r < ROUNDS; r++) {
    long prev = join_of_round(r - 1), first = 1 + r * (FANOUT + 1);
    for (long k = 0; k < FANOUT; k++) {
      succ[succ_off[prev] + k] = (int32_t)(first + k);
      succ[succ_off[first + k]] = (int32_t)(first + FANOUT);
    }
  }
}

/* Runs node i (an empty task) and releases the successors it completes. */
static void run_node(void *arg) {
  long i = (long)(intptr_t)arg;
  if (stamp) start_ticket[i] = __atomic_add_fetch(&ticket, 1, __ATOMIC_SEQ_CST);
  ran[i]++;
  if (stamp) finish_ticket[i] = __atomic_add_fetch(&ticket, 1, __ATOMIC_SEQ_CST);
  for (int64_t e = succ_off[i]; e < succ_off[i + 1]; e++) {
    int32_t s = succ[e];
    if (__atomic_sub_fetch(&pending[s], 1, __ATOMIC_ACQ_REL) == 0)
      pool_submit(the_pool, run_node, (void *)(intptr_t)s);
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One rep on a fresh pool; returns the timed seconds. */
static double run_dag(int workers) {
  pool p;
  pool_init(&p, workers);
  the_pool = &p;
  for (long i = 0; i < N; i++) ran[i] = 0;

  double t0 = now_s();
  for (long i = 0; i < N; i++) __atomic_store_n(&pending[i], n_deps[i], __ATOMIC_RELAXED);
  for (long i = 0; i < N; i++) /* the roots: here only node 0 */
    if (n_deps[i] == 0) pool_submit(&p, run_node, (void *)(intptr_t)i);
  pool_wait(&p);
  double t1 = now_s();

  pool_destroy(&p);
  for (long i = 0; i < N; i++)
    if (ran[i] != 1) {
      fprintf(stderr, "cpool_dag: FAILED: node %ld ran %d times\n", i, ran[i]);
      abort();
    }
  return t1 - t0;
}

static void check_order(void) {
  for (long i = 0; i < N; i++)
    for (int64_t e = succ_off[i]; e < succ_off[i + 1]; e++)
      if (start_ticket[succ[e]] <= finish_ticket[i]) {
        fprintf(stderr, "cpool_dag: FAILED: node %d started before its dependency %ld finished\n",
                succ[e], i);
        abort();
      }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s WORKERS REPS\n", argv[0]);
    return 2;
  }
  int workers = atoi(argv[1]), reps = atoi(argv[2]);
  if (workers < 1 || reps < 1 || reps > MAX_REPS) {
    fprintf(stderr, "cpool_dag: WORKERS >= 1, REPS in 1..%d\n", MAX_REPS);
    return 2;
  }
  build_dag();

  stamp = 1; /* untimed verification rep (also the warm-up) */
  run_dag(workers);
  check_order();
  stamp = 0;

  double secs[MAX_REPS];
  for (int r = 0; r < reps; r++) secs[r] = run_dag(workers);
  qsort(secs, (size_t)reps, sizeof(double), cmp_double);
  double med = secs[reps / 2];
  printf("RESULT cpool_dag_1e6_T%d ns_per_op=%.3f ops_per_s=%.0f (median of %d reps, min %.1f max %.1f ns; "
         "mutex+condvar FIFO pool, malloc per task, atomic dependency counters; root + %ld x "
         "(%ld-wide fan-out + join); fresh pool per rep)\n",
         workers, med / N * 1e9, N / med, reps, secs[0] / N * 1e9, secs[reps - 1] / N * 1e9,
         (long)ROUNDS, (long)FANOUT);
  return 0;
}
