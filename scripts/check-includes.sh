#!/usr/bin/env bash
# The include check (docs/internals.md, "Layers"): every `#include` of src/, tools/, include/,
# examples/ and bench/ must point down the layer table of docs/internals.md, no two folders may
# include each other (directly or round a longer circle), and no layer above the backend table
# may include a backend's own headers. The table is read from the docs, so they cannot drift.
#   scripts/check-includes.sh [--root DIR]   check DIR (default: this checkout); exit 1 on offences
#   scripts/check-includes.sh --selftest     plant offences in copies of the tree; each must fail
#   scripts/check-includes.sh --list         print each scanned file's layer and exit
#   scripts/check-includes.sh --calls BUILD  the same rules for calls: the edges are the symbols
#       each object file of the library (BUILD/CMakeFiles/deepc_obj.dir) uses and another
#       defines, read with nm, so no function calls up the table or round a circle of folders
#   scripts/check-includes.sh --selftest [--calls BUILD]   (with --calls: a planted table in
#       which the engine is autograd's must make the built engine's calls into ops fail)
# Exceptions: scripts/include-allow.txt (calls: scripts/call-allow.txt), one `FROM TO reason` a
# line (kept empty: fix the code).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ "${1:-}" = "--selftest" ] && [ "${2:-}" = "--calls" ]; then
  root=$(cd "$here/.." && pwd)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/docs" "$tmp/scripts"
  ln -s "$root/src" "$tmp/src"
  # the engine's files moved into autograd's row: their calls into ops then point up
  sed -e 's#^| `autograd` | `src/autograd/\*` |#| `autograd` | `src/autograd/**` |#' \
    -e 's#^| `engine` | `src/autograd/engine/\*` |#| `engine` | `src/autograd/engine/none.c` |#' \
    "$root/docs/internals.md" >"$tmp/docs/internals.md"
  rc=0
  out=$(bash "$here/check-includes.sh" --root "$tmp" --calls "$3" 2>&1) || rc=$?
  expect="calls dc_add of src/ops/binary.c, layer ops, from layer autograd"
  if [ "$rc" -ne 1 ] || ! grep -qF -- "$expect" <<<"$out"; then
    echo "selftest calls: expected exit 1 and a line with \"$expect\", got exit $rc:"
    echo "$out"
    exit 1
  fi
  echo "selftest calls: refused as expected: $(grep -F -- "$expect" <<<"$out" | head -1)"
  bash "$here/check-includes.sh" --root "$root" --calls "$3" >/dev/null ||
    { echo "selftest calls: the tree itself fails the check"; exit 1; }
  echo "selftest calls: ok"
  exit 0
fi

