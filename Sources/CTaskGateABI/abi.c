/* The error table's text, expanded from the header's TG_ERROR_TABLE so that
   codes, names and messages have one source. The tg_* exports themselves are
   the Swift thunks, which call these. */
#include "CTaskGateABI.h"

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
