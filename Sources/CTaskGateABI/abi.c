/* The error table's text, expanded from the header's TG_ERROR_TABLE so that
   codes, names and messages have one source. The tg_* exports themselves are
   the Swift thunks, which call these. */
#include "CTaskGateABI.h"
#include "tgplugin.h"

#include <stddef.h>

/* The engine's copy of tg_value must match the public one exactly. */
_Static_assert(sizeof(tg_value) == sizeof(tgs_value), "tg_value layout");
_Static_assert(offsetof(tg_value, as) == offsetof(tgs_value, as), "tg_value layout");
_Static_assert(offsetof(tg_value, as.bytes.len) == offsetof(tgs_value, as.bytes.len), "tg_value layout");

const char *tgabi_type_name(int type) {
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

const char *tgabi_error_message(int code) {
  switch (code) {
#define TG_MESSAGE_CASE_(name, code, msg) case code: return msg;
    TG_ERROR_TABLE(TG_MESSAGE_CASE_)
#undef TG_MESSAGE_CASE_
  }
  return "unknown error";
}

const char *tgabi_error_name(int code) {
  switch (code) {
#define TG_NAME_CASE_(name, code, msg) case code: return #name;
    TG_ERROR_TABLE(TG_NAME_CASE_)
#undef TG_NAME_CASE_
  }
  return "UNKNOWN";
}