if [ "${1:-}" = "--selftest" ]; then
  root=$(cd "$here/.." && pwd)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fails=0
  # plant NAME EXPECT FILE LINE [FILE LINE ...]: a copy of the tree with each LINE appended to
  # its FILE must fail the check (exit 1) with a line holding EXPECT.
  plant() {
    local name=$1 expect=$2 copy="$tmp/$1" out rc
    shift 2
    mkdir -p "$copy/docs" "$copy/scripts"
    for d in src include tools examples bench; do cp -r "$root/$d" "$copy/$d"; done
    cp "$root/docs/internals.md" "$copy/docs/"
    if [ -f "$root/scripts/include-allow.txt" ]; then
      cp "$root/scripts/include-allow.txt" "$copy/scripts/"
    fi
    while [ $# -gt 0 ]; do
      printf '%s\n' "$2" >>"$copy/$1"
      shift 2
    done
    rc=0
    out=$(bash "$here/check-includes.sh" --root "$copy" 2>&1) || rc=$?
    if [ "$rc" -ne 1 ] || ! grep -qF -- "$expect" <<<"$out"; then
      echo "selftest $name: expected exit 1 and a line with \"$expect\", got exit $rc:"
      echo "$out"
      fails=$((fails + 1))
    else
      echo "selftest $name: refused as expected: $(grep -F -- "$expect" <<<"$out" | head -1)"
    fi
  }
  plant upward "src/core/shape.c:" src/core/shape.c '#include "../nn/nn-impl.h"'
  plant upward-header "includes src/autograd/autograd-impl.h of layer autograd from layer core" \
    src/core/core-impl.h '#include "../autograd/autograd-impl.h"'
  plant cli-internal "includes src/backend/cpu/cpu-impl.h of layer kernels from layer cli" \
    tools/deepc/cmd_bench.c '#include "backend/cpu/cpu-impl.h"'
  plant api-internal "from layer api" include/deepc/tensor.h '#include "../../src/core/core-impl.h"'
  # Two folders of one layer (kernels) may include each other one way, not both ways.
  plant circle "include circle between src/backend/cpu and src/backend/testdev" \
    src/backend/testdev/memory.c '#include "../cpu/cpu-impl.h"' \
    src/backend/cpu/copy.c '#include "../testdev/testdev-impl.h"'
  # The real tree must pass (so the plants above fail for their plant alone).
  if ! bash "$here/check-includes.sh" --root "$root" >/dev/null; then
    echo "selftest: the tree itself fails the check"
    fails=$((fails + 1))
  fi
  [ "$fails" -eq 0 ] && echo "selftest: ok"
  exit $((fails > 0))
fi

root=$(cd "$here/.." && pwd)
list=0
calls=
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$(cd "$2" && pwd); shift 2 ;;
    --list) list=1; shift ;;
    --calls) calls=$(cd "$2" && pwd); shift 2 ;;
    *) echo "check-includes: unknown argument $1 (--root DIR, --list, --calls BUILD, --selftest)" >&2
       exit 2 ;;
  esac
done

exec "$PY" - "$root" "$list" "$calls" <<'PYEOF'
import os, re, subprocess, sys

root, list_only, calls = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
DOC = "docs/internals.md"
ALLOW = "scripts/call-allow.txt" if calls else "scripts/include-allow.txt"
TOOL = "check-calls" if calls else "check-includes"
SCAN = ["src", "tools", "include", "examples", "bench"]
EXTS = (".c", ".h", ".cu", ".cuh")


def die(msg):
    print(TOOL + ": " + msg)
    sys.exit(2)


# ---- the layer table: rows of "| `name` | `glob`, ... | `layer`, ... | what |" under ## Layers
def read_table():
    path = os.path.join(root, DOC)
    try:
        text = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        die(f"{DOC}: {e.strerror}")
    layers, order, in_sec = {}, [], False
    for n, line in enumerate(text, 1):
        if line.startswith("## "):
            in_sec = line.strip() == "## Layers"
            continue
        if not in_sec or not line.startswith("|"):
            continue
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cols[0]) if cols else []
        if len(cols) < 3 or len(names) != 1:
            continue  # the header and separator rows
        name = names[0]
        globs = re.findall(r"`([^`]+)`", cols[1])
        # "`kernels` (calls only)": the layer may call it, not include it, and the layers
        # above do not inherit it (the registry installs the builtin backends' tables)
        items = re.findall(r"`([^`]+)`( \(calls only\))?", cols[2])
        may = [m for m, c in items if not c]
        call_only = [m for m, c in items if c]
        if name in layers:
            die(f"{DOC}:{n}: layer {name} listed twice")
        for m in may + call_only:
            if m not in layers:
                die(f"{DOC}:{n}: layer {name} may include {m}, which is not a row above it "
                    "(the table lists layers bottom to top)")
        layers[name] = {"globs": globs, "may": may, "call_only": call_only, "line": n}
        order.append(name)
    if len(order) < 2:
        die(f"{DOC}: no layer table under '## Layers'")
    return layers, order


