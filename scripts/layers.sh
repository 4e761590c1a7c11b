#!/usr/bin/env bash
# Checks the layering of host/: a file may include headers of its own folder and of the
# folders below it (the order of LAYERS in the Makefile), never of one above; and no two
# files of a folder include each other. Prints each violation and a result line (it counts as
# one test in make test); exits 1 when there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
layers=(core model rt net vm sys bind svc app)
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && echo "$i" && return; done; echo 99; }
bad=0
for f in host/*/*.[ch]; do
  dir=$(basename "$(dirname "$f")"); r=$(rank "$dir")
  while read -r inc; do
    idir=${inc%%/*}; ir=$(rank "$idir")
    if [ "$ir" -gt "$r" ]; then echo "layers: $f ($dir) includes $inc, a layer above"; bad=1; fi
  done < <(grep -oE '#include "[a-z]+/[a-z_]+\.h"' "$f" | sed -E 's/#include "(.*)"/\1/')
done
# circles within a folder: a.c includes b.h and b.c includes a.h
for f in host/*/*.c; do
  dir=$(dirname "$f"); a=$(basename "$f" .c)
  for inc in $(grep -oE "#include \"$(basename "$dir")/[a-z_]+\.h\"" "$f" | sed -E 's/.*\/([a-z_]+)\.h"/\1/'); do
    [ "$inc" = "$a" ] && continue
    [ -f "$dir/$inc.c" ] && grep -q "#include \"$(basename "$dir")/$a.h\"" "$dir/$inc.c" &&
      { echo "layers: $dir/$a.c and $dir/$inc.c include each other"; bad=1; }
  done
done
if [ "$bad" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $bad
