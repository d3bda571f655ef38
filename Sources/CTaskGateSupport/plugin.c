#define _GNU_SOURCE
#include "tgplugin.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---------------------------------------------------------------- */

const char *tgp_type_name(int type) {
  switch (type) {
  case TG_TYPE_I32: return "i32";
  case TG_TYPE_U32: return "u32";
  case TG_TYPE_I64: return "i64";
  case TG_TYPE_U64: return "u64";
  case TG_TYPE_DOUBLE: return "double";
  case TG_TYPE_BOOL: return "bool";
  case TG_TYPE_STRING: return "string";
  case TG_TYPE_BYTES: return "bytes";
  case TG_TYPE_FLOAT: return "float";
  case TG_TYPE_I8: return "i8";
  case TG_TYPE_U8: return "u8";
  case TG_TYPE_I16: return "i16";
  case TG_TYPE_U16: return "u16";
  }
  return "unknown";
}

/* ---- the call description ------------------------------------------------ */

static ffi_type *ffi_type_of(uint8_t t) {
  switch (t) {
  case TG_TYPE_I32: case TG_TYPE_BOOL: case TG_TYPE_I8: case TG_TYPE_U8:
  case TG_TYPE_I16: case TG_TYPE_U16:
    return &ffi_type_sint; /* default argument promotions: int */
  case TG_TYPE_U32: return &ffi_type_uint;
  case TG_TYPE_I64: return &ffi_type_sint64;
  case TG_TYPE_U64: return &ffi_type_uint64;
  case TG_TYPE_DOUBLE: case TG_TYPE_FLOAT: return &ffi_type_double; /* float promotes */
  case TG_TYPE_STRING: case TG_TYPE_BYTES: return &ffi_type_pointer;
  default: return NULL;
  }
}

int tgp_prepare(tgp_proc *proc) {
  uint32_t n = 0;
  proc->ffi_types[n++] = &ffi_type_pointer; /* tg_plugin_task * */
  for (uint32_t k = 0; k < proc->n_args; k++) {
    ffi_type *ft = ffi_type_of(proc->types[k]);
    if (!ft) return FFI_BAD_TYPEDEF;
    proc->ffi_types[n++] = ft;
    if (proc->types[k] == TG_TYPE_BYTES) proc->ffi_types[n++] = &ffi_type_uint64; /* size_t */
  }
  proc->n_slots = n - 1;
  return (int)ffi_prep_cif_var(&proc->cif, FFI_DEFAULT_ABI, 1, n, &ffi_type_sint, proc->ffi_types);
}

/* ---- the argument block ---------------------------------------------------- */

/* [proc][slots: n_slots x 8][strings, bytes]: 8 + 8 per C argument plus the
   copies. The avalues array is built on the stack at the call (n_slots + 1
   stores), which costs less than the page faults of keeping it here. */
typedef struct tgp_block {
  tgp_proc *proc;
  uint64_t slots[];
} tgp_block;

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

size_t tgp_block_size(const tgp_proc *proc, const tgs_value *values) {
  size_t n = sizeof(tgp_block) + proc->n_slots * 8;
  for (uint32_t k = 0; k < proc->n_args; k++) {
    if (proc->types[k] == TG_TYPE_STRING) n += round8(strlen(values[k].as.s) + 1);
    else if (proc->types[k] == TG_TYPE_BYTES) n += round8(values[k].as.bytes.len);
  }
  return n;
}

static int is_unsigned(int32_t t) {
  return t == TG_TYPE_U32 || t == TG_TYPE_U64 || t == TG_TYPE_U8 || t == TG_TYPE_U16;
}
static int is_integer(int32_t t) {
  return t == TG_TYPE_I32 || t == TG_TYPE_U32 || t == TG_TYPE_I64 || t == TG_TYPE_U64 || t == TG_TYPE_I8 ||
         t == TG_TYPE_U8 || t == TG_TYPE_I16 || t == TG_TYPE_U16 || t == TG_TYPE_BOOL;
}

