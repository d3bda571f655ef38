#!/usr/bin/env bash
# Checks the release libtaskgate.so as users receive it: it exports only tg_*
# symbols (no mangled Swift names), its SONAME carries the major version, and
# it needs no Swift runtime library (the runtime is linked in statically).
set -euo pipefail
lib=${1:?usage: check_library.sh path/to/libtaskgate.so}
major=$(sed -n 's/^#define TG_VERSION_MAJOR \([0-9]*\)/\1/p' "$(dirname "$0")/../../include/taskgate.h")
fail=0
others=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Za-z]$/ && $3 !~ /^tg_/ && $2 != "A" {print $3}')
if [ -n "$others" ]; then echo "library: exports symbols other than tg_*: $(echo $others | head -c 300)"; fail=1; fi
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libtaskgate.so.$major" ]; then echo "library: SONAME is '$soname', expected libtaskgate.so.$major"; fail=1; fi
swiftlibs=$(readelf -d "$lib" | grep NEEDED | grep -i swift || true)
if [ -n "$swiftlibs" ]; then echo "library: needs Swift runtime libraries: $swiftlibs"; fail=1; fi
n=$(nm -D --defined-only "$lib" | awk '$3 ~ /^tg_/' | wc -l)
[ $fail -eq 0 ] && echo "library: $n tg_* exports only, SONAME $soname, no Swift runtime needed"
exit $fail
