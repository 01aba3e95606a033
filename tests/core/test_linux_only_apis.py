"""No Linux-only call outside the places only the linux layer reaches (issue 14: "macOS and the
BSDs run the portable layer"). Walks the AST of every product module and fails on each use of a
Linux-only name (``os.pipe2``, ``socket.SO_PEERCRED``, a ``/proc`` path, a ``prctl`` through
ctypes, …; also ``socket.SOCK_SEQPACKET``, which macOS lacks) that is neither inside
``if hasattr(module, "NAME"):`` nor in ALLOWED, where each entry says why only Linux gets there.
An ALLOWED entry that matches nothing fails too, so the list cannot rot into a blanket pass.
Nothing here runs macOS: this is what can be established on Linux."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("attachdaemon_core", "attachdaemon_django", "attachdaemon_flask")

# module -> names (or name prefixes, ending in "*") that exist only on Linux
LINUX_ONLY: dict[str, tuple[str, ...]] = {
    "os": (
        "pipe2",
        "getresuid",
        "getresgid",
        "setresuid",
        "setresgid",
        "pidfd_open",
        "memfd_create",
        "eventfd",
        "eventfd_read",
        "eventfd_write",
        "O_PATH",
        "O_TMPFILE",
        "O_DIRECT",
        "O_NOATIME",
        "sched_*",
        "splice",
        "copy_file_range",
        "posix_fadvise",
        "posix_fallocate",
        "getxattr",
        "setxattr",
        "listxattr",
        "removexattr",
        "MFD_*",
        "EFD_*",
        "SPLICE_*",
        "RWF_*",
        "P_PIDFD",
        "unshare",
        "setns",
    ),
    "time": ("CLOCK_BOOTTIME", "CLOCK_TAI"),
    "select": ("epoll", "EPOLL*"),
    "signal": ("pidfd_send_signal", "sigtimedwait", "sigwaitinfo"),
    "socket": (
        "SOCK_CLOEXEC",
        "SOCK_NONBLOCK",
        "SOCK_SEQPACKET",  # not Linux-only (the BSDs have it), but macOS's local domain has none
        "SO_PEERCRED",
        "SO_PASSCRED",
        "SO_PEERSEC",
        "SO_BINDTODEVICE",
        "SCM_CREDENTIALS",
        "MSG_CMSG_CLOEXEC",
        "MSG_NOSIGNAL",
        "MSG_CONFIRM",
        "MSG_MORE",
        "MSG_ERRQUEUE",
        "MSG_FASTOPEN",
        "AF_NETLINK",
        "TCP_USER_TIMEOUT",
    ),
    "fcntl": (
        "F_SETPIPE_SZ",
        "F_GETPIPE_SZ",
        "F_OFD_*",
        "F_ADD_SEALS",
        "F_GET_SEALS",
        "F_SEAL_*",
        "F_NOTIFY",
        "F_SETLEASE",
        "F_GETLEASE",
        "DN_*",
    ),
    "resource": (
        "prlimit",
        "RLIMIT_RTPRIO",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_SIGPENDING",
        "RLIMIT_RTTIME",
    ),
}
# libc symbols only Linux has, however they are reached (an attribute of a ctypes CDLL)
LINUX_LIBC = {
    "prctl",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "signalfd",
    "epoll_create1",
}
LINUX_PATHS = ("/proc/", "/proc", "/dev/shm")

# (module path, enclosing function or class qualname, or "<module>") -> why only Linux gets there
LINUX_LAYER = "the linux layer's (proc.Live); osproc/portable.py's Portable overrides it"
ALLOWED: dict[tuple[str, str], str] = {
    ("attachdaemon_core/osproc/layer.py", "linux_works"): "after its sys.platform linux check",
    **{
        ("attachdaemon_core/osproc/proc.py", name): LINUX_LAYER
        for name in (
            "boot_id",
            "pid_max",
            "stat",
            "exe",
            "cmdline",
            "owner_uid",
            "session_members",
            "live_sessions",
            "pidfd_open",
            "pidfd_signal",
            "has_env",
            "proc_pids",
            "started_since",
        )
    },
    ("attachdaemon_core/osproc/proc.py", "read_clocks"): (
        "proc.CLOCKS[0]; osproc/portable.py replaces it where time has no CLOCK_BOOTTIME"
    ),
    ("attachdaemon_core/osproc/spawn.py", "prctl"): (
        "called by proc.become_subreaper (the linux layer's) and the pdeathsig step, which "
        "spawn() takes only when not layer.PORTABLE"
    ),
    ("attachdaemon_core/osproc/spawn.py", "set_process_name"): "returns first unless sys.platform is linux",
    ("attachdaemon_core/osproc/usage.py", "_all_procs"): "after its layer.PORTABLE return (psutil's table)",
    ("attachdaemon_core/osproc/usage.py", "_own_sizes"): "own_usage calls it only when not layer.PORTABLE",
    ("attachdaemon_core/engine/watch.py", "Inotify.open"): "returns None on the portable layer first",
    ("attachdaemon_core/engine/watch.py", "Inotify.add"): "an Inotify exists only if Inotify.open made one",
    (
        "attachdaemon_core/engine/watch.py",
        "Inotify.remove",
    ): "an Inotify exists only if Inotify.open made one",
}


def _matches(name: str, patterns: tuple[str, ...] | set[str]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


class _Finder(ast.NodeVisitor):
    """Linux-only uses in one module: (line, enclosing qualname, what)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> module, for `import os as _os`
        self.from_names: dict[str, str] = {}  # local name -> "module.NAME" for `from os import pipe2`
        self.scope: list[str] = []
        self.guards: list[tuple[str, str]] = []  # (module, NAME) of the enclosing hasattr tests
        self.found: list[tuple[int, str, str]] = []

    def _qualname(self) -> str:
        return ".".join(self.scope) or "<module>"

    def _hit(self, node: ast.AST, module: str, name: str) -> None:
        if (module, name) not in {(self.aliases.get(m, m), n) for m, n in self.guards}:
            self.found.append((getattr(node, "lineno", 0), self._qualname(), f"{module}.{name}"))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name in LINUX_ONLY:
                self.aliases[a.asname or a.name] = a.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in LINUX_ONLY:
            for a in node.names:
                if _matches(a.name, LINUX_ONLY[node.module]):
                    self._hit(node, node.module, a.name)

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring is prose, not a path the code opens
        self.scope.append(node.name)
        for d in getattr(node, "decorator_list", []):
            self.visit(d)
        if not isinstance(node, ast.ClassDef):
            self.visit(node.args)
        self.visit_block(body)
        self.scope.pop()

    def visit_block(self, body: list[ast.stmt]) -> None:
        """Statements in order; after ``if not hasattr(m, "N"): raise`` (or return), the rest of
        the block is guarded by it."""
        pushed = 0
        for stmt in body:
            self.visit(stmt)
            guard = _early_exit_guard(stmt)
            if guard is not None:
                self.guards.append(guard)
                pushed += 1
        del self.guards[len(self.guards) - pushed :]

    def visit_Module(self, node: ast.Module) -> None:
        self.visit_block(node.body)

    visit_FunctionDef = _scoped
    visit_AsyncFunctionDef = _scoped
    visit_ClassDef = _scoped

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        guard = _hasattr_guard(node.test)
        if guard is not None:
            self.guards.append(guard)
        self.visit_block(node.body)
        if guard is not None:
            self.guards.pop()
        self.visit_block(node.orelse)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            module = self.aliases[node.value.id]
            if _matches(node.attr, LINUX_ONLY[module]):
                self._hit(node, module, node.attr)
        elif node.attr in LINUX_LIBC:
            self.found.append((node.lineno, self._qualname(), f"libc {node.attr}"))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.startswith(LINUX_PATHS):
            self.found.append((node.lineno, self._qualname(), f"path {node.value!r}"))