void tgp_block_fill(tgp_proc *proc, const tgs_value *values, void *mem) {
  tgp_block *b = mem;
  b->proc = proc;
  uint64_t *slots = b->slots;
  char *tail = (char *)(slots + proc->n_slots);
  uint32_t s = 0;
  for (uint32_t k = 0; k < proc->n_args; k++) {
    const tgs_value *v = &values[k];
    void *slot = &slots[s++];
    switch (proc->types[k]) {
    case TG_TYPE_I32: case TG_TYPE_BOOL: case TG_TYPE_I8: case TG_TYPE_U8:
    case TG_TYPE_I16: case TG_TYPE_U16:
      *(int *)slot = is_unsigned(v->type) ? (int)v->as.u : (int)v->as.i;
      break;
    case TG_TYPE_U32:
      *(unsigned *)slot = is_unsigned(v->type) ? (unsigned)v->as.u : (unsigned)v->as.i;
      break;
    case TG_TYPE_I64: *(int64_t *)slot = v->as.i; break;
    case TG_TYPE_U64: *(uint64_t *)slot = v->as.u; break;
    case TG_TYPE_DOUBLE: case TG_TYPE_FLOAT: {
      double d = v->as.d;
      if (is_integer(v->type)) d = is_unsigned(v->type) ? (double)v->as.u : (double)v->as.i;
      if (proc->types[k] == TG_TYPE_FLOAT) d = (double)(float)d; /* what a float argument would carry */
      *(double *)slot = d;
      break;
    }
    case TG_TYPE_STRING: {
      size_t len = strlen(v->as.s);
      memcpy(tail, v->as.s, len + 1);
      *(const char **)slot = tail;
      tail += round8(len + 1);
      break;
    }
    case TG_TYPE_BYTES: {
      size_t len = v->as.bytes.len;
      if (len) memcpy(tail, v->as.bytes.data, len);
      *(const void **)slot = len ? tail : NULL;
      tail += round8(len);
      *(uint64_t *)&slots[s++] = (uint64_t)len;
      break;
    }
    }
  }
}

/* ---- host functions ---------------------------------------------------------- */

static int host_set_output(tg_plugin_task *task, const void *data, size_t len) {
  if (!task || (!data && len) || len > UINT32_MAX) return -1;
  tgs_task *t = task->host_private;
  void *copy = NULL;
  if (len) {
    copy = malloc(len);
    if (!copy) return -1;
    memcpy(copy, data, len);
  }
  free(t->output);
  t->output = copy;
  t->output_len = (uint32_t)len;
  return 0;
}

static int host_set_error(tg_plugin_task *task, const char *message) {
  if (!task) return -1;
  tgs_task *t = task->host_private;
  char *copy = message ? strdup(message) : NULL;
  if (message && !copy) return -1;
  free(t->error);
  t->error = copy;
  return 0;
}

static int host_cancelled(const tg_plugin_task *task) {
  if (!task) return 0;
  tgs_task *t = task->host_private;
  return (tgs_load_u32(&t->signals) & TGS_SIGNAL_CANCEL) != 0;
}

static int host_set_status_code(tg_plugin_task *task, int32_t code) {
  if (!task) return -1;
  tgs_task_policy *r = tgs_policy_of(task->host_private);
  if (r) r->status_code = code;
  return 0;
}

static int host_set_retry_after(tg_plugin_task *task, int64_t ms) {
  if (!task || ms < 0) return -1;
  tgs_task_policy *r = tgs_policy_of(task->host_private);
  /* At most a year: later instants on the policy clock must not overflow. */
  if (ms > 31536000000LL) ms = 31536000000LL;
  if (r) r->retry_after_ns = ms * 1000000;
  return 0;
}

static const tg_plugin_host host_table = {
  (uint32_t)sizeof(tg_plugin_host), TG_PLUGIN_ABI_MINOR, host_set_output, host_set_error, host_cancelled,
  host_set_status_code, host_set_retry_after,
};

const tg_plugin_host *tgp_host(void) { return &host_table; }

/* ---- the trampoline ------------------------------------------------------------ */

