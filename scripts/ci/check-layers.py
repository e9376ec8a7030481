#!/usr/bin/env python3
"""Checks that the library's modules import each other in layers, with no circles.

Reads src/**/*.rs (the library: src/main.rs is its own crate and only uses the library),
skips `#[cfg(test)]` items and the files of test-only modules, maps each file to its module
path, and collects every reference to another module of ours: `crate::...`, `super::...` and
`self::...` paths, child modules named by a bare path, and names brought in by `use`. A path
is resolved to the file that defines its longest module prefix, and through `pub use`
re-exports to the file that defines the item, so `crate::sink::http::HttpConfig` is an edge to
src/sink/http/config.rs, not to the mod.rs that re-exports it.

A parent naming its own child (re-exporting it, dispatching into it) is the module's
structure, not an import; everything else is, including a child's use of its parent.

It prints the import circles (strongly connected components) between top-level modules
(config, sink, slack, ...) and between files, each with the imports that close it, and the
imports made by a leaf module (which must import nothing of ours). Exits 1 if there is any.

    python3 scripts/ci/check-layers.py            # the check
    python3 scripts/ci/check-layers.py --layers   # also print the layers, bottom first
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# Leaf modules: they import nothing of ours, so anything may use them without a circle.
LEAVES = {"units", "fnv", "text", "doc"}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Blanks out comments, string and char literals, keeping line numbers and offsets."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif re.match(r'b?r#*"', text[i:i + 12]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not text[i - 1].isalnum())):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * m.end())
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_item(code, i):
    """Index just past the item starting at or after `i`: its `;` or its closing brace."""
    depth = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        elif c == "{" and depth == 0:
            braces = 0
            while i < n:
                if code[i] == "{":
                    braces += 1
                elif code[i] == "}":
                    braces -= 1
                    if braces == 0:
                        return i + 1
                i += 1
            return n
        i += 1
    return n


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
ATTR = re.compile(r"\s*#\[[^\]]*\]")


def remove_test_items(code):
    """Blanks `#[cfg(test)]` items; returns the code and the names of test-only `mod x;`."""
    test_mods = set()
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code, test_mods
        j = m.end()
        while True:
            a = ATTR.match(code, j)
            if not a:
                break
            j = a.end()
        decl = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", code[j:])
        if decl:
            test_mods.add(decl.group(1))
        end = skip_item(code, j)
        code = code[: m.start()] + re.sub(r"[^\n]", " ", code[m.start():end]) + code[end:]


def module_files():
    """Maps module path ("" for the crate root, "sink::http") to its file, minus test modules."""
    mods = {}
    pending = [("", SRC / "lib.rs")]
    while pending:
        path, file = pending.pop()
        code, test_mods = remove_test_items(strip(file.read_text()))
        mods[path] = (file, code)
        base = file.parent if file.name in ("lib.rs", "mod.rs") else file.with_suffix("")
        for m in re.finditer(r"(?:pub(?:\([^)]*\))?\s+)?\bmod\s+(" + IDENT + r")\s*;", code):
            name = m.group(1)
            if name in test_mods:
                continue
            for cand in (base / f"{name}.rs", base / name / "mod.rs"):
                if cand.exists():
                    pending.append((f"{path}::{name}" if path else name, cand))
                    break
    return mods


def expand_use(tree):
    """`a::{b, c::{d as e}}` -> [("a::b", "b"), ("a::c::d", "e")]; `self` in braces is the prefix."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))
    out = []

    def walk(prefix, t):
        parts, depth, cur = [], 0, ""
        for ch in t:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        for p in parts:
            if not p:
                continue
            b = p.find("{")
            if b >= 0:
                head = p[:b].rstrip(":")
                walk(f"{prefix}::{head}" if prefix and head else prefix or head, p[b + 1: p.rfind("}")])
                continue
            alias = None
            if "@" in p:
                p, alias = p.split("@", 1)
            if p == "self":
                full = prefix
            else:
                full = f"{prefix}::{p}" if prefix else p
            last = full.split("::")[-1]
            out.append((full, alias or last))

    walk("", tree)
    return out


def absolute(path, here, children, crate_names):
    """Makes a path absolute (crate::a::b, without `crate`), or None if it is not ours."""
    segs = path.split("::")
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("self", "super"):
        cur = here.split("::") if here else []
        while segs and segs[0] in ("self", "super"):
            if segs.pop(0) == "super":
                cur = cur[:-1]
        return cur + segs
    if segs[0] in children:
        return (here.split("::") if here else []) + segs
    if segs[0] in crate_names:
        return crate_names[segs[0]] + segs[1:]
    return None


