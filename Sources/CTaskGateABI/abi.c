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
