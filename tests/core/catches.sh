#!/usr/bin/env bash
# The symbol check must catch a core that reaches outside the contract: a
# copy of the archive with one extra object calling malloc and operator new
# has to fail, naming both.
set -euo pipefail
archive=$1 contract=$2 cxx=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/leak.cc" <<'CC'
#include <cstdlib>
void* numaheap_test_leak(unsigned long n) { return n ? std::malloc(n) : new int(1); }
CC
"$cxx" -O1 -c "$work/leak.cc" -o "$work/leak.o"
cp "$archive" "$work/core.a"
ar rs "$work/core.a" "$work/leak.o" 2>/dev/null
if out=$(bash "$here/check_symbols.sh" "$work/core.a" "$contract"); then
  echo "check_symbols.sh passed an archive that calls malloc and operator new" >&2
  exit 1
fi
grep -q '^  malloc ' <<<"$out" && grep -q 'operator new' <<<"$out" || {
  echo "check_symbols.sh failed without naming malloc and operator new:" >&2
  echo "$out" >&2
  exit 1
}
echo "core.symbols_catches: ok"
