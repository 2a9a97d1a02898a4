"""What a workflow step's result depends on beyond its settings: the code that computes it.

:func:`code_digest` hashes the source of some modules and of every ``avmae`` module
they import, directly or not, together with the versions of the pinned packages among
those imports (torch, yt-dlp, ...). :func:`command_digest` does the same for the code an
``avmae COMMAND`` runs. The Snakefile gives every rule the digest of the commands in its
shell command as the ``params`` value ``code``, so an edit to that code reruns exactly the
rules whose commands import it, and a between-workflow cache entry is reused only by code
that would compute the same result. Only the syntax tree counts: comments, docstrings and
formatting do not.

Modules are parsed, never imported, so the workflow can call this while parsing the
Snakefile without loading torch.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# import name -> distribution, for the third-party packages whose version changes results
PINNED = {"torch": "torch", "torchaudio": "torchaudio", "torchvision": "torchvision",
          "deepspeed": "deepspeed", "yt_dlp": "yt-dlp", "imageio_ffmpeg": "imageio-ffmpeg",
          "numpy": "numpy"}


def _module_file(name: str) -> Path | None:
    """The source file of module ``avmae.x.y`` (a package: its __init__), or None."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _tree(name: str) -> ast.Module:
    path = _module_file(name)
    return _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))


def _package(name: str) -> list[str]:
    """The package a relative import in module ``name`` starts from."""
    return name.split(".") if _module_file(name).name == "__init__.py" else name.split(".")[:-1]


def _imports(nodes, package: list[str]) -> set[str]:
    """Names the syntax trees ``nodes`` import (module, and module.name for `from` imports)."""
    imports = set()
    for node in (n for root in nodes for n in ast.walk(root)):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            imports.add(module)
            imports.update(f"{module}.{alias.name}" for alias in node.names)
    return imports


@cache
def _parsed(name: str) -> tuple[str, frozenset[str]]:
    """(dump of the module's syntax tree without docstrings, names it imports)."""
    tree = _tree(name)
    return ast.dump(tree), frozenset(_imports([tree], _package(name)))


def _follow(imports, todo: list[str], packages: set[str]) -> None:
    """Queue the avmae modules among ``imports`` (with their packages) and note pinned ones."""
    for imported in imports:
        top = imported.split(".")[0]
        if top == "avmae" and _module_file(imported) is not None:
            parts = imported.split(".")   # importing a module runs its packages first
            todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        elif top in PINNED:
            packages.add(PINNED[top])


def dependencies(*modules: str) -> tuple[set[str], set[str]]:
    """(the avmae modules ``modules`` import, directly or not, themselves included;
    the pinned distributions among their imports)."""
    seen, todo, packages = set(), list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        _follow(_parsed(name)[1], todo, packages)
    return seen, packages


@cache
def code_digest(*modules: str) -> str:
    """SHA-256 (hex, 16 digits) of the ``modules``' code, the avmae code they import and
    the pinned packages' versions among their imports."""
    names, packages = dependencies(*modules)
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(f"{name}\n{_parsed(name)[0]}\n".encode())
    for dist in sorted(packages):
        h.update(f"{dist}=={metadata.version(dist)}\n".encode())
    return h.hexdigest()[:16]


# The code an ``avmae COMMAND`` runs. Each stage's ``commands.py`` registers its commands'
# functions (``set_defaults(func=...)``); a command's code is that function, the top-level
# functions and classes of its module it names (directly or not), the module's other
# top-level statements (imports, constants), and every avmae module these import, with
# their packages: the lazy imports inside the function included, the other commands of
# the same module not. ``avmae.cli``, the dispatcher that imports every stage, is left out.
@cache
def command_functions() -> dict[str, tuple[str, str]]:
    """``avmae`` command name -> (module, function name) that runs it, from the CLI's parser."""
    import argparse

    from avmae.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for name, parser in sub.choices.items():
        func = parser.get_default("func")
        found[name] = (func.__module__, func.__name__)
    return found


@cache
def _command_code(command: str) -> tuple[str, frozenset[str]]:
    """(dump of the syntax of ``command``'s function and what it reaches in its module,
    the names that code imports)."""
    if command not in command_functions():
        raise KeyError(f"no avmae command {command!r} (commands: {', '.join(sorted(command_functions()))})")
    module, func = command_functions()[command]
    tree = _tree(module)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    other = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    reached, todo = [], [func]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.append(name)
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
    nodes = other + [defs[name] for name in sorted(reached)]
    dump = f"{module}:{func}\n" + "\n".join(ast.dump(n) for n in nodes)
    parts = module.split(".")
    return dump, frozenset(_imports(nodes, _package(module)) | {".".join(parts[:i]) for i in range(1, len(parts))})


@cache
def command_dependencies(command: str) -> tuple[set[str], set[str]]:
    """(the avmae modules ``avmae COMMAND`` runs, the commands module included; the pinned
    distributions among their imports)."""
    _, imports = _command_code(command)
    todo, packages = [], set()
    _follow(imports, todo, packages)
    names, more = dependencies(*todo) if todo else (set(), set())
    return names | {command_functions()[command][0]}, packages | more


@cache
def command_digest(*commands: str, modules: tuple[str, ...] = ()) -> str:
    """SHA-256 (hex, 16 digits) of the code of ``avmae COMMAND`` for each of ``commands``
    (see :func:`command_functions`), of ``modules`` run as ``python -m`` (:func:`code_digest`'s
    part) and the pinned packages' versions among their imports."""
    h = hashlib.sha256()
    packages = set()
    for command in sorted(set(commands)):
        dump, _ = _command_code(command)
        names, found = command_dependencies(command)
        packages |= found
        h.update(f"avmae {command}\n{dump}\n".encode())
        for name in sorted(names - {command_functions()[command][0]}):
            h.update(f"{name}\n{_parsed(name)[0]}\n".encode())
    if modules:
        h.update(f"python -m {' '.join(sorted(modules))}: {code_digest(*sorted(modules))}\n".encode())
    for dist in sorted(packages):
        h.update(f"{dist}=={metadata.version(dist)}\n".encode())
    return h.hexdigest()[:16]
