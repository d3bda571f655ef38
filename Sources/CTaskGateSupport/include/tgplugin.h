/*
 * tgplugin.h: the C half of the plugin host.
 *
 * The Swift host (TaskGateCore/Plugins) opens plugins, checks descriptors and
 * keeps the registry. What has to be C lives here: the libffi call description
 * (libffi's ffi_type globals are mutable C globals, which Swift 6 rejects as
 * not concurrency-safe), the trampoline the engine calls as a plugin task's
 * processor, the per-task argument block, and the host function table handed
 * to plugins.
 */
#ifndef TGPLUGIN_H
#define TGPLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <ffi.h>

#include "../../../include/taskgate_plugin.h"
#include "tgsupport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Same layout as the public tg_value (checked in CTaskGateABI/abi.c). */
typedef struct tgs_value {
  int32_t type;
  uint32_t reserved;
  union {
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
    struct {
      const void *data;
      size_t len;
    } bytes;
  } as;
} tgs_value;

#define TGP_PLUGIN_MAGIC 0x7467706c7567696eull /* "tgplugin" */
#define TGP_PROC_MAGIC 0x7467707270726f63ull   /* "tgprproc" */
#define TGP_DEAD 0xdeaddeaddeaddeadull

/* One loaded plugin: the fields the hot path and unload race on. */
typedef struct tgp_plugin {
  uint64_t magic;    /* TGP_PLUGIN_MAGIC while loaded, TGP_DEAD after */
  void *state;       /* what the plugin's init stored */
  void *owner;       /* the Swift object (unretained) */
  void *registry;    /* the registry it is loaded in: identity only */
  void *recover;     /* the plugin's tg_plugin_recover_fn, or NULL */
  uint32_t recovering; /* atomic: workers inside (or about to call) recover */
  uint32_t pad;
} tgp_plugin;

/* One processor, with its prepared libffi call description. */
typedef struct tgp_proc {
  uint64_t magic;    /* TGP_PROC_MAGIC while loaded, TGP_DEAD after */
  tgp_plugin *plugin;
  void *entry;
  tg_plugin_setup_fn setup;
  tg_plugin_cleanup_fn cleanup;
  uint32_t n_args;   /* declared arguments */
  uint32_t n_slots;  /* variadic C arguments (bytes take two) */
  uint8_t types[TG_PLUGIN_MAX_ARGS];
  void *owner;       /* the Swift object (unretained) */
  ffi_cif cif;
  ffi_type *ffi_types[1 + 2 * TG_PLUGIN_MAX_ARGS];
} tgp_proc;

static inline uint8_t tgp_type_at(const tgp_proc *proc, long k) { return proc->types[k]; }

/* "i32", "double", ... for a TG_TYPE_*; "unknown" otherwise. Static text:
   the one table behind tg_type_name() and the engine's messages. */
const char *tgp_type_name(int type);

/* Fills proc->ffi_types and n_slots from types/n_args and prepares the
   variadic call description (1 fixed argument). Returns FFI_OK (0) or the
   libffi status. */
int tgp_prepare(tgp_proc *proc);

/* Bytes needed for the argument block of a call with these (already checked)
   values, and the block's construction in `mem` (8-byte aligned, that size). */
size_t tgp_block_size(const tgp_proc *proc, const tgs_value *values);
void tgp_block_fill(tgp_proc *proc, const tgs_value *values, void *mem);

/* The engine's processor for plugin tasks: record->user is the block. */
int tgp_trampoline(tgs_task *t, void *block);

/* Runs the task with `fallback` in place of its own processor (the same
   signature; the argument block is reused). */
int tgp_call_fallback(tgs_task *t, tgp_proc *fallback);
/* Calls a plugin's recover hook for `worker`; -1 when it has none. */
int tgp_call_recover(tgp_plugin *plugin, int worker);

/* The plugin a plugin task's record belongs to. */
static inline tgp_plugin *tgp_task_plugin(const tgs_task *t) { return (*(tgp_proc *const *)t->user)->plugin; }

/* The host function table handed to every plugin. */
const tg_plugin_host *tgp_host(void);

/* dlsym that also says whether the symbol is data (1), code (2) or other (3);
   NULL when absent. */
void *tgp_symbol(void *handle, const char *name, int *kind);
/* Last dlerror() text, or "" . */
const char *tgp_dlerror(void);
/* Calls the plugin's hooks. */
int tgp_call_init(void *fn, void **state, char *error, size_t cap);
void tgp_call_shutdown(void *fn, void *state);

#ifdef __cplusplus
}
#endif
#endif