static int outcome_of(tgs_task *t, int rc) {
  if (tgs_load_u32(&t->signals) & TGS_SIGNAL_CANCEL) {
    uint32_t s;
    /* The canceller or the timer is publishing the end: a few stores away. */
    while ((s = tgs_load_u32(&t->state)) == TGS_STATE_FINALIZING) tgs_cpu_relax();
    if (s == TGS_STATE_TIMED_OUT) return TG_OUTCOME_TIMED_OUT;
    if (s == TGS_STATE_CANCELLED) return TG_OUTCOME_CANCELLED;
  }
  return rc == 0 ? TG_OUTCOME_SUCCEEDED : TG_OUTCOME_FAILED;
}

int tgp_trampoline(tgs_task *t, void *user) {
  tgp_block *b = user;
  tgp_proc *p = b->proc;
  tg_plugin_task pt;
  pt.struct_size = (uint32_t)sizeof pt;
  pt.attempt = t->attempts;
  pt.id = t->id;
  pt.payload = t->extra ? t->extra->payload : NULL;
  pt.payload_len = t->extra ? (size_t)t->extra->payload_len : 0;
  pt.worker = t->worker;
  pt.reserved = 0;
  pt.plugin_state = p->plugin->state;
  pt.task_state = NULL;
  pt.host = &host_table;
  pt.host_private = t;
  tgs_task_policy *r = tgs_policy_of(t);
  pt.credential = r ? r->cred_key : NULL;
  pt.credential_base_url = r ? r->cred_base_url : NULL;
  pt.credential_model = r ? r->cred_model : NULL;
  tg_plugin_task *ptp = &pt;
  void *avalues[1 + 2 * TG_PLUGIN_MAX_ARGS];
  avalues[0] = &ptp;
  for (uint32_t k = 0; k < p->n_slots; k++) avalues[1 + k] = &b->slots[k];

  int rc = 0;
  if (p->setup) {
    rc = p->setup(&pt);
    if (rc != 0 && !t->error) host_set_error(&pt, "setup failed");
  }
  if (rc == 0) {
    ffi_arg r = 0;
    ffi_call(&p->cif, FFI_FN(p->entry), &r, avalues);
    rc = (int)r;
  }
  if (p->cleanup) p->cleanup(&pt, outcome_of(t, rc));
  /* Retry and permanent are told apart; any other failure is plain failed. */
  return rc == 0 ? 0 : (rc == TG_PLUGIN_RETRY || rc == TG_PLUGIN_PERMANENT) ? rc : 1;
}

int tgp_call_fallback(tgs_task *t, tgp_proc *fallback) {
  tgp_block *b = t->user;
  /* The slots point into the original block (strings, bytes), which stays. */
  size_t n = fallback->n_slots;
  uint64_t mem[1 + 2 * TG_PLUGIN_MAX_ARGS];
  tgp_block *copy = (tgp_block *)(void *)mem;
  copy->proc = fallback;
  memcpy(copy->slots, b->slots, n * sizeof(uint64_t));
  return tgp_trampoline(t, copy);
}

int tgp_call_recover(tgp_plugin *plugin, int worker) {
  if (!plugin || !plugin->recover) return -1;
  return ((tg_plugin_recover_fn)plugin->recover)(plugin->state, worker);
}

/* ---- dynamic loading ------------------------------------------------------------- */

void *tgp_symbol(void *handle, const char *name, int *kind) {
  dlerror();
  void *p = dlsym(handle, name);
  if (!p) return NULL;
  *kind = 3;
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  if (dladdr1(p, &info, (void **)&sym, RTLD_DL_SYMENT) && sym) {
    int type = ELF64_ST_TYPE(sym->st_info);
    if (type == STT_OBJECT) *kind = 1;
    else if (type == STT_FUNC || type == STT_GNU_IFUNC) *kind = 2;
  }
  return p;
}

const char *tgp_dlerror(void) {
  const char *e = dlerror();
  return e ? e : "";
}

int tgp_call_init(void *fn, void **state, char *error, size_t cap) {
  return ((tg_plugin_init_fn)fn)(&host_table, state, error, cap);
}

void tgp_call_shutdown(void *fn, void *state) { ((tg_plugin_shutdown_fn)fn)(state); }