def main():
    show_layers = "--layers" in sys.argv
    mods = module_files()
    children = defaultdict(set)
    for p in mods:
        if p:
            parent, _, name = p.rpartition("::")
            children[parent].add(name)

    # Per module: `use` entries (absolute path, line) and re-exports name -> absolute path.
    uses, reexports = {}, defaultdict(dict)
    for here, (file, code) in mods.items():
        entries = []
        for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", code):
            line = code.count("\n", 0, m.start()) + 1
            for full, name in expand_use(m.group(2)):
                ab = absolute(full, here, children[here], {})
                if ab is None:
                    continue
                entries.append((ab, name, line, m.group(1) is not None))
                if m.group(1) and name != "*":
                    reexports[here][name] = ab
        uses[here] = entries

    def resolve(ab, hops=0):
        """The module (file) defining the item at absolute path `ab`."""
        for k in range(len(ab), -1, -1):
            prefix = "::".join(ab[:k])
            if prefix in mods:
                rest = ab[k:]
                if rest and rest[0] in reexports[prefix] and hops < 8:
                    return resolve(reexports[prefix][rest[0]] + rest[1:], hops + 1)
                return prefix
        return None

    edges = defaultdict(dict)  # from module -> to module -> first "file:line"
    for here, (file, code) in mods.items():
        rel = file.relative_to(ROOT)

        def add(ab, line):
            to = resolve(ab)
            # A parent naming its own child (`mod x; pub use x::Item;`, dispatching into it)
            # is the module's structure, not an import: the child sits below its parent's
            # other children, and may use the types its parent shares with them.
            if to is None or to == here or to.rpartition("::")[0] == here:
                return
            edges[here].setdefault(to, f"{rel}:{line}")

        names = {}
        for ab, name, line, _ in uses[here]:
            if name == "*":
                add(ab + ["*"], line)
                continue
            names[name] = ab
            add(ab, line)
        # Paths in the code: crate::, self::, super::, child modules and names from `use`.
        for m in re.finditer(r"(?<![A-Za-z0-9_:])(" + IDENT + r")((?:::" + IDENT + r")+)", code):
            head, tail = m.group(1), m.group(2)
            before = code[max(0, m.start() - 200): m.start()]
            if re.search(r"\buse\s+[^;]*$", before):
                continue  # inside a `use` statement, counted above
            ab = absolute(head + tail, here, children[here], names)
            if ab is not None:
                add(ab, code.count("\n", 0, m.start()) + 1)

    failed = False

    def top(m):
        return m.split("::")[0] if m else "lib"

    def sccs(nodes, adj):
        index, low, stack, on, out = {}, {}, [], set(), []
        counter = [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in adj.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)

        sys.setrecursionlimit(10000)
        for v in sorted(nodes):
            if v not in index:
                visit(v)
        return out

    def report(title, nodes, adj, where, name):
        nonlocal failed
        circles = [sorted(c) for c in sccs(nodes, adj) if len(c) > 1]
        print(f"{title}: {len(circles)} import circle(s)")
        for comp in sorted(circles, key=len, reverse=True):
            failed = True
            members = set(comp)
            print(f"  circle through {len(comp)}: {', '.join(name(c) for c in comp)}")
            for a in comp:
                for b in sorted(adj.get(a, ())):
                    if b in members:
                        print(f"    {name(a)} -> {name(b)}  ({where[(a, b)]})")
        return circles

    def fname(m):
        return str(mods[m][0].relative_to(ROOT))

    where = {(a, b): w for a in edges for b, w in edges[a].items()}
    report("files", mods.keys(), {a: set(b) for a, b in edges.items()}, where, fname)

    tadj, twhere = defaultdict(set), {}
    for a in edges:
        for b, w in edges[a].items():
            ta, tb = top(a), top(b)
            if ta != tb:
                tadj[ta].add(tb)
                twhere.setdefault((ta, tb), w)
    report("top-level modules", {top(m) for m in mods}, tadj, twhere, lambda m: m)

    for leaf in sorted(LEAVES & mods.keys()):
        for b, w in sorted(edges.get(leaf, {}).items()):
            failed = True
            print(f"leaf module {leaf} imports {b or 'the crate root'} ({w}); a leaf imports nothing of ours")

    if show_layers:
        # Layer = length of the longest import chain below the module (0: imports nothing).
        level = {}

        def depth(m, seen=()):
            if m in level:
                return level[m]
            if m in seen:
                return 0
            level[m] = 1 + max((depth(b, seen + (m,)) for b in tadj.get(m, ())), default=-1)
            return level[m]

        # The crate root (lib.rs) declares every module: above them all by structure.
        for m in {top(x) for x in mods} - {"lib"}:
            depth(m)
        print("layers, bottom first:")
        for lv in sorted(set(level.values())):
            print(f"  {lv}: {', '.join(sorted(m for m in level if level[m] == lv))}")

    if failed:
        print("check-layers: FAILED: break each circle by moving what both sides need into a lower"
              " module (a leaf, if many need it); a leaf must not import anything of ours")
        return 1
    print("check-layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
