#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks the source layout that docs/architecture.md describes.

Folder = CMake target = namespace: each module is a folder whose sources build
one target `portolan_<module>` and declare `namespace portolan::<module>`; its
public headers are include/portolan/<module>/*.h. This check makes the rules
fail the build instead of living in a document:

  1. every module's sources and public headers declare its namespace;
  2. a file includes only its own module's headers and those of modules its
     target links (directly or through them), read from the CMakeLists files,
     so the dependency graph in CMake is the one source of truth;
  3. that graph has no cycle (dependencies point one way);
  4. a module's private headers (in its folder) are included only by the module
     itself and by its tests;
  5. no production source file is over 600 lines and no function over 120
     lines, apart from the files listed in SIZE_DEBT, each of which must still
     be over (so that the list can only shrink).

Usage: check_layout.py SOURCE_DIR. Prints every finding; exit status 1 if any.
"""
import os
import re
import sys

# folder -> module name. The module's target is portolan_<name>, its namespace
# portolan::<name>, its public headers include/portolan/<name>/.
MODULES = {
    "base": "base",
    "base/service": "service",
    "base/tls": "tls",
    "base/grant": "grant",
    "base/metrics": "metrics",
    "base/daemon": "daemon",
    "api/proto": "proto",
    "api/codec": "codec",
    "api/wire": "wire",
    "api/auth": "auth",
    "api/client": "client",
    "api/cli": "cli",
    "policy": "policy",
    "policy/network": "network",
    "policy/residency": "residency",
    "policy/topology": "topology",
    "policy/placement": "placement",
    "policy/simulate": "simulate",
    "scheduler": "scheduler",
    "scheduler/etcd": "etcd",
    "scheduler/ha": "ha",
    "scheduler/store": "store",
    "scheduler/datasets": "datasets",
    "scheduler/rpc": "rpc",
    "scheduler/rest": "rest",
    "scheduler/console": "console",
    "agent": "agent",
    "agent/discovery": "discovery",
    "agent/executor": "executor",
    "agent/transfer": "transfer",
}
# Binaries: (file, the modules it may use = those its executable links).
BINARIES = {
    "api/cli/main.cc": "portolan",
    "api/openapi/gen.cc": "portolan-openapi",
    "scheduler/main.cc": "portolan-scheduler",
    "agent/main.cc": "portolan-agent",
    "agent/executor/job_init.cc": "portolan-job-init",
}
# Files over the size limits today, with what they are waiting for. Each must
# still be over its limit: remove it from here when it is split.
SIZE_DEBT = {
}
# Files that declare nothing in a portolan namespace, and why.
NO_NAMESPACE = {
    "include/portolan/base/log.h": "only specialises fmt::formatter (namespace fmt) for absl::string_view",
}
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 120

findings = []


SPDX = "SPDX-License-Identifier: Apache-2.0"
SPDX_EXTENSIONS = (".cc", ".h", ".proto", ".js", ".ts", ".sh", ".py", ".cmake", ".lua", ".html")


def find(msg):
    findings.append(msg)


def read_cmake_graph(root):
    """target -> set of linked portolan targets, from every CMakeLists.txt."""
    graph = {}
    for folder in ["base", "api", "policy", "scheduler", "agent"]:
        text = open(os.path.join(root, folder, "CMakeLists.txt")).read()
        text = re.sub(r"#[^\n]*", "", text)
        for m in re.finditer(r"target_link_libraries\(\s*([\w-]+)(.*?)\)", text, re.S):
            deps = set(re.findall(r"\b(portolan_\w+)", m.group(2)))
            graph.setdefault(m.group(1), set()).update(deps)
        for m in re.finditer(r"add_(?:library|executable)\(\s*([\w-]+)", text):
            graph.setdefault(m.group(1), set())
    return graph


def closure(graph, target):
    seen, todo = set(), [target]
    while todo:
        for d in graph.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def check_cycles(graph):
    state = {}

    def visit(n, path):
        if state.get(n) == 1:
            find("dependency cycle: " + " -> ".join(path + [n]))
            return
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in sorted(graph.get(n, ())):
            visit(d, path + [n])
        state[n] = 2

    for n in sorted(graph):
        visit(n, [])


def module_of(path):
    """The module folder holding `path` (longest match), or None."""
    best = None
    for folder in MODULES:
        if path.startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def strip_comments_and_strings(text):
    text = re.sub(r'R"(\w*)\((.*?)\)\1"', '""', text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])'", "''", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def function_lengths(text):
    """(first line, lines, signature) of each function defined at column 0,
    or at two spaces (a member function defined in its class body)."""
    lines = strip_comments_and_strings(text).split("\n")
    out, i = [], 0
    skip = re.compile(r"\s*(namespace|class|struct|enum|union|extern|template|#|if|for|while|"
                      r"switch|else|do|return|case|try|catch)\b")
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        if (line.strip() and indent in (0, 2) and line.rstrip().endswith("{")
                and not skip.match(line) and "(" in line and "=" not in line.split("(")[0]
                and not line.lstrip().startswith(("(", ")", "{", "}", ":", ",", "[", "."))):
            depth, j = 0, i
            for j in range(i, len(lines)):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0:
                    break
            out.append((i + 1, j - i + 1, line.strip()))
            i = j + 1 if indent == 0 else i + 1
            continue
        i += 1
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    os.chdir(root)
    graph = read_cmake_graph(".")
    check_cycles(graph)
    for folder, name in MODULES.items():
        if name != "proto" and "portolan_" + name not in graph:
            find(f"{folder}/: no target portolan_{name} in its CMakeLists.txt")

    header_module = {}  # "portolan/<m>/x.h" -> module name
    for name in set(MODULES.values()):
        d = os.path.join("include/portolan", name)
        if os.path.isdir(d):
            for h in os.listdir(d):
                header_module[f"portolan/{name}/{h}"] = name
    for h in os.listdir("include/portolan"):
        if h.endswith(".h"):
            find(f"include/portolan/{h}: a public header belongs in include/portolan/<module>/")

    sources = []
    for top in ["base", "api", "policy", "scheduler", "agent", "include", "tests"]:
        for dp, _, files in os.walk(top):
            for f in files:
                if f.endswith((".cc", ".h")):
                    sources.append(os.path.join(dp, f))
    for path in sorted(sources):
        text = open(path, errors="replace").read()
        is_test = path.startswith("tests/")
        if path.startswith("include/portolan/"):
            parts = path.split("/")
            owner = parts[2] if len(parts) == 4 else None
            folder = next((f for f, n in MODULES.items() if n == owner), None)
        else:
            folder = module_of(path)
            owner = MODULES.get(folder) if folder else None

        # 1. namespace
        if owner and not is_test and path not in BINARIES and owner != "proto" and path not in NO_NAMESPACE:
            if not re.search(r"^namespace portolan::%s(::\w+)* \{" % owner, text, re.M):
                find(f"{path}: declares no namespace portolan::{owner}")

        # 2. includes follow the link graph
        if path in BINARIES:
            allowed = closure(graph, BINARIES[path])
        elif owner:
            allowed = closure(graph, "portolan_" + owner) | {"portolan_" + owner}
        else:
            allowed = None  # tests: their targets' links are checked by the linker
        for m in re.finditer(r'^#include "([^"]+)"', text, re.M):
            inc = m.group(1)
            if inc in header_module and allowed is not None:
                dep = header_module[inc]
                if "portolan_" + dep not in allowed:
                    find(f"{path}: includes {inc} but its target does not link portolan_{dep}")
            # 4. private headers
            if re.match(r"(base|api|policy|scheduler|agent)/", inc):
                inc_folder = module_of(inc)
                here = folder
                if is_test:
                    continue
                if inc_folder != here:
                    find(f"{path}: includes {inc}, a private header of {inc_folder}/")

        # 5. sizes (production code only)
        if is_test or path.startswith("include/portolan/v1"):
            continue
        over = []
        n = text.count("\n")
        if n > MAX_FILE_LINES:
            over.append(f"{n} lines (limit {MAX_FILE_LINES})")
        for first, length, sig in function_lengths(text):
            if length > MAX_FUNCTION_LINES:
                over.append(f"function at line {first} is {length} lines (limit {MAX_FUNCTION_LINES}): {sig[:60]}")
        if over and path not in SIZE_DEBT:
            for o in over:
                find(f"{path}: {o}")
        if not over and path in SIZE_DEBT:
            find(f"{path}: within the limits now; remove it from SIZE_DEBT in {sys.argv[0]}")
        if over and path in SIZE_DEBT:
            print(f"known debt: {path}: {'; '.join(over)} — {SIZE_DEBT[path]}")

    # 6. licence: an SPDX identifier in the first lines of every source file
    licensed = 0
    if SPDX not in open("CMakeLists.txt").readline():
        find(f"CMakeLists.txt: no '{SPDX}' line at the top")
    for top in ["base", "api", "policy", "scheduler", "agent", "include", "tests", "deploy"]:
        for dp, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("node_modules", "dist")]
            for f in files:
                if not (f.endswith(SPDX_EXTENSIONS) or f == "CMakeLists.txt"):
                    continue
                path = os.path.join(dp, f)
                head = open(path, errors="replace").read().split("\n", 3)[:3]
                if not any(SPDX in line for line in head):
                    find(f"{path}: no '{SPDX}' line at the top")
                licensed += 1
    print(f"{licensed} source files carry {SPDX}")

    for f in findings:
        print("layout:", f)
    print(f"{len(sources)} files checked, {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
