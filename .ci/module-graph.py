#!/usr/bin/env python3
"""module-graph.py - the import graph of src/, and what it must never have.

    .ci/module-graph.py [--print]

Reads every module of the library (src/**/*.rs, not main.rs or bin/), outside its tests and
comments, and records which other modules of the crate it names (`crate::a::b`, `super::x`). A
parent module always uses the children it declares. Fails (exit 1) when
  - two modules import each other, or any longer cycle exists (a child that uses its parent's
    own items counts: the parent declares the child), or
  - a library module imports the command line (`crate::cli`), or
  - a non-test file has more than MAX_LINES lines before its `#[cfg(test)]`.
--print also prints the edges between top-level folders and the largest files.
"""
import os
import re
import sys

MAX_LINES = 800
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def modules():
    """module path -> (crate paths it names, non-test line count, file)"""
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)[:-3]
            if rel in ("lib", "main") or rel.startswith("bin/"):
                continue
            name = re.sub(r"/mod$", "", rel).replace("/", "::")
            text = open(path).read()
            cut = text.find("#[cfg(test)]")
            code = text[:cut] if cut >= 0 else text
            lines = code.count("\n")
            code = "\n".join(l for l in code.split("\n") if not l.strip().startswith("//"))
            refs = set(re.findall(r"\bcrate::((?:[a-z0-9_]+::)*[a-z0-9_]+)", code))
            # `super::` from a/b.rs and from a/b/mod.rs both mean module a.
            parent = name.rsplit("::", 1)[0] if "::" in name else ""
            for r in re.findall(r"\bsuper::((?:[a-z0-9_]+::)*[A-Za-z0-9_]+)", code):
                refs.add(parent + "::" + r if parent else r)
            out[name] = (refs, lines, os.path.relpath(path, os.path.join(ROOT, "..")))
    return out


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    mods = modules()
    by_length = sorted(mods, key=len, reverse=True)

    def resolve(path):
        return next((n for n in by_length if path == n or path.startswith(n + "::")), None)

    edges = {m: set() for m in mods}
    for m, (refs, _, _) in mods.items():
        for r in refs:
            t = resolve(r)
            if t and t != m:
                edges[m].add(t)
        if "::" in m and m.rsplit("::", 1)[0] in edges:
            edges[m.rsplit("::", 1)[0]].add(m)
    bad = []
    for comp in cycles(edges):
        bad.append("import cycle: " + " <-> ".join(comp))
    for m in sorted(edges):
        if not m.startswith("cli") and any(t.split("::")[0] == "cli" for t in edges[m]):
            bad.append(f"library module {m} imports the command line (crate::cli)")
    for m, (_, lines, path) in sorted(mods.items()):
        if lines > MAX_LINES:
            bad.append(f"{path}: {lines} lines of non-test code (at most {MAX_LINES}): split it by job")
    if "--print" in sys.argv:
        top = {}
        for a, targets in edges.items():
            for b in targets:
                if a.split("::")[0] != b.split("::")[0]:
                    top.setdefault(a.split("::")[0], set()).add(b.split("::")[0])
        print(f"{len(mods)} modules, {sum(len(t) for t in edges.values())} edges")
        for a in sorted(top):
            print(f"  {a} -> {', '.join(sorted(top[a]))}")
        print("largest files (non-test lines):")
        for m in sorted(mods, key=lambda m: -mods[m][1])[:5]:
            print(f"  {mods[m][1]:5} {mods[m][2]}")
    for b in bad:
        print(b, file=sys.stderr)
    print(f"module graph: {len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
