#!/usr/bin/env python3
"""Fails when a module of blurgate imports one above it, or modules import each other in a loop.

Layers, top to bottom (a module may use those below it and, without loops, those beside it):

  cli                                   the command line (binary: src/cli/)
  jobs                                  redact, find, enrol, calibrate over an Engine
  report, audit, sheet                  the records a run leaves
  media, detect, embed, matching,       the stages
  register, redact, track, badge
  storage, digest, models               foundations
  error                                 (depends on nothing in blurgate)

Edges are read from the source: `use crate::a::b`, `crate::a::b::` paths, `super::` (resolved
against the file's place), and `blurgate::a` in the binary. Loops are looked for between
top-level modules and between the sibling files of each module folder.

    python3 scripts/check_layers.py [SRC_DIR]     # default: src/ beside this script
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

LAYERS = {
    "cli": 5,
    "jobs": 4,
    "report": 3, "audit": 3, "sheet": 3,
    "media": 2, "detect": 2, "embed": 2, "matching": 2, "register": 2, "redact": 2, "track": 2, "badge": 2,
    "storage": 1, "digest": 1, "models": 1,
    "error": 0,
}

PATH = re.compile(r"\b(crate|super|blurgate)((?:::\w+)+|::\{)")


def module_of(src: Path, file: Path) -> list[str]:
    """The module path of a file: src/jobs/redact.rs -> [jobs, redact], src/jobs/mod.rs -> [jobs]."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def targets(src: Path, file: Path, text: str) -> set[tuple[str, ...]]:
    """Module paths a file refers to (the first two components)."""
    here = module_of(src, file)
    # A file that is a module folder's mod.rs resolves `super` from the folder itself.
    is_folder = file.name == "mod.rs"
    found = set()
    text = re.sub(r"//.*", "", text)
    # Expand `use x::{a, b::c}` groups one level deep.
    for m in re.finditer(r"\buse\s+(crate|super|blurgate)((?:::\w+)*)::\{([^;]*)\};", text, re.S):
        root, prefix, inner = m.group(1), m.group(2), m.group(3)
        for item in re.split(r",\s*", inner):
            item = item.strip().split(" as ")[0]
            if item and item != "self":
                found.add(resolve(root, (prefix + "::" + re.sub(r"::\{.*", "", item, flags=re.S)).strip(":").split("::"), here, is_folder))
            elif item == "self":
                found.add(resolve(root, prefix.strip(":").split("::"), here, is_folder))
    for m in PATH.finditer(text):
        root, rest = m.group(1), m.group(2)
        if rest == "::{":
            continue
        found.add(resolve(root, rest.strip(":").split("::"), here, is_folder))
    return {t for t in found if t}


def resolve(root: str, rest: list[str], here: list[str], is_folder: bool) -> tuple[str, ...]:
    if root == "super":
        base = here if is_folder else here[:-1]
        while rest and rest[0] == "super":
            rest = rest[1:]
            base = base[:-1]
        path = base[:-1] + rest if is_folder else base + rest
    elif root == "crate" and here and here[0] == "cli":
        path = ["cli"] + rest  # crate:: inside the binary
    else:
        path = rest
    path = [p for p in path if p]
    return tuple(path[:2])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    top = defaultdict(set)        # top-level module -> top-level modules it uses
    siblings = defaultdict(set)   # "folder::file" -> sibling files it uses
    where = {}
    problems = []
    for file in sorted(src.rglob("*.rs")):
        here = module_of(src, file)
        if not here:
            continue
        me = here[0]
        if me not in LAYERS:
            problems.append(f"{file}: module `{me}` has no layer in scripts/check_layers.py")
            continue
        for t in targets(src, file, file.read_text()):
            other = t[0]
            if other not in LAYERS or other == me:
                if other == me and len(t) > 1 and len(here) > 1 and t[1] != here[1]:
                    siblings[f"{me}::{here[1]}"].add(f"{me}::{t[1]}")
                continue
            top[me].add(other)
            where.setdefault((me, other), file)
            if LAYERS[other] > LAYERS[me]:
                problems.append(
                    f"{where[(me, other)]}: `{me}` (layer {LAYERS[me]}) uses `{other}` (layer {LAYERS[other]}), which is above it"
                )
    for loop in cycles(top) + cycles(siblings):
        problems.append("import loop: " + " -> ".join(loop))
    for p in problems:
        print(p)
    edges = sum(len(v) for v in top.values())
    if problems:
        print(f"check_layers: {len(problems)} problem(s)")
        return 1
    print(f"check_layers: {len(top)} modules, {edges} dependencies, all pointing down, no loops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
