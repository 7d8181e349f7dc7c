#!/usr/bin/env python3
"""API parity check: every public C++ entry point in include/numaheap/*.h
(free functions and public methods, by Class::method; overloads count
once) must have a row in docs/api-parity.md naming its C counterpart or
saying why it has none ("host convenience: ..."). Fails naming the
missing ones.

  parity.py [--headers DIR] [--doc FILE]   check (exit 1 on missing rows)
  parity.py --list [--headers DIR]         print the entry points
  parity.py --self-test                    a header with an extra function
                                           and method must be caught

A small declaration parser, not a compiler: it tracks namespaces, classes
and their access sections, skips bodies, enums and the `detail`
namespace, and takes the identifier before a declaration's first
top-level parenthesis. Constructors, destructors, operators, deleted
functions and function-pointer members are not entry points.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
C_HEADER = re.compile(r"^(numaheap.*|platform_contract)\.h$")
NOT_NAMES = {"void", "bool", "int", "char", "unsigned", "long", "double", "auto", "return",
             "sizeof", "alignof", "decltype", "noexcept", "static_assert", "if", "for", "while",
             "switch", "requires", "alignas", "explicit", "operator", "template"}


def strip(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    # Preprocessor lines, including continued macro definitions.
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    # The export markers (include/numaheap/export.h) are not declarations.
    text = re.sub(r"\bNUMAHEAP_(PUBLIC_BEGIN|PUBLIC_END|INTERNAL)\b", " ", text)
    return text


def function_name(stmt):
    """The declared function's name, or None."""
    s = " ".join(stmt.split())
    if not s or "= delete" in s or s.startswith(("using ", "friend ", "typedef ", "static_assert")):
        return None
    s = re.sub(r"^template\s*<.*?>\s*(?=[A-Za-z])", "", s)  # template header (no nested <> needed)
    depth = 0
    for i, ch in enumerate(s):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "(" and depth == 0:
            head = s[:i].rstrip()
            if re.search(r"operator\s*\S*$", head):
                return None
            m = re.search(r"([A-Za-z_~][A-Za-z0-9_]*)$", head)
            if not m:
                return None
            name = m.group(1)
            before = head[: m.start()].strip()
            if name in NOT_NAMES or name.startswith("~") or not before:
                return None  # constructor-like, a call, or a function-pointer member
            if s[i + 1 :].lstrip().startswith("*"):
                return None
            if "=" in before:  # a member initialised by a call
                return None
            if before.endswith(("=", ",", "(", "return", "&&", "||")):
                return None
            return name
    return None


def entry_points(path):
    text = strip(open(path, encoding="utf-8").read())
    found = set()
    stack = []  # ("ns", name) | ("class", name, access) | ("skip",)
    stmt = ""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "{;}":
            top = stack[-1] if stack else ("ns", "")
            head = " ".join(stmt.split())
            if ch == "{":
                m_ns = re.match(r"^(inline\s+)?namespace\s*([A-Za-z0-9_:]*)\s*$", head)
                m_cls = re.match(r"^(?:template\s*<.*>\s*)?(class|struct|union)\s+(?:\[\[[^\]]*\]\]\s*)?([A-Za-z_][A-Za-z0-9_]*)[^()]*$", head)
                if top[0] == "skip":
                    stack.append(("skip",))
                elif m_ns:
                    stack.append(("ns", m_ns.group(2)))
                elif m_cls:
                    stack.append(("class", m_cls.group(2), "private" if m_cls.group(1) == "class" else "public"))
                elif re.match(r"^(enum|typedef|extern\s+\"C\")", head) or head.endswith("="):
                    stack.append(("skip",))
                else:
                    record(found, stack, head)
                    stack.append(("skip",))
            elif ch == ";":
                if top[0] != "skip":
                    record(found, stack, head)
            else:  # "}"
                if stack:
                    stack.pop()
            stmt = ""
        elif ch == ":" and stack and stack[-1][0] == "class" and re.match(r"^\s*(public|private|protected)\s*$", stmt):
            stack[-1] = ("class", stack[-1][1], stmt.strip())
            stmt = ""
        elif ch == "(":
            # Keep parenthesised text (default arguments may hold braces).
            depth, j = 0, i
            while j < n:
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            stmt += text[i : j + 1]
            i = j
        else:
            stmt += ch
        i += 1
    return found


def record(found, stack, head):
    if any(s[0] == "ns" and s[1] in ("detail",) for s in stack):
        return
    classes = [s for s in stack if s[0] == "class"]
    if any(s[0] == "skip" for s in stack):
        return
    if classes and any(c[2] != "public" for c in classes):
        return
    if re.search(r"\)\s*:", head):  # constructor with an initializer list
        return
    name = function_name(head)
    if not name:
        return
    if classes:
        if name == classes[-1][1]:
            return
        found.add("::".join(c[1] for c in classes) + "::" + name)
    else:
        found.add(name)


