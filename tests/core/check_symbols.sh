#!/usr/bin/env bash
# Proves the core archive is freestanding: every symbol its objects
# reference but do not define must be in the platform contract's list
# (NUMAHEAP_CONTRACT_SYMBOLS in include/numaheap/platform_contract.h).
# Usage: check_symbols.sh libnumaheap_core.a platform_contract.h [nm]
# Prints each offending symbol (demangled) with the objects that use it and
# exits 1; exits 0 and prints the referenced contract symbols otherwise.
set -euo pipefail
archive=$1 contract=$2 nm=${3:-nm}
[ -f "$archive" ] || { echo "no archive: $archive" >&2; exit 2; }
allowed=$(sed -n 's/^#define NUMAHEAP_CONTRACT_SYMBOLS "\(.*\)"/\1/p' "$contract")
linker=$(sed -n 's/^#define NUMAHEAP_CONTRACT_LINKER_SYMBOLS "\(.*\)"/\1/p' "$contract")
[ -n "$allowed" ] || { echo "no NUMAHEAP_CONTRACT_SYMBOLS in $contract" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Defined anywhere in the archive (any type but U/w/v undefined kinds).
"$nm" --defined-only -g "$archive" 2>/dev/null | awk 'NF==3 {print $3}' | sort -u > "$tmp/defined"
# Undefined references, with the member that makes them ("obj: sym").
"$nm" -A -u "$archive" 2>/dev/null | awk '{print $NF "\t" $1}' | sed 's/:[^:]*$//' \
  | sort -u > "$tmp/undef"
tr ' ' '\n' <<<"$allowed $linker" | grep . | sort -u > "$tmp/allowed"
cut -f1 "$tmp/undef" | sort -u | comm -23 - "$tmp/defined" > "$tmp/external"
bad=$(comm -23 "$tmp/external" "$tmp/allowed" || true)
if [ -n "$bad" ]; then
  echo "core archive references symbols outside the platform contract:"
  while read -r sym; do
    objs=$(awk -F'\t' -v s="$sym" '$1==s {print $2}' "$tmp/undef" | sed 's|.*:||' | sort -u | tr '\n' ' ')
    printf '  %-40s %s  [%s]\n' "$sym" "$(c++filt "$sym")" "$objs"
  done <<<"$bad"
  echo "$(wc -l <<<"$bad") symbol(s) outside: $(tr '\n' ' ' < "$tmp/allowed")"
  exit 1
fi
echo "core archive: external symbols all in the contract: $(comm -12 "$tmp/external" "$tmp/allowed" | tr '\n' ' ')"
