#!/usr/bin/env python3
"""Keeps README.md true: builds its C++ snippets, runs its shell sessions, compares.

Every fenced block of the README is preceded by a mark, an HTML comment the rendered page
does not show, that says what this test does with it (a block without one fails the test):

  <!-- readme-test: run -->            C++: built against the build tree's libraries and
                                       run (it must exit 0). A shell session ("$ " lines
                                       are commands, the others their output): run, and
                                       its output compared in shape (below).
  <!-- readme-test: build -->          C++: built (linked) only.
  <!-- readme-test: run in main() -->  C++ fragment: its #include and namespace-alias
  <!-- readme-test: build in main() -->  lines stay at file scope, every other line goes,
                                       as written, into the body of int main().
  <!-- readme-test: run as config -->  a config: written to a file of its own directory and
                                       run by `ringmaster run FILE`, which must exit 0 with
                                       every result ok; ./my_worker there is a worker
                                       executable serving the built-in handlers (the tests'
                                       ringmaster_test_worker), for a `command` naming it.
  <!-- readme-test: synopsis -->       lines `ringmaster SUBCOMMAND ...`: every --option in a
                                       line is one that `ringmaster SUBCOMMAND --help` lists,
                                       and every option it lists is somewhere in the README.
  <!-- readme-test: file NAME -->      written to NAME in the sessions' directory, for the
                                       sessions after it (one directory for the README).
  <!-- readme-test: same as PATH -->   must be, byte for byte, the repository's file PATH
                                       (which another test uses).
  <!-- readme-test: skip: REASON -->   left alone, for the reason given.

C++ snippets are built as one CMake project that finds the package, installed from the
build tree into a scratch prefix (find_package(ringmaster)), and links
ringmaster::supervisor, as a user's project would. Sessions run in bash, in a fresh
directory that is also $HOME, with the build's `ringmaster` first in PATH. A command
ending in `&` runs in the background; the next command waits (bounded) for the socket it
names with --socket to exist, as a person typing would. At the end of a session every
process it started must be gone.

Shape: the output of each command is compared line by line as a multiset (results come
in completion order, log lines from several threads), after each line is normalized:
whitespace collapsed; timestamps, pids, decimal figures (durations, rates, sizes), rates,
and the slot in "pool/slot" replaced by placeholders, and every number in a `status`
worker row. A line that is a JSON object is compared as JSON without its "ms" and
"worker" (timing and placement vary). Counts (jobs, ok, failed, restarts) are kept, so
they must be what the program prints. A line "..." in the README's output means that
lines are left out there: the README's lines must then be among the program's.

  readme_snippets.py --readme README.md --source-dir DIR --build-dir DIR --ringmaster BIN
                     --test-worker BIN [--cxx COMPILER] [--launcher LAUNCHER]
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
CPP_LANGS = {"cpp", "c++", "cxx"}
SESSION_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 180
RUN_TIMEOUT_S = 60
# Everything within this, under ctest's TIMEOUT (300 s), so that the test, not ctest,
# kills what it started and says what was running.
BUDGET_S = 270
DEADLINE = time.monotonic() + BUDGET_S


def bounded(seconds):
    """`seconds`, or what is left of the test's budget if less."""
    return max(1.0, min(seconds, DEADLINE - time.monotonic()))


class Block:
    def __init__(self, line, lang, text, mark):
        self.line, self.lang, self.text, self.mark = line, lang, text, mark

    def where(self):
        return f"README.md:{self.line}"