def _hasattr_guard(test: ast.expr) -> tuple[str, str] | None:
    """("os", "pipe2") for ``hasattr(os, "pipe2")`` (alone or first in an ``and``)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        test = test.values[0]
    if (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Name)
        and test.func.id == "hasattr"
        and len(test.args) == 2
        and isinstance(test.args[0], ast.Name)
        and isinstance(test.args[1], ast.Constant)
        and isinstance(test.args[1].value, str)
    ):
        return test.args[0].id, test.args[1].value
    return None


def _early_exit_guard(stmt: ast.stmt) -> tuple[str, str] | None:
    """("socket", "SO_PASSCRED") for ``if not hasattr(socket, "SO_PASSCRED"): raise …``."""
    if (
        isinstance(stmt, ast.If)
        and not stmt.orelse
        and isinstance(stmt.test, ast.UnaryOp)
        and isinstance(stmt.test.op, ast.Not)
        and isinstance(stmt.body[-1], (ast.Raise, ast.Return))
    ):
        return _hasattr_guard(stmt.test.operand)
    return None


def _module_docstring_free(tree: ast.Module) -> ast.Module:
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        tree.body = body[1:]
    return tree


def linux_only_uses() -> Iterator[tuple[str, int, str, str]]:
    """(module path, line, enclosing qualname, what) for every Linux-only use in the product."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            finder = _Finder()
            finder.visit(_module_docstring_free(ast.parse(path.read_text(), rel)))
            for line, qualname, what in finder.found:
                yield rel, line, qualname, what


