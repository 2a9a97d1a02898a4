"""What yt-dlp needs besides itself for YouTube, and where the download stage finds it.

Since yt-dlp 2025.11, YouTube's player challenges are solved by the ``yt-dlp-ejs`` scripts
run in an external JavaScript runtime; without one, formats go missing ("Requested format
is not available") or extraction fails. The locked environment installs Deno from PyPI
(the ``deno`` package ships the binary; ``deno.find_deno_bin()`` returns its path, the
environment's ``bin/deno``) and ``yt-dlp-ejs``. :func:`deno_path` picks the runtime the
downloader hands to yt-dlp (its ``js_runtimes`` option, the API form of
``--js-runtimes deno:PATH``):

1. an explicit path: ``--js-runtime PATH`` or the ``AVMAE_DENO`` environment variable; a
   path that is not an executable file is an error, never silently replaced;
2. the ``deno`` package's binary;
3. ``deno`` on ``PATH``.

PO-token providers (e.g. ``bgutil-ytdlp-pot-provider``) are optional yt-dlp plugins;
:func:`pot_providers` lists the ones yt-dlp loads. :func:`extractor_args` parses
yt-dlp's ``--extractor-args`` syntax (``youtube:player_client=default,mweb``) with
yt-dlp's own parser, so the config takes exactly what the yt-dlp docs show.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
import shutil
from dataclasses import dataclass

log = logging.getLogger(__name__)

ENV_DENO = "AVMAE_DENO"


def deno_path(explicit: str | None = None) -> str | None:
    """The Deno binary the downloader uses (see the module docstring), or None when there
    is none. An explicit path (``explicit``, else ``$AVMAE_DENO``) that is not an
    executable file raises FileNotFoundError."""
    source = "--js-runtime" if explicit else f"${ENV_DENO}"
    explicit = explicit or os.environ.get(ENV_DENO)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise FileNotFoundError(f"JS runtime {explicit!r} ({source}) is not an executable file")
        return os.path.abspath(explicit)
    with contextlib.suppress(ImportError, FileNotFoundError):
        import deno

        return deno.find_deno_bin()
    return shutil.which("deno")


@dataclass(frozen=True)
class Runtime:
    """A JS runtime as yt-dlp sees it."""

    name: str
    path: str
    version: str
    supported: bool  # yt-dlp's minimum version for the runtime


def runtime_info(path: str) -> Runtime | None:
    """Ask yt-dlp what it makes of the Deno binary at ``path`` (it runs ``deno --version``);
    None when it does not run."""
    import yt_dlp  # noqa: F401 - registers the runtimes
    from yt_dlp.globals import supported_js_runtimes

    info = supported_js_runtimes.value["deno"](path=path).info
    if info is None:
        return None
    return Runtime(info.name, info.path, info.version, bool(info.supported))


def ytdlp_js_runtimes(explicit: str | None = None) -> dict | None:
    """yt-dlp's ``js_runtimes`` option for our Deno, or None when there is none (yt-dlp then
    looks for ``deno`` itself and YouTube downloads may lack formats)."""
    path = deno_path(explicit)
    return {"deno": {"path": path}} if path else None


def version(distribution: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(distribution)
    return None


def ytdlp_version() -> str:
    from yt_dlp.version import __version__

    return __version__


def ejs_version() -> str | None:
    """Version of the ``yt-dlp-ejs`` scripts yt-dlp imports, or None when it cannot."""
    from yt_dlp.dependencies import yt_dlp_ejs

    if yt_dlp_ejs is None:
        return None
    return version("yt-dlp-ejs") or getattr(yt_dlp_ejs, "version", None) or "unknown"


def plugin_distributions() -> dict[str, str]:
    """{distribution: version} of the installed packages that ship yt-dlp plugins
    (files under ``yt_dlp_plugins/``), e.g. bgutil-ytdlp-pot-provider."""
    found = {}
    for dist in importlib.metadata.distributions():
        files = dist.files or []
        if any(str(f).startswith("yt_dlp_plugins/") for f in files):
            found[dist.metadata["Name"]] = dist.version
    return dict(sorted(found.items()))


@functools.cache
def pot_providers() -> dict[str, str]:
    """{name: version} of the PO-token providers yt-dlp loads (plugins; none is built in)."""
    from yt_dlp.extractor.youtube.pot._registry import _pot_providers
    from yt_dlp.plugins import load_all_plugins

    load_all_plugins()
    return {getattr(p, "PROVIDER_NAME", key): str(getattr(p, "PROVIDER_VERSION", "?"))
            for key, p in _pot_providers.value.items()}


def extractor_args(specs: list[str] | tuple[str, ...]) -> dict:
    """yt-dlp's ``extractor_args`` option from ``--extractor-args`` values
    (``IE_KEY:ARG=V1,V2;ARG2=V``); ValueError on a malformed one."""
    if not specs:
        return {}
    import optparse

    import yt_dlp

    argv = ["--ignore-config"]
    for spec in specs:
        argv += ["--extractor-args", spec]
    try:
        return yt_dlp.parse_options(argv).ydl_opts["extractor_args"]
    except (optparse.OptParseError, SystemExit) as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else "malformed"
        detail = detail.partition("error: ")[2] or detail  # optparse's "PROG: error: ..."
        raise ValueError(f"--extractor-args {list(specs)}: {detail}") from None
