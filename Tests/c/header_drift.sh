#!/usr/bin/env bash
# Fails when include/taskgate.h and the library's @_cdecl exports disagree.
#
# The Swift compiler writes its own C declarations of the @_cdecl functions
# (-emit-clang-header-path; they sit inside #if defined(__OBJC__)). We extract
# them and compile them in one translation unit after the hand-written header:
# a function whose parameter or return types differ is a "conflicting types"
# error. Names are compared both ways: every tg_ function the header declares
# must be exported, and every export must be declared.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${BUILD:-build}/drift
mkdir -p "$out"

swift build --target TaskGate >/dev/null
bin=$(swift build --show-bin-path)
swiftc -typecheck -parse-as-library -module-name TaskGate \
  -I "$bin/Modules" \
  -Xcc -fmodule-map-file="$bin/CTaskGateABI.build/module.modulemap" \
  -Xcc -fmodule-map-file="$bin/CTaskGateSupport.build/module.modulemap" \
  -emit-clang-header-path "$out/generated.h" Sources/TaskGate/*.swift

grep -E '^SWIFT_EXTERN .*\btg_[a-z0-9_]+\(' "$out/generated.h" > "$out/decls.h"
{
  echo '#include "taskgate.h"'
  echo '#define SWIFT_EXTERN extern'
  echo '#define SWIFT_NOEXCEPT'
  echo '#define SWIFT_WARN_UNUSED_RESULT'
  echo '#define _Nullable'
  echo '#define _Nonnull'
  echo 'typedef long NSInteger;'
  echo 'typedef unsigned long NSUInteger;'
  cat "$out/decls.h"
} > "$out/both.c"

status=0
if ! ${CC:-cc} -std=c99 -Wall -Wextra -Werror -fsyntax-only -Iinclude "$out/both.c"; then
  echo "header drift: types differ between include/taskgate.h and the @_cdecl exports (see above)"
  status=1
fi
declared=$(grep -oE '\btg_[a-z0-9_]+[[:space:]]*\(' include/taskgate.h | tr -d '( \t' | grep -v '^tg_processor_fn$' | sort -u)
exported=$(grep -oE '\btg_[a-z0-9_]+\(' "$out/decls.h" | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
if [ -n "$missing" ]; then echo "header drift: declared in taskgate.h but not exported: $missing"; status=1; fi
if [ -n "$extra" ]; then echo "header drift: exported but not declared in taskgate.h: $extra"; status=1; fi
n=$(echo "$exported" | wc -l)
if [ $status -eq 0 ]; then echo "header drift: $n functions agree in names and types"; fi
exit $status
