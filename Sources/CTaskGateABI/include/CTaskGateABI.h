/* The public header, for the Swift thunks, plus the private layout of the
   handle structs that users see as opaque. */
#ifndef CTASKGATEABI_H
#define CTASKGATEABI_H
#include "../../../include/taskgate.h"

/* What a tg_pool * points to: a magic number, checked on every call, and the
   engine object. */
struct tg_pool {
  uint64_t magic;
  void *engine;
};
#define TG_POOL_MAGIC 0x7467706f6f6c2121ull /* "tgpool!!" */
#define TG_POOL_DEAD 0xdeaddeaddeaddeadull

/* A tg_task_ctx * is the engine's task record itself. */
struct tg_task_ctx {
  char opaque;
};

/* A tg_plugin * is the engine's tgp_plugin record, a tg_processor * its
   tgp_proc record (each starts with a magic number). */
struct tg_plugin {
  char opaque;
};
struct tg_processor {
  char opaque;
};

/* Handles of 0.4: a magic number and the Swift object (retained by the
   handle for clocks; by the pool for policies and credential rings, which
   the pool frees with itself). */
struct tg_clock {
  uint64_t magic;
  void *engine;
};
struct tg_policy {
  uint64_t magic;
  void *engine;
};
struct tg_credentials {
  uint64_t magic;
  void *engine;
};
/* A file lock handle of 0.5: the magic number and the retained FileLock. */
struct tg_lock {
  uint64_t magic;
  void *engine;
};
#define TG_LOCK_MAGIC 0x74676c6f636b2131ull /* "tglock!1" */
#define TG_CLOCK_MAGIC 0x7467636c6f636b21ull  /* "tgclock!" */
#define TG_POLICY_MAGIC 0x7467706f6c637921ull /* "tgpolcy!" */
#define TG_CREDS_MAGIC 0x746763726564732bull  /* "tgcreds+" */

/* From the header's error table (abi.c). */
const char *tgabi_error_message(int code);
const char *tgabi_error_name(int code);
#endif