def all_entry_points(headers):
    out = {}
    for f in sorted(os.listdir(headers)):
        if not f.endswith(".h") or C_HEADER.match(f):
            continue
        for e in entry_points(os.path.join(headers, f)):
            out.setdefault(e, f)
    return out


def rows(doc):
    have = set()
    for line in open(doc, encoding="utf-8"):
        m = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
        if m:
            have.add(m.group(1).strip())
    return have


def unmarked_headers(headers):
    """Public headers without the export markers: their declarations would
    be hidden in libnumaheap.so (include/numaheap/export.h)."""
    out = []
    for f in sorted(os.listdir(headers)):
        if f.endswith(".h") and f != "export.h":
            if "NUMAHEAP_PUBLIC_BEGIN" not in open(os.path.join(headers, f), encoding="utf-8").read():
                out.append(f)
    return out


def check(headers, doc):
    unmarked = unmarked_headers(headers)
    for f in unmarked:
        print(f"api.parity: {f} does not bracket its declarations with NUMAHEAP_PUBLIC_BEGIN/END "
              "(include/numaheap/export.h): the shared library would not export them")
    if unmarked:
        return 1
    eps = all_entry_points(headers)
    have = rows(doc)
    missing = sorted(e for e in eps if e not in have)
    for e in missing:
        print(f"api.parity: no row in {os.path.relpath(doc, ROOT)} for `{e}` ({eps[e]})")
    if missing:
        return 1
    # Every row names an entry point that exists: a stale row is a doc
    # defect, and a parser that sees nothing (a new macro it cannot read)
    # would otherwise pass with every row stale.
    stale = sorted(r for r in have if r not in eps)
    for r in stale[:20]:
        print(f"api.parity: row `{r}` in {os.path.relpath(doc, ROOT)} names no C++ entry point in the headers")
    if stale or not eps:
        return 1
    print(f"api.parity: ok ({len(eps)} C++ entry points, each with a row)")
    return 0


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        hdrs = os.path.join(tmp, "numaheap")
        shutil.copytree(os.path.join(ROOT, "include", "numaheap"), hdrs)
        with open(os.path.join(hdrs, "parity_probe.h"), "w") as f:
            f.write("#pragma once\n#include \"numaheap/export.h\"\nNUMAHEAP_PUBLIC_BEGIN\nnamespace numaheap {\n"
                    "// an extra function nobody gave a C counterpart\n"
                    "int parity_probe_extra(int x) noexcept;\n"
                    "class ParityProbe {\n public:\n  Status probe_method(const AllocRequest& r = {}) const;\n"
                    " private:\n  struct NUMAHEAP_INTERNAL Impl;\n  void hidden();\n};\n}  // namespace numaheap\nNUMAHEAP_PUBLIC_END\n")
        with open(os.path.join(hdrs, "unmarked_probe.h"), "w") as f:
            f.write("#pragma once\nnamespace numaheap {\n}  // namespace numaheap\n")
        doc = os.path.join(ROOT, "docs", "api-parity.md")
        unmarked = subprocess.run([sys.executable, __file__, "--headers", hdrs, "--doc", doc],
                                  capture_output=True, text=True)
        os.remove(os.path.join(hdrs, "unmarked_probe.h"))
        out = subprocess.run([sys.executable, __file__, "--headers", hdrs, "--doc", doc],
                             capture_output=True, text=True)
        ok = (unmarked.returncode == 1 and "unmarked_probe.h" in unmarked.stdout
              and out.returncode == 1 and "`parity_probe_extra`" in out.stdout
              and "`ParityProbe::probe_method`" in out.stdout and "hidden" not in out.stdout)
        print(out.stdout.strip())
        print("api.parity_catches:", "ok" if ok else "FAILED (the extra entry points were not caught)")
        return 0 if ok else 1


def main(argv):
    headers = os.path.join(ROOT, "include", "numaheap")
    doc = os.path.join(ROOT, "docs", "api-parity.md")
    if "--headers" in argv:
        headers = argv[argv.index("--headers") + 1]
    if "--doc" in argv:
        doc = argv[argv.index("--doc") + 1]
    if "--self-test" in argv:
        return self_test()
    if "--list" in argv:
        for e, f in sorted(all_entry_points(headers).items(), key=lambda x: (x[1], x[0])):
            print(f"{f}\t{e}")
        return 0
    return check(headers, doc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
