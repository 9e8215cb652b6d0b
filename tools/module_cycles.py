#!/usr/bin/env python3
"""Finds cycles between the top-level modules of each crate (a module is a file under `src/` or
a directory with its `mod.rs`; its own submodules belong to it).

An edge `a -> b` is a path in module `a` that names module `b` (`crate::b::...`), or an item the
crate root re-exports from `b` (`crate::Item` where `lib.rs` has `pub use b::Item`). Items
defined in the crate root itself are the crate's shared vocabulary and make no edge. Exits 1
and prints each cycle when there is one. Usage: tools/module_cycles.py [crates/NAME ...]
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def strip(text):
    """The code without comments and string literals (paths inside them are not references)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def top_modules(src):
    """name -> files of each top-level module of a crate's src directory."""
    mods = {}
    for path in src.iterdir():
        if path.name in ("lib.rs", "main.rs"):
            continue
        if path.suffix == ".rs":
            mods.setdefault(path.stem, []).append(path)
        elif path.is_dir():
            mods.setdefault(path.name, []).extend(sorted(path.rglob("*.rs")))
    return mods


def use_groups(text, prefix):
    """First names after `prefix` in use trees: `use crate::{a, b::c}` gives a and b."""
    names = []
    for m in re.finditer(r"\buse\s+" + prefix + r"::\{", text):
        depth, i, item = 1, m.end(), ""
        while i < len(text) and depth:
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if depth == 1 and ch == ",":
                names.append(item)
                item = ""
            elif depth >= 1 and not (depth == 1 and ch == "{"):
                item += ch
            i += 1
        names.append(item)
    return [re.match(r"\s*(\w+)", n).group(1) for n in names if re.match(r"\s*(\w+)", n)]


def crate_graph(crate):
    src = crate / "src"
    root_file = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    root = strip(root_file.read_text())
    mods = top_modules(src)
    # Items the root re-exports from a module: `pub use module::{A, B}` / `pub use module::A`.
    exported = {}
    for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+(\w+)::(\{[^;]*\}|[\w:]+)\s*;", root):
        module, items = m.group(1), m.group(2)
        if module not in mods:
            continue
        for item in re.findall(r"(\w+)(?:\s+as\s+(\w+))?", items.strip("{}")):
            exported[item[1] or item[0].split("::")[-1]] = module
    graph = {name: set() for name in mods}
    for name, files in mods.items():
        for f in files:
            text = strip(f.read_text())
            refs = re.findall(r"\bcrate::(\w+)", text) + use_groups(text, "crate")
            # `super::` in a top-level module's own file is the crate root.
            if f.parent == src or f.name == "mod.rs" and f.parent.parent == src:
                refs += re.findall(r"\bsuper::(\w+)", text) + use_groups(text, "super")
            for ref in refs:
                target = ref if ref in mods else exported.get(ref)
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    crates = [ROOT / c for c in sys.argv[1:]] or sorted(p for p in (ROOT / "crates").iterdir() if (p / "src").is_dir())
    found = False
    for crate in crates:
        graph = crate_graph(crate)
        for comp in cycles(graph):
            found = True
            edges = ", ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp)
            print(f"{crate.name}: cycle among {', '.join(comp)}: {edges}")
    if found:
        sys.exit(1)
    print(f"no cycles between modules in {len(crates)} crates")


if __name__ == "__main__":
    main()