def parse_blocks(path):
    """Every fenced block, with the mark on the line before its fence (or None)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        if j == len(lines):
            raise SystemExit(f"README.md:{start + 1}: a ``` block that is never closed")
        prev = lines[start - 1] if start > 0 else ""
        mm = MARK.match(prev)
        text = "\n".join(lines[start + 1:j]) + "\n"
        blocks.append(Block(start + 1, lang, text, mm.group(1) if mm else None))
        i = j + 1
    return blocks


# --- C++ snippets ---------------------------------------------------------------------

def as_program(block, in_main):
    if not in_main:
        return block.text
    top, body = [], []
    for line in block.text.split("\n"):
        if line.startswith("#include") or re.match(r"^namespace \w+ = ", line):
            top.append(line)
        else:
            body.append("  " + line if line else line)
    return "\n".join(top) + "\n\nint main() {\n" + "\n".join(body) + "\n}\n"


def build_cpp(blocks, args, work):
    """Builds every C++ snippet in one CMake project; returns {block: executable}."""
    proj = os.path.join(work, "cpp")
    os.makedirs(proj)
    cmake = ["cmake_minimum_required(VERSION 3.25)", "project(readme_snippets LANGUAGES CXX)",
             "find_package(ringmaster CONFIG REQUIRED)"]
    exes = {}
    for n, (b, in_main) in enumerate(blocks):
        name = f"snippet_{n}_line_{b.line}"
        with open(os.path.join(proj, name + ".cpp"), "w", encoding="utf-8") as f:
            # A whole program's errors point at the README's own lines.
            f.write(f"// README.md:{b.line}, wrapped in main()\n" if in_main else f"#line {b.line + 1} \"README.md\"\n")
            f.write(as_program(b, in_main))
        cmake.append(f"add_executable({name} {name}.cpp)")
        cmake.append(f"target_link_libraries({name} PRIVATE ringmaster::supervisor)")
        exes[id(b)] = os.path.join(work, "cpp-build", name)
    with open(os.path.join(proj, "CMakeLists.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(cmake) + "\n")
    prefix = os.path.join(work, "prefix")
    code, out = run_bounded(["cmake", "--install", args.build_dir, "--prefix", prefix], work, BUILD_TIMEOUT_S,
                            "cmake --install")
    if code != 0:
        raise Failure(f"cannot install the build tree {args.build_dir} (exit {code}):\n{out}")
    configure = ["cmake", "-S", proj, "-B", os.path.join(work, "cpp-build"), "-G", "Ninja",
                 f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE="]
    if args.cxx:
        configure.append(f"-DCMAKE_CXX_COMPILER={args.cxx}")
    if args.launcher:
        configure.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={args.launcher}")
    for cmd in (configure, ["cmake", "--build", os.path.join(work, "cpp-build")]):
        code, out = run_bounded(cmd, work, BUILD_TIMEOUT_S, f"`{' '.join(cmd)}`")
        if code != 0:
            print(out)
            for b, in_main in blocks:
                print(f"  {b.where()}: {'fragment in main()' if in_main else 'program'} "
                      f"snippet_*_line_{b.line}.cpp")
            raise Failure(f"the README's C++ snippets do not build: `{' '.join(cmd)}` exited {code}")
    return exes


# --- shell sessions -------------------------------------------------------------------

def parse_session(block):
    """[(command, [expected output lines])] of a `$ ` session."""
    steps = []
    for line in block.text.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif not steps:
            raise Failure(f"{block.where()}: a session must start with a `$ ` command, got {line!r}")
        else:
            steps[-1][1].append(line)
    return steps


WORKER_ROW = re.compile(r"^\s*\d+\s+\d+\s+[a-z]+\s")
NORMALIZE = [
    (re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\]"), "[TIME]"),
    (re.compile(r"\bpid \d+"), "pid PID"),
    (re.compile(r"\d+(\.\d+)? jobs/s"), "R jobs/s"),
    (re.compile(r"\d+\.\d+"), "D"),
    (re.compile(r"\b([A-Za-z0-9_.-]+)/\d+\b(?= \(pid)"), r"\1/SLOT"),
]


def normalize(line):
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if isinstance(value, dict):
        for volatile in ("ms", "worker"):
            value.pop(volatile, None)
        return "json " + json.dumps(value, sort_keys=True)
    if WORKER_ROW.match(line):
        line = re.sub(r"\d+(\.\d+)?", "N", line)
    for pattern, replacement in NORMALIZE:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def compare(block, command, expected, actual):
    elided = any(line.strip() == "..." for line in expected)
    want = collections.Counter(normalize(l) for l in expected if l.strip() not in ("...", ""))
    got = collections.Counter(normalize(l) for l in actual if l.strip() != "")
    missing, extra = want - got, got - want
    if missing or (extra and not elided):
        msg = [f"{block.where()}: `$ {command}` printed something else than the README shows"]
        msg += [f"  README only:  {l}" for l in missing.elements()]
        if not elided:
            msg += [f"  program only: {l}" for l in extra.elements()]
        msg.append("  the program printed:")
        msg += [f"    {l}" for l in actual]
        raise Failure("\n".join(msg))


SOCKET_ARG = re.compile(r"--socket\s+(\S+)")


def run_session(block, args, cwd):
    steps = parse_session(block)
    script = ["exec 2>&1", f"export HOME={sh_quote(cwd)}",
              f"export PATH={sh_quote(os.path.dirname(args.ringmaster))}:$PATH", "cd \"$HOME\"", "__rc=0"]
    for n, (command, _) in enumerate(steps):
        script.append(f"(exit $__rc); echo '@@readme-step {n}@@'; (exit $__rc)")
        script.append(command)
        script.append("__rc=$?")
        if command.rstrip().endswith("&"):
            sock = SOCKET_ARG.search(command)
            if sock:
                # Bounded: 30 s for the server to make its socket, as a person would wait.
                script.append(f"for __i in $(seq 300); do [ -S {sock.group(1)} ] && break; sleep 0.1; done")
            script.append("__rc=0")
    script.append("echo '@@readme-end@@'; wait")
    _, out = run_bounded(["bash", "-c", "\n".join(script)], cwd, SESSION_TIMEOUT_S, f"{block.where()}: the session")
    outputs, current = {}, None
    for line in out.split("\n"):
        m = re.match(r"^@@readme-step (\d+)@@$", line)
        if m:
            current = int(m.group(1))
            outputs[current] = []
        elif line == "@@readme-end@@":
            current = None
        elif current is not None:
            outputs[current].append(line)
    for n, (command, expected) in enumerate(steps):
        if n not in outputs:
            raise Failure(f"{block.where()}: the session ended before `$ {command}`; it printed:\n{out}")
        if command.rstrip().endswith("&"):
            continue  # what a background command prints lands wherever it lands
        compare(block, command, expected, outputs[n])


def run_bounded(command, cwd, timeout, what):
    """Runs `command` in its own process group, stdout and stderr together; returns
    (exit status, output). Fails if it runs past `timeout` or leaves a process behind
    (what is left is killed either way)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=cwd, start_new_session=True, text=True, errors="replace")
    timeout = bounded(timeout)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        out, _ = proc.communicate()
        raise Failure(f"{what} did not end within {timeout:.0f} s; it printed:\n{out}")
    finally:
        left = kill_group(proc.pid)
    if left:
        raise Failure(f"{what} left processes behind (killed): {left}")
    return proc.returncode, out


