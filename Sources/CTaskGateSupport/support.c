#define _GNU_SOURCE
#include "tgsupport.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int tgs_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns) {
  struct timespec ts, *tsp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tsp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
  return (r == -1 && errno == ETIMEDOUT) ? 1 : 0;
}

void tgs_futex_wake(uint32_t *addr, int n) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int64_t tgs_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int tgs_cpu_count(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static _Thread_local char last_error[512];

void tgs_set_last_error(const char *msg) {
  if (!msg) msg = "";
  size_t n = strlen(msg);
  if (n >= sizeof last_error) n = sizeof last_error - 1;
  memcpy(last_error, msg, n);
  last_error[n] = '\0';
}

void tgs_clear_last_error(void) { last_error[0] = '\0'; }

const char *tgs_last_error(void) { return last_error; }

#define TGS_HUGE ((size_t)2 << 20)

static size_t tgs_round(size_t bytes) {
  size_t unit = bytes >= TGS_HUGE ? TGS_HUGE : 4096;
  return (bytes + unit - 1) & ~(unit - 1);
}

void *tgs_map(size_t bytes, int huge) {
  size_t n = tgs_round(bytes);
  if (n < TGS_HUGE || !huge) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  /* Over-map by one huge page, then trim to a 2 MiB-aligned span. */
  char *raw = mmap(NULL, n + TGS_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *aligned = (char *)(((uintptr_t)raw + TGS_HUGE - 1) & ~(uintptr_t)(TGS_HUGE - 1));
  if (aligned > raw) munmap(raw, (size_t)(aligned - raw));
  size_t tail = (size_t)(raw + n + TGS_HUGE - (aligned + n));
  if (tail) munmap(aligned + n, tail);
#ifdef MADV_HUGEPAGE
  madvise(aligned, n, MADV_HUGEPAGE);
#endif
  return aligned;
}

void tgs_unmap(void *p, size_t bytes) {
  if (p) munmap(p, tgs_round(bytes));
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void tgs_populate(void *p, size_t bytes) {
  /* Never writes: another thread may already be filling these pages. On a
     kernel without MADV_POPULATE_WRITE (before 5.14) this fails and the
     pages are faulted by their first writer, as without it. */
  (void)madvise(p, tgs_round(bytes), MADV_POPULATE_WRITE);
}
