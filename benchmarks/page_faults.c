/*
 * page_faults: what first-touching fresh memory costs per 128-byte task
 * record, on 4 KiB pages and on transparent huge pages. The reason slab
 * chunks are huge-page mappings (Sources/TaskGateCore/README.md, Memory).
 *
 *   gcc -O2 -o page_faults benchmarks/page_faults.c && ./page_faults
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  const size_t n = (size_t)192 << 20, huge = (size_t)2 << 20, record = 128;
  for (int advise = 0; advise < 2; advise++) {
    for (int rep = 0; rep < 3; rep++) {
      char *raw = mmap(NULL, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw == MAP_FAILED) return 1;
      char *a = (char *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
      if (advise) madvise(a, n, MADV_HUGEPAGE);
      double t0 = now();
      for (size_t i = 0; i < n; i += record) a[i] = 1;
      printf("RESULT first_touch_%s ns_per_record=%.1f\n", advise ? "huge_pages" : "4k_pages",
             (now() - t0) / (double)(n / record) * 1e9);
      munmap(raw, n + huge);
    }
  }
  return 0;
}
