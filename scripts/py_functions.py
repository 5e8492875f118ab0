#!/usr/bin/env python3
"""Reference oracle: list every Python function under a directory using `ast`.

Usage:
    python3 scripts/py_functions.py ROOT [--files-from FILE] [--time] [--quiet-stats]

For every `.py` file under ROOT (or only the ROOT-relative paths listed one per
line in FILE) it prints one JSON object per line per function:

    {"path": "pkg/mod.py", "name": "Outer.method.inner", "start_line": N, "end_line": M}

* every FunctionDef and AsyncFunctionDef anywhere in the file (not lambdas);
* `name` is qualified by all enclosing class and function names, joined by
  `.` (if/try/with/for/while/match blocks add nothing);
* `start_line` is the line of the first decorator when there are decorators,
  else the line of `def`; `end_line` is the node's `end_lineno`.

Files that cannot be parsed are reported as
`{"skipped": "path", "reason": "..."}` lines instead.

Options:
    --files-from FILE  only the paths listed in FILE (relative to ROOT, "/" separated)
    --time             also print a final JSON stats line to stderr:
                       {"files": F, "lines": L, "functions": N, "skipped": K, "seconds": S}
                       where S covers only reading, parsing and walking
    --quiet-stats      print no per-function or skipped lines, only the stats
                       line on stderr (implies --time); for benchmarks

Files are read as bytes and decoded by `ast.parse` itself, so PEP 263
encoding cookies and BOMs are honoured. Output order: files sorted by path,
functions in source order within each file.
"""

import argparse
import ast
import json
import os
import sys
import time
import warnings

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_CLASS = ast.ClassDef
# Statement-list fields: the only places a `def` or `class` statement can occur.
# Listed in reverse source order (body, handlers, orelse, finalbody / cases)
# because the walk pops from the end of a stack.
_STMT_FIELDS_REVERSED = ("cases", "finalbody", "orelse", "handlers", "body")


def functions_in(tree):
    """Return [(qualified_name, start_line, end_line)] in source order."""
    out = []
    # Stack of (node, prefix); children are pushed reversed to keep source order.
    stack = [(stmt, "") for stmt in reversed(tree.body)]
    pop = stack.pop
    push = stack.append
    defs = _DEFS
    cls = _CLASS
    fields = _STMT_FIELDS_REVERSED
    while stack:
        node, prefix = pop()
        if isinstance(node, defs):
            qual = prefix + node.name
            decos = node.decorator_list
            start = min(d.lineno for d in decos) if decos else node.lineno
            out.append((qual, start, node.end_lineno))
            child_prefix = qual + "."
        elif isinstance(node, cls):
            child_prefix = prefix + node.name + "."
        else:
            child_prefix = prefix
        for field in fields:
            children = getattr(node, field, None)
            if children:
                for child in reversed(children):
                    push((child, child_prefix))
    return out


def list_py_files(root):
    """All .py files under root, as sorted '/'-separated relative paths."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in filenames:
            if name.endswith(".py"):
                found.append(rel_dir + name)
    found.sort()
    return found


def read_list(path):
    with open(path, "r", encoding="utf-8", errors="surrogateescape") as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="List Python functions with ast (trajforge reference oracle)."
    )
    parser.add_argument("root", help="directory to scan")
    parser.add_argument("--files-from", metavar="FILE",
                        help="only these ROOT-relative paths, one per line")
    parser.add_argument("--time", action="store_true",
                        help="print a stats JSON line to stderr at the end")
    parser.add_argument("--quiet-stats", action="store_true",
                        help="print only the stats line (stderr), no per-function lines")
    args = parser.parse_args(argv)

    root = args.root
    if not os.path.isdir(root):
        parser.error("not a directory: %s" % root)
    rels = read_list(args.files_from) if args.files_from else list_py_files(root)
    quiet = args.quiet_stats
    show_stats = args.time or quiet

    # Invalid escape sequences etc. raise SyntaxWarning on newer Pythons: noise here.
    warnings.simplefilter("ignore")

    n_files = n_lines = n_funcs = n_skipped = 0
    busy = 0.0
    clock = time.perf_counter
    dumps = json.dumps
    write = sys.stdout.write
    for rel in rels:
        full = os.path.join(root, rel)
        t0 = clock()
        try:
            with open(full, "rb") as fh:
                data = fh.read()
            tree = ast.parse(data, filename=rel)
            found = functions_in(tree)
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError,
                MemoryError, OSError) as exc:
            busy += clock() - t0
            n_skipped += 1
            if not quiet:
                reason = "%s: %s" % (type(exc).__name__, exc)
                write(dumps({"skipped": rel, "reason": reason}) + "\n")
            continue
        busy += clock() - t0
        n_files += 1
        n_lines += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        n_funcs += len(found)
        if not quiet and found:
            write("".join(
                dumps({"path": rel, "name": name, "start_line": start, "end_line": end})
                + "\n"
                for name, start, end in found
            ))
    sys.stdout.flush()
    if show_stats:
        sys.stderr.write(dumps({
            "files": n_files,
            "lines": n_lines,
            "functions": n_funcs,
            "skipped": n_skipped,
            "seconds": round(busy, 6),
        }) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
