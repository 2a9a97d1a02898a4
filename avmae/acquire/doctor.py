"""``avmae doctor``: what the download stage will use, and what is missing.

One line per check, ``NAME  STATE  DETAIL``, STATE one of ``ok``, ``MISSING`` (required
and absent), ``FAILED`` (given but not working) or ``-`` (optional and not set up):

- ffmpeg: the binary of :func:`avmae.ffmpeg.ffmpeg_exe` and its version;
- js runtime: the Deno binary yt-dlp gets (:func:`avmae.acquire.runtime.deno_path`), as
  yt-dlp sees it (version, supported);
- yt-dlp, yt-dlp-ejs: versions (EJS: the challenge-solver scripts YouTube needs);
- po-token: PO-token provider plugins yt-dlp loads (optional; packages shipping yt-dlp
  plugins are listed too);
- cookies: ``--cookies FILE`` readable as a Netscape cookie file, and how many cookies it
  holds for youtube.com;
- proxy: ``--proxy URL`` reachable (a TCP connection, ``--timeout`` seconds);
- probe: with ``--probe ID``, one real section download, verified as the download
  stage verifies clips, with the class of its error when it fails.

The exit status is 1 when a required part is missing or a given one fails, else 0.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from avmae.acquire import runtime

MARKS = {"ok": "ok", "missing": "MISSING", "failed": "FAILED", "none": "-"}
PROXY_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # ok, missing, failed, none (see MARKS)
    detail: str

    @property
    def problem(self) -> bool:
        return self.state in ("missing", "failed")

    def line(self) -> str:
        return f"{self.name:<12} {MARKS[self.state]:<8} {self.detail}"


def check_ffmpeg() -> Check:
    from avmae.ffmpeg import ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        return Check("ffmpeg", "missing", f"{e} (cuts every clip; set AVMAE_FFMPEG or reinstall imageio-ffmpeg)")
    words = (out.stdout.splitlines() or [""])[0].split()
    version = words[2] if words[:2] == ["ffmpeg", "version"] and len(words) > 2 else "unknown version"
    return Check("ffmpeg", "ok", f"{version} at {exe}")


def check_js_runtime(explicit: str | None) -> Check:
    need = "YouTube downloads need it (yt-dlp solves YouTube's challenges in it)"
    try:
        path = runtime.deno_path(explicit)
    except FileNotFoundError as e:
        return Check("js runtime", "missing", f"{e}; {need}")
    if path is None:
        return Check("js runtime", "missing",
                     f"no Deno: not ${runtime.ENV_DENO}, not the deno package (requirements.lock "
                     f"pins it), not deno on PATH; {need}")
    info = runtime.runtime_info(path)
    if info is None:
        return Check("js runtime", "missing", f"{path} does not run ('deno --version' failed); {need}")
    if not info.supported:
        return Check("js runtime", "failed", f"deno {info.version} at {path} is older than yt-dlp supports")
    return Check("js runtime", "ok", f"deno {info.version} at {path}")


def check_ytdlp() -> list[Check]:
    checks = [Check("yt-dlp", "ok", runtime.ytdlp_version())]
    ejs = runtime.ejs_version()
    checks.append(Check("yt-dlp-ejs", "ok", ejs) if ejs else Check(
        "yt-dlp-ejs", "missing", "not installed: YouTube's challenges cannot be solved "
                                 "(install the locked environment: yt-dlp[default] brings it)"))
    return checks


def check_pot() -> Check:
    providers = runtime.pot_providers()
    packages = runtime.plugin_distributions()
    shipped = f"; plugin packages: {', '.join(f'{k} {v}' for k, v in packages.items())}" if packages else ""
    if providers:
        return Check("po-token", "ok", ", ".join(f"{k} {v}" for k, v in providers.items()) + shipped)
    return Check("po-token", "none", "no PO-token provider plugin (optional: e.g. bgutil-ytdlp-pot-provider "
                                     "raises YouTube's per-session limit; docs/acquisition.md)" + shipped)


def check_cookies(path: str | None) -> Check:
    if not path:
        return Check("cookies", "none", "none given (--cookies FILE: needed when YouTube asks "
                                        "\"Sign in to confirm you're not a bot\")")
    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar(path)
    try:
        jar.load()
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return Check("cookies", "failed", f"{path}: not readable as a Netscape cookies.txt ({e})")
    cookies = list(jar)
    youtube = [c for c in cookies if c.domain.lstrip(".").endswith("youtube.com")]
    now = time.time()
    expired = sum(1 for c in youtube if c.expires is not None and c.expires < now)
    detail = f"{path}: {len(cookies)} cookies, {len(youtube)} for youtube.com"
    if expired:
        detail += f" ({expired} expired)"
    if not youtube:
        detail += " (none for youtube.com: YouTube will see no session)"
    return Check("cookies", "ok", detail)


def check_proxy(url: str | None, timeout: float) -> Check:
    if not url:
        return Check("proxy", "none", "none given (--proxy URL)")
    parts = urllib.parse.urlparse(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or PROXY_PORTS.get(parts.scheme)
    except ValueError as e:
        return Check("proxy", "failed", f"{url}: {e}")
    if not parts.hostname or port is None:
        return Check("proxy", "failed", f"{url}: no host or port (expected e.g. socks5://HOST:PORT)")
    t0 = time.monotonic()
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as e:
        return Check("proxy", "failed", f"{parts.hostname}:{port} not reachable ({e or type(e).__name__})")
    return Check("proxy", "ok", f"{parts.scheme}://{parts.hostname}:{port} reachable "
                                f"(connected in {1000 * (time.monotonic() - t0):.0f} ms)")


def probe(a) -> Check:
    """One section download of ``a.probe`` with the download stage's fetcher and verification."""
    from avmae.acquire.download import (
        VALID_ID,
        Policy,
        _Fetcher,
        check_template,
        error_kind,
        one_line,
        verified,
    )
    from avmae.acquire.lists import Clip

    if not VALID_ID.fullmatch(a.probe):
        return Check("probe", "failed", f"{a.probe!r} is not a video id ([A-Za-z0-9_-]{{1,64}})")
    try:
        check_template(a.url_template, a.allow_file_urls)
    except ValueError as e:
        return Check("probe", "failed", str(e))
    policy = Policy(cookies=a.cookies, proxy=a.proxy, js_runtime=a.js_runtime,
                    extractor_args=tuple(a.extractor_args or ()))
    clip, end = Clip(a.probe, a.probe_start, "", "train"), a.probe_start + a.clip_seconds
    url = a.url_template.replace("{id}", a.probe)
    out = Path(tempfile.mkdtemp(prefix="avmae-probe-")).resolve()
    t0 = time.monotonic()
    try:
        fetcher = _Fetcher(out, a.allow_file_urls, policy)
        try:
            path = fetcher.fetch(clip, url, end)
        except Exception as e:  # noqa: BLE001 - reported, with its class
            reason = one_line(e)
            kind = error_kind(reason)
            return Check("probe", "failed", f"{url}: {kind.cls} ({kind.what}): {reason}")
        finally:
            fetcher.close()
        size = path.stat().st_size
        status, _, reason, duration = verified(path, a.clip_seconds, policy)
    except (ValueError, FileNotFoundError) as e:  # bad --extractor-args / --js-runtime
        return Check("probe", "failed", str(e))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    took = time.monotonic() - t0
    if status != "ok":
        return Check("probe", "failed", f"{url}: {status}: {reason}")
    return Check("probe", "ok", f"{url} [{a.probe_start:g}, {end:g}) s: {duration:.2f} s clip, "
                                f"{size / 1e6:.2f} MB in {took:.1f} s")


def doctor(a) -> int:
    """Print the checks; return the exit status (1 when something required is missing)."""
    checks = [check_ffmpeg(), check_js_runtime(a.js_runtime), *check_ytdlp(), check_pot()]
    try:
        args = runtime.extractor_args(a.extractor_args or [])
        checks.append(Check("extractor", "ok" if args else "none",
                            f"{args}" if args else "no --extractor-args (yt-dlp's default clients)"))
    except ValueError as e:
        checks.append(Check("extractor", "failed", str(e)))
    checks += [check_cookies(a.cookies), check_proxy(a.proxy, a.timeout)]
    checks.append(probe(a) if a.probe else Check("probe", "none", "not asked (--probe ID downloads one clip)"))
    for check in checks:
        print(check.line())
    problems = [c.name for c in checks if c.problem]
    print(f"doctor: {len(problems)} problem(s): {', '.join(problems)}" if problems
          else "doctor: ready (downloads have what they need)", flush=True)
    return 1 if problems else 0