def kill_group(pgid):
    """SIGKILLs what is left of the process group; returns the pids that were left."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    left.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return left


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


class Failure(Exception):
    pass


def run_block(kind, b, detail, args, work, sessions, exes):
    if kind == "file":
        with open(os.path.join(sessions, detail), "w", encoding="utf-8") as f:
            f.write(b.text)
    elif kind == "cpp" and detail:
        code, out = run_bounded([exes[id(b)]], work, RUN_TIMEOUT_S, f"{b.where()}: the snippet")
        if code != 0:
            raise Failure(f"{b.where()}: the snippet exited {code}; it printed:\n{out}")
        print(f"readme: {b.where()}: C++ snippet ran, exit 0")
    elif kind == "session":
        run_session(b, args, sessions)
        print(f"readme: {b.where()}: session ran as shown")
    elif kind == "synopsis":
        check_synopsis(b, args)
        print(f"readme: {b.where()}: synopsis matches --help")
    elif kind == "config":
        run_config(b, args, work)
        print(f"readme: {b.where()}: config ran, every job ok")


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def check_synopsis(block, args):
    readme = open(args.readme, encoding="utf-8").read()
    problems = []
    commands = []
    for line in block.text.split("\n"):
        if line[:1].isspace() and commands:  # a command's continuation line
            commands[-1] += " " + line.strip()
        elif line.strip():
            commands.append(line.strip())
    for line in commands:
        words = line.split()
        if len(words) < 2 or words[0] != "ringmaster":
            continue
        sub = [] if words[1].startswith("-") else [words[1]]
        code, out = run_bounded([args.ringmaster, *sub, "--help"], args.build_dir, RUN_TIMEOUT_S,
                                f"ringmaster {' '.join(sub)} --help")
        if code != 0:
            problems.append(f"`ringmaster {' '.join(sub)} --help` exited {code}")
            continue
        listed = set(OPTION.findall(out))
        problems += [f"{o} (in `{line.strip()}`) is not an option of `ringmaster {' '.join(sub)}`"
                     for o in OPTION.findall(line) if o not in listed]
        problems += [f"`ringmaster {' '.join(sub)}` has {o}, which the README never mentions"
                     for o in sorted(listed) if f"`{o}" not in readme and f"{o} " not in readme and f"[{o}" not in readme]
    if problems:
        raise Failure(f"{block.where()}: the synopsis and the program disagree:\n  " + "\n  ".join(problems))


def run_config(block, args, work):
    where = os.path.join(work, f"config-{block.line}")
    os.makedirs(where)
    with open(os.path.join(where, "config.toml"), "w", encoding="utf-8") as f:
        f.write(block.text)
    os.symlink(args.test_worker, os.path.join(where, "my_worker"))
    code, out = run_bounded([args.ringmaster, "run", "config.toml", "--no-progress", "--results", "results.jsonl"],
                            where, RUN_TIMEOUT_S, f"{block.where()}: `ringmaster run` of the config")
    if code != 0:
        raise Failure(f"{block.where()}: `ringmaster run` of the config exited {code}; it printed:\n{out}")
    results = [json.loads(l) for l in open(os.path.join(where, "results.jsonl"), encoding="utf-8") if l.strip()]
    failed = [r for r in results if r.get("status") != "ok"]
    if not results or failed:
        raise Failure(f"{block.where()}: the config's jobs did not all succeed: {failed or 'no result at all'}")


# --- the tree table -------------------------------------------------------------------

def check_tree_table(args):
    """The table of "The tree" names every top-level folder, and its scripts/ row every
    script."""
    text = open(args.readme, encoding="utf-8").read()
    rows = dict(re.findall(r"^\| `([\w.-]+)/` \| (.*) \|$", text, re.M))
    try:
        files = subprocess.run(["git", "-C", args.source_dir, "ls-files"], check=True, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a checkout: what is there
        files = [os.path.relpath(os.path.join(d, f), args.source_dir)
                 for d, _, fs in os.walk(args.source_dir) for f in fs]
    folders = sorted({f.split("/")[0] for f in files if "/" in f and not f.startswith((".", "build"))})
    scripts = sorted({f.split("/")[1] for f in files if f.startswith("scripts/") and f.count("/") == 1})
    problems = [f"README.md: the table of the tree has no row `{d}/`" for d in folders if d not in rows]
    problems += [f"README.md: the tree's `scripts/` row does not name scripts/{n}" for n in scripts
                 if not re.search(rf"`{re.escape(n)}`", rows.get("scripts", ""))]
    return problems


# --- the test -------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--ringmaster", required=True)
    ap.add_argument("--test-worker", required=True)
    ap.add_argument("--cxx", default="")
    ap.add_argument("--launcher", default="")
    args = ap.parse_args()
    args.ringmaster, args.build_dir = os.path.abspath(args.ringmaster), os.path.abspath(args.build_dir)
    args.test_worker = os.path.abspath(args.test_worker)

    blocks = parse_blocks(args.readme)
    problems, cpp, plan = check_tree_table(args), [], []
    for b in blocks:
        if b.mark is None:
            problems.append(f"{b.where()}: a ```{b.lang} block with no mark: put <!-- readme-test: run | build | "
                            "run in main() | build in main() | run as config | synopsis | file NAME | same as PATH | "
                            "skip: REASON --> on the line before it")
            continue
        kind = b.mark
        if kind.startswith("skip:") and kind[5:].strip():
            continue
        if kind in ("run", "build", "run in main()", "build in main()") and b.lang in CPP_LANGS:
            cpp.append((b, kind.endswith("in main()")))
            plan.append(("cpp", b, kind.startswith("run")))
        elif kind == "synopsis" and b.lang == "":
            plan.append(("synopsis", b, None))
        elif kind == "run as config" and b.lang == "toml":
            plan.append(("config", b, None))
        elif kind == "run" and b.lang in ("", "console", "sh", "shell", "bash"):
            plan.append(("session", b, True))
        elif kind.startswith("file ") and kind[5:].strip():
            plan.append(("file", b, kind[5:].strip()))
        elif kind.startswith("same as ") and kind[8:].split()[0:1]:
            path = os.path.join(args.source_dir, kind[8:].split()[0])
            try:
                same = open(path, encoding="utf-8").read() == b.text
            except OSError as e:
                problems.append(f"{b.where()}: same as {path}: {e.strerror}")
                continue
            if not same:
                problems.append(f"{b.where()}: expected the block to be {path} word for word; it differs "
                                f"(diff it against the README)")
        else:
            problems.append(f"{b.where()}: expected a mark run, build, run in main(), build in main() (C++), "
                            f"run (a `$ ` session), run as config (TOML), synopsis, file NAME, same as PATH or skip: REASON; "
                            f"got {kind!r} on a ```{b.lang} block")
    if problems:
        print("\n".join(problems))
        return 1

    work = tempfile.mkdtemp(prefix="ringmaster-readme-")
    try:
        started = time.monotonic()
        exes = build_cpp(cpp, args, work) if cpp else {}
        print(f"readme: built {len(cpp)} C++ snippet(s) in {time.monotonic() - started:.1f} s")
        sessions = os.path.join(work, "home")
        os.makedirs(sessions)
        failures = []
        for kind, b, detail in plan:
            try:
                run_block(kind, b, detail, args, work, sessions, exes)
            except Failure as e:  # the other blocks still run: every problem at once
                failures.append(str(e))
        if failures:
            print("\n".join(failures))
            return 1
    except Failure as e:
        print(e)
        return 1
    except subprocess.TimeoutExpired as e:
        print(f"readme: timed out: {e}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    skipped = sum(1 for b in blocks if b.mark.startswith("skip:"))
    print(f"readme: {len(blocks)} blocks: {len(plan)} built, run or written, {skipped} skipped, every one marked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
