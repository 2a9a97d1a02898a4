"""What a workflow step's result depends on beyond its settings: the code that computes it.

:func:`code_digest` hashes the source of some modules and of every ``avmae`` module
they import, directly or not, together with the versions of the pinned packages among
those imports (torch, yt-dlp, ...). The workflow passes it to the rules it marks for
Snakemake's between-workflow cache as a ``params`` value, so a cache entry is reused
only by code that would compute the same result, and an edit to that code reruns the
step. Only the syntax tree counts: comments, docstrings and formatting do not.

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


@cache
def _parsed(name: str) -> tuple[str, frozenset[str]]:
    """(dump of the module's syntax tree without docstrings, names it imports)."""
    path = _module_file(name)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            imports.add(module)
            imports.update(f"{module}.{alias.name}" for alias in node.names)
    return ast.dump(_strip_docstrings(tree)), frozenset(imports)


def dependencies(*modules: str) -> tuple[set[str], set[str]]:
    """(the avmae modules ``modules`` import, directly or not, themselves included;
    the pinned distributions among their imports)."""
    seen, todo, packages = set(), list(modules), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in _parsed(name)[1]:
            top = imported.split(".")[0]
            if top == "avmae" and _module_file(imported) is not None:
                parts = imported.split(".")   # importing a module runs its packages first
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            elif top in PINNED:
                packages.add(PINNED[top])
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