def test_every_linux_only_call_is_reached_only_on_linux() -> None:
    unguarded = [
        f"{rel}:{line} ({qualname}): {what}"
        for rel, line, qualname, what in linux_only_uses()
        if (rel, qualname) not in ALLOWED
    ]
    assert not unguarded, (
        "Linux-only calls the portable layer (macOS, the BSDs) would reach; guard each with "
        'hasattr(module, "NAME") and a portable alternative, or add the place to ALLOWED with '
        "why only Linux gets there:\n  " + "\n  ".join(unguarded)
    )


def test_every_allowed_place_still_has_a_linux_only_use() -> None:
    used = {(rel, qualname) for rel, _line, qualname, _what in linux_only_uses()}
    assert not set(ALLOWED) - used, f"stale ALLOWED entries: {sorted(set(ALLOWED) - used)}"


def test_the_finder_sees_each_kind_of_use() -> None:
    """The walker itself: each shape of use is found, a hasattr guard and a docstring are not."""
    source = '''
"""a docstring naming /proc/self is prose"""
import os
import socket as s
from time import CLOCK_BOOTTIME
def f():
    """/proc/PID/stat in a docstring"""
    os.pipe2(0)
    s.SOCK_CLOEXEC
    os.sched_getaffinity(0)
    libc.prctl(1)
    open("/proc/self/stat")
    if hasattr(os, "pipe2"):
        os.pipe2(0)
    else:
        os.pidfd_open(1)
    if not hasattr(s, "SO_PASSCRED"):
        raise OSError
    s.SO_PASSCRED
    s.SO_PEERCRED
def g():
    s.SO_PASSCRED
'''
    finder = _Finder()
    finder.visit(_module_docstring_free(ast.parse(source)))
    assert [what for _line, _q, what in finder.found] == [
        "time.CLOCK_BOOTTIME",
        "os.pipe2",
        "socket.SOCK_CLOEXEC",
        "os.sched_getaffinity",
        "libc prctl",
        "path '/proc/self/stat'",
        "os.pidfd_open",
        "socket.SO_PEERCRED",
        "socket.SO_PASSCRED",  # (in g: the guard ended with f's block)
    ]
    assert {q for _line, q, _what in finder.found} == {"<module>", "f", "g"}
