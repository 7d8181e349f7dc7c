#!/usr/bin/env bash
# The man page (docs/man/numaheap.1, built into build/man/) stays in step
# with the command: every option `numaheap SUBCOMMAND --help` lists appears
# in it, it carries the version --version prints, and groff renders it
# without warnings where groff is installed.
set -euo pipefail
bin=$1/numaheap
page=$1/../man/numaheap.1
fail=0
[ -f "$page" ] || { echo "FAIL: $page not built (target numaheap-man)"; exit 1; }
# roff escapes '-' as '\-': compare on the unescaped text.
text=$(sed 's/\\-/-/g' "$page")
for sub in "" topology place sim stat; do
  # shellcheck disable=SC2086
  for opt in $("$bin" $sub --help | grep -oE -- '(^|[ ,])--?[a-zA-Z][-a-zA-Z]*' | sed 's/^[ ,]//' | sort -u); do
    [ "$opt" = "-h" ] || [ "$opt" = "--help" ] && continue
    grep -qF -- "$opt" <<<"$text" || { echo "FAIL: ${sub:-numaheap} option $opt is not in the man page"; fail=1; }
  done
done
version=$("$bin" --version | awk '{print $2}')
grep -q "numaheap $version" "$page" || { echo "FAIL: man page lacks version $version"; fail=1; }
grep -qF '@NUMAHEAP_VERSION@' "$page" && { echo "FAIL: version not filled in"; fail=1; }
for code in 0 1 2 3; do
  grep -qE "^\.B $code\$" "$page" || { echo "FAIL: exit status $code not documented"; fail=1; }
done
if command -v groff >/dev/null; then
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || true)
  [ -z "$warnings" ] || { echo "FAIL: groff warnings: $warnings"; fail=1; }
fi
[ $fail -eq 0 ] && echo "ok man page"
exit $fail
