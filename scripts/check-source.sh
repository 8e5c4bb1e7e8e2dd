#!/usr/bin/env bash
# Source checks run as a test: every C file is formatted by .clang-format, and no banned
# call (strcpy, strcat, sprintf, vsprintf, gets, atoi, atol, atof) appears in src/.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files -co --exclude-standard -- 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/unit/*.h' 'fuzz/*.c' 2>/dev/null || find src tests/unit fuzz -name '*.[ch]')
for f in $files; do
  [ -f "$f" ] || continue
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run clang-format -i $f)"
    status=1
  fi
done
if grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atof)[[:space:]]*\(' $(echo "$files" | grep '^src/') ; then
  echo "banned calls above: use snprintf, mesh_buf_*, mesh_parse_*"
  status=1
fi
exit $status