def glob_re(g):
    out = ""
    i = 0
    while i < len(g):
        if g.startswith("**", i):
            out += ".*"
            i += 2
        elif g[i] == "*":
            out += "[^/]*"
            i += 1
        elif g[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(g[i])
            i += 1
    return re.compile(out + r"\Z")


layers, order = read_table()
API = order[0]  # the bottom row: every layer may include it
patterns = [(g, glob_re(g), name) for name in order for g in layers[name]["globs"]]
closure = {}
for name in order:  # rows are bottom to top, so every layer below is already closed
    c = {name, API}
    for m in layers[name]["may"]:
        c |= closure[m]
    closure[name] = c
if calls:  # after the closure: what a layer may only call is its own
    for name in order:
        closure[name] = closure[name] | set(layers[name]["call_only"])


def layer_of(path):
    """The layer of the longest glob that matches path (a file may match a folder's glob and a
    more precise one, e.g. src/io/** and src/io/zip.c)."""
    best = None
    for g, rx, name in patterns:
        if rx.match(path) and (best is None or len(g) > len(best[0])):
            best = (g, name)
    return best[1] if best else None


# ---- the files and their includes (or, with --calls, the library's objects and their calls)
def object_calls(build):
    """(files, edges): the sources of the library's objects and (user, symbol, definer) for every
    symbol one object uses and exactly one other defines (nm; weak/COMDAT symbols that several
    objects define, such as C++ template instances, are left out)."""
    objdir = os.path.join(build, "CMakeFiles", "deepc_obj.dir")
    if not os.path.isdir(objdir):
        die(f"{objdir}: no library objects (build first)")
    objs = {}
    for dp, dn, fn in os.walk(objdir):
        for f in fn:
            src = os.path.relpath(os.path.join(dp, f), objdir)[:-2]
            # the tree's own sources: not generated ones, nor stale objects of moved files
            if f.endswith(".o") and src.startswith("src/") and os.path.exists(os.path.join(root, src)):
                objs[src] = os.path.join(dp, f)
    defs, uses = {}, {}
    for src, o in sorted(objs.items()):
        out = subprocess.run(["nm", "-P", o], capture_output=True, text=True)
        if out.returncode != 0:
            die(f"nm {o}: {out.stderr.strip()}")
        for line in out.stdout.splitlines():
            p = line.split()
            if len(p) < 2:
                continue
            if p[1] == "U":
                uses.setdefault(src, set()).add(p[0])
            elif p[1] in "TDRBGSVW" and p[1].isupper():
                defs.setdefault(p[0], set()).add(src)
    edges = []
    for src in sorted(uses):
        for sym in sorted(uses[src]):
            d = defs.get(sym, ())
            if len(d) == 1 and src not in d:
                edges.append((src, sym, next(iter(d))))
    return sorted(objs), edges


files = []
for top in ([] if calls else SCAN):
    for dp, dn, fn in os.walk(os.path.join(root, top)):
        dn.sort()
        for f in sorted(fn):
            if f.endswith(EXTS):
                files.append(os.path.relpath(os.path.join(dp, f), root))
if calls:
    files, call_edges = object_calls(calls)
fileset = set(files)
problems = []
for f in files:
    if layer_of(f) is None:
        problems.append(f"{f}:1: in no layer of {DOC}'s table: add its folder to a row")
if list_only:
    for f in files:
        print(f"{layer_of(f) or '?'}\t{f}")
    sys.exit(0)

INC = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def resolve(f, quote, name):
    """The project file an include names, or None (a system or generated header). Quoted
    includes look beside the file, then in its parent folders; both kinds then in src/ and
    include/ (the include path of every target)."""
    cands = []
    if quote == '"':
        d = os.path.dirname(f)
        while True:
            cands.append(os.path.join(d, name))
            if not d:
                break
            d = os.path.dirname(d)
    cands += [os.path.join("src", name), os.path.join("include", name)]
    for c in cands:
        c = os.path.normpath(c)
        if c in fileset:
            return c
    return None


edges = call_edges if calls else []  # (from, line or symbol, to)
for f in ([] if calls else files):
    try:
        lines = open(os.path.join(root, f), encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        die(f"{f}: {e.strerror}")
    for n, line in enumerate(lines, 1):
        m = INC.match(line)
        if m:
            t = resolve(f, m.group(1), m.group(2))
            if t and t != f:
                edges.append((f, n, t))

# ---- the allow-list: "FROM TO reason", a reason required
allow, allow_used = {}, set()
apath = os.path.join(root, ALLOW)
if os.path.exists(apath):
    for n, line in enumerate(open(apath, encoding="utf-8"), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(None, 2)
        if len(parts) < 3:
            die(f"{ALLOW}:{n}: want 'FROM TO reason' (a reason is required)")
        allow[(parts[0], parts[1])] = n

VERB = "call" if calls else "include"


def edge_text(f, n, t, lt, lf):
    """An offence's line up to its reason."""
    if calls:
        return f"{f}: calls {n} of {t}, layer {lt}, from layer {lf}"
    return f"{f}:{n}: includes {t} of layer {lt} from layer {lf}"


# ---- (a) and (c): every include inside what its layer may include. An allowed include is
# left out of everything below.
kept, upward = [], {}  # upward: (file, line) -> its offence
for f, n, t in edges:
    if (f, t) in allow:
        allow_used.add((f, t))
        continue
    kept.append((f, n, t))
    lf, lt = layer_of(f), layer_of(t)
    if lf is None or lt is None or lt in closure[lf]:
        continue
    up = order.index(lt) > order.index(lf)
    why = "it points up the table" if up else f"{lt} is not among the layers {lf} may include"
    may = ", ".join(x for x in order if x in closure[lf] - {lf}) or "nothing"
    upward[(f, n)] = (f"{edge_text(f, n, t, lt, lf)} ({why}; "
                      f"{lf} may {VERB}: {may})")


# ---- (b): include circles between folders. A unit is one folder's files of one layer; a
# circle is a strongly connected set of units in more than one folder. Each circle is reported
# on its includes that do not point down (the upward ones above, or one between two folders of
# one layer): fixing those breaks it.
def unit(p):
    return (os.path.dirname(p), layer_of(p))


graph, witness = {}, {}
for f, n, t in kept:
    a, b = unit(f), unit(t)
    if a == b:
        continue
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())
    witness.setdefault((a, b), []).append((f, n, t))

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def strong(v):  # Tarjan's algorithm
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph[v], key=str):
        if w not in index:
            strong(w)
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
        sccs.append(comp)


sys.setrecursionlimit(10000)
for v in sorted(graph, key=str):
    if v not in index:
        strong(v)

circles, in_circle = 0, {}  # in_circle: (file, line) -> its line, for a same-layer include
for comp in sccs:
    if len({u[0] for u in comp}) < 2:
        continue
    circles += 1
    members = set(comp)
    article = "a" if calls else "an"
    note = f"{article} {VERB} circle between " + " and ".join(sorted({u[0] for u in comp}))
    for a in members:
        for b in graph[a] & members:
            for f, n, t in witness[(a, b)]:
                if (f, n) in upward:
                    upward[(f, n)] = upward[(f, n)][:-1] + "; " + note + ")"
                elif a[1] == b[1] and a[0] != b[0]:
                    in_circle[(f, n)] = f"{edge_text(f, n, t, b[1], a[1])} ({note})"
offences = {**in_circle, **upward}
problems += [offences[k] for k in sorted(offences)]

for (f, t), n in sorted(allow.items(), key=lambda kv: kv[1]):
    if (f, t) not in allow_used:
        problems.append(f"{ALLOW}:{n}: '{f} {t}' is no longer an offence: remove the line")

for p in problems:
    print(p)
ok_edges = len(edges)
nup = len(upward)
if problems:
    print(f"{TOOL}: {len(problems)} offence(s) in {ok_edges} {VERB}s of {len(files)} "
          f"files: {nup} {VERB}(s) outside their layer's list, {circles} {VERB} circle(s) "
          f"between folders; the layers are in {DOC}")
    sys.exit(1)
print(f"{TOOL}: {ok_edges} {VERB}s of {len(files)} files point down {len(order)} "
      f"layers of {DOC}; no {VERB} circle between folders")
PYEOF
