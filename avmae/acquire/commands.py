"""Command line of the acquisition stage: split a list into shards, download, merge, subsample;
``doctor`` checks what downloads need.

:func:`add_commands` adds them to the ``avmae`` CLI (``avmae download --help``). Lists are ``PATH`` or ``SPLIT=PATH`` (``train=...``,
``test=...``): the split is given to formats that carry none (AudioSet, EPIC).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avmae.acquire.lists import FORMATS
from avmae.acquire.policy import Policy


def _read_lists(specs: list[str], fmt: str, classes: list[str] | None) -> list:
    from avmae.acquire.lists import SPLITS, read_list

    clips = []
    for spec in specs:
        split, sep, path = spec.partition("=")
        if not sep or split not in SPLITS:
            split, path = "train", spec
        clips += read_list(path, fmt, split, classes)
    return clips


def cmd_download(a) -> None:
    from avmae.acquire import runtime
    from avmae.acquire.download import ClientBlocked, download
    from avmae.acquire.videos import download_videos

    if a.local is not None:
        return _register_local(a)
    if a.url_template is None:
        raise SystemExit("avmae download: --url-template is required (or --local ROOT)")
    if not a.whole_videos and (a.checksums or a.keep_videos):
        raise SystemExit("avmae download: --checksums and --keep-videos need --whole-videos")
    try:  # before any clip: a named JS runtime that is not there, malformed extractor args
        runtime.deno_path(a.js_runtime)
        runtime.extractor_args(a.extractor_args or [])
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"avmae download: {e}") from None
    policy = Policy(retries=a.retries, backoff=a.backoff, max_backoff=a.max_backoff,
                    block_after=a.block_after, sleep=a.sleep, videos_per_hour=a.videos_per_hour,
                    pace_file=a.pace_file, verify=not a.no_verify,
                    cookies=a.cookies, proxy=a.proxy, retry_unavailable=a.retry_unavailable,
                    pause=a.rate_limit_pause, max_pauses=a.max_pauses, js_runtime=a.js_runtime,
                    extractor_args=tuple(a.extractor_args or ()))
    common = {"workers": a.workers, "allow_file_urls": a.allow_file_urls,
              "clip_seconds": a.clip_seconds, "policy": policy}
    template = a.url_template.replace("{toy_media}", str(a.toy_media.resolve())) if a.toy_media else a.url_template
    args = (_read_lists(a.list, a.format, a.classes), template, a.out, a.manifest)
    try:
        if a.whole_videos:
            download_videos(*args, checksums=a.checksums, keep_videos=a.keep_videos, **common)
        else:
            download(*args, **common)
    except ClientBlocked as e:
        raise SystemExit(f"stopped: {e}") from None


def _register_local(a) -> None:
    """``avmae download --local``: register a copy on disk (avmae/acquire/local.py)."""
    from avmae.acquire.local import LocalConfigError, check_local, register

    key = a.config_key or "--local"
    try:  # before any clip: a bad pattern, a root that is not there, a tar that is not one
        local = check_local(a.local, a.layout, a.pattern, key)
    except LocalConfigError as e:
        raise SystemExit(f"avmae download: {e}") from None
    if a.whole_videos and local.layout != "videos":
        raise SystemExit(f"avmae download: --whole-videos with {key} layout {local.layout!r}: "
                         f"a local copy of whole videos is layout 'videos'")
    register(_read_lists(a.list, a.format, a.classes), local, a.out, a.manifest,
             workers=a.workers, clip_seconds=a.clip_seconds)


def cmd_publish(a) -> None:
    from avmae.acquire.shards import publish

    manifest = publish(a.work_manifest, a.manifest, a.media)
    print(f"{(manifest.status == 'ok').sum()} of {len(manifest)} clips -> {a.media}")


def cmd_split_list(a) -> None:
    from avmae.acquire.fetch import describe
    from avmae.acquire.shards import write_shards
    from avmae.io import write_json

    clips = _read_lists(a.list, a.format, a.classes)
    write_shards(clips, a.shards, a.out)
    paths = [spec.partition("=")[2] or spec for spec in a.list + (a.classes or [])]
    write_json(a.out / "sources.json", [describe(p) for p in paths])  # which exact lists were used
    print(f"{len(clips)} clips -> {a.shards} shard list(s) in {a.out}")


def cmd_fetch_list(a) -> None:
    from avmae.acquire.fetch import fetch

    print(f"{a.out}: sha256 {fetch(a.url, a.out, a.sha256)}")


def cmd_merge(a) -> None:
    from avmae.acquire.availability import footnote, write_report
    from avmae.acquire.shards import merge_manifests

    manifest = merge_manifests(a.manifests, a.out)
    print(footnote(a.dataset, write_report(manifest, a.dataset, a.report, a.ids)))


def cmd_as500k(a) -> None:
    from avmae.acquire.balance import draw_balanced
    from avmae.acquire.lists import write_clips
    from avmae.io import write_json

    clips = _read_lists(a.list, a.format, a.classes)
    subset, stats = draw_balanced(clips, a.size, seed=a.seed)
    write_clips(a.out, subset)
    write_json(a.stats, stats)
    print(f"{len(subset)} of {len(clips)} clips, class cap {stats['cap']}: {a.out}")


def cmd_doctor(a) -> None:
    from avmae.acquire.doctor import doctor

    raise SystemExit(doctor(a))


def runtime_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--js-runtime", metavar="PATH",
                   help="Deno binary for yt-dlp's YouTube challenges (default: $AVMAE_DENO, else "
                        "the deno package's binary, else deno on PATH)")
    s.add_argument("--extractor-args", action="append", metavar="IE_KEY:ARGS",
                   help="yt-dlp --extractor-args, repeatable, e.g. youtube:player_client=default,mweb")


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the acquisition commands to an argparse sub-parser collection; returns their names."""
    def lists(s, help_text):
        s.add_argument("--list", required=True, action="append", help=help_text)
        s.add_argument("--format", choices=FORMATS, default="vggsound")
        s.add_argument("--classes", action="append",
                       help="AudioSet class_labels_indices.csv, or EPIC verb=PATH and noun=PATH "
                            "(EPIC_100_{verb,noun}_classes.csv)")

    s = sub.add_parser("download", help="download the clips of a list with yt-dlp, or register "
                                        "a copy on disk (--local)")
    lists(s, "[SPLIT=]PATH, repeatable")
    s.add_argument("--url-template",
                   help="URL with {id}, e.g. https://www.youtube.com/watch?v={id}; with "
                        "--whole-videos, {id} or {path} (from --checksums); ignored with --local")
    s.add_argument("--local", metavar="ROOT", type=Path,
                   help="register a copy on disk under ROOT instead of downloading (no yt-dlp, "
                        "no network; the pacing options do not apply): clips are linked, not copied")
    s.add_argument("--layout", choices=("clips", "videos", "tar"), default="clips",
                   help="with --local: pre-cut clips, whole videos cut here, or tar shards of clips")
    s.add_argument("--pattern",
                   help="with --local: file name under ROOT, a format string with {id} and "
                        "{start}/{end} (seconds), default {id}_{start:06d}.mp4 ({id}.mp4 for videos)")
    s.add_argument("--config-key", help=argparse.SUPPRESS)  # named in --local errors (the workflow)
    s.add_argument("--toy-media", type=Path,
                   help="folder that {toy_media} in --url-template stands for (toy sets: the "
                        "command stays the same in every clone, as Snakemake's cache needs)")
    s.add_argument("--whole-videos", action="store_true",
                   help="download each video once over HTTP and cut its clips locally (EPIC)")
    s.add_argument("--checksums", type=Path,
                   help="md5.csv of the EPIC download scripts: video paths and md5 sums")
    s.add_argument("--keep-videos", action="store_true",
                   help="keep the downloaded videos after cutting (default: delete them)")
    s.add_argument("--out", required=True, type=Path, help="folder for the clips")
    s.add_argument("--manifest", required=True, type=Path, help="CSV written with one row per clip")
    s.add_argument("--allow-file-urls", action="store_true", help="allow file:// URLs (toy data)")
    s.add_argument("--clip-seconds", type=float, default=10.0,
                   help="length of clips without an end; with --whole-videos, of the context cut around each segment")
    s.add_argument("--workers", type=int, default=2, help="concurrent downloads")
    s.add_argument("--retries", type=int, default=Policy.retries, help="retries of a transient failure")
    s.add_argument("--backoff", type=float, default=Policy.backoff, help="seconds before the first retry (doubles)")
    s.add_argument("--max-backoff", type=float, default=Policy.max_backoff)
    s.add_argument("--block-after", type=int, default=Policy.block_after,
                   help="stop after this many clips in a row failed (client blocked); 0: never")
    s.add_argument("--sleep", type=float, default=Policy.sleep, help="seconds to pause after each clip, per worker")
    s.add_argument("--videos-per-hour", type=float, default=Policy.videos_per_hour,
                   help="the session's budget: clip starts an hour, over all workers (and over every "
                        "run with the same --pace-file); YouTube allows ~300 without a PO token, "
                        "~1000 with one; 0: no cap")
    s.add_argument("--pace-file", help="a file that paces every run sharing a session (cookies, "
                                       "proxy or address) to one --videos-per-hour budget")
    s.add_argument("--cookies", help="cookies.txt (Netscape format) for yt-dlp")
    s.add_argument("--proxy", help="proxy URL for yt-dlp")
    s.add_argument("--no-verify", action="store_true",
                   help="skip decoding each kept clip; the cheap check (complete file, duration, "
                        "audio and video streams) still runs")
    s.add_argument("--retry-unavailable", action="store_true",
                   help="try clips an earlier run found unavailable again")
    s.add_argument("--rate-limit-pause", type=float, default=Policy.pause,
                   help="seconds the shard pauses when rate-limited (YouTube's 'try again later', "
                        "HTTP 429) and the server names no Retry-After")
    s.add_argument("--max-pauses", type=int, default=Policy.max_pauses,
                   help="stop after this many rate-limit pauses in a row; 0: never")
    runtime_options(s)
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("doctor", help="check what downloads will use: ffmpeg, JS runtime, yt-dlp, "
                                      "plugins, cookies, proxy; --probe ID downloads one clip")
    runtime_options(s)
    s.add_argument("--cookies", help="cookies.txt (Netscape format) to check")
    s.add_argument("--proxy", help="proxy URL to check (a TCP connection to it)")
    s.add_argument("--probe", metavar="ID", help="download one section of this video id")
    s.add_argument("--probe-start", type=float, default=0.0, help="start of the probe section, seconds")
    s.add_argument("--clip-seconds", type=float, default=10.0, help="length of the probe section")
    s.add_argument("--url-template", default="https://www.youtube.com/watch?v={id}",
                   help="URL of the probe, with {id}")
    s.add_argument("--allow-file-urls", action="store_true", help="allow a file:// probe URL")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds for the proxy connection")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("publish-shard", help="link a finished shard's clips into its output folder")
    s.add_argument("--work-manifest", required=True, type=Path, help="manifest written by download")
    s.add_argument("--manifest", required=True, type=Path, help="manifest to write, with the new paths")
    s.add_argument("--media", required=True, type=Path, help="folder the ok clips are linked into")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("split-list", help="split a list into N shard lists (hash of the video id)")
    lists(s, "[SPLIT=]PATH, repeatable")
    s.add_argument("--shards", required=True, type=int)
    s.add_argument("--out", required=True, type=Path, help="folder for 00000.csv ...")
    s.set_defaults(func=cmd_split_list)

    s = sub.add_parser("fetch-list", help="download an official list file once (https:// or file://)")
    s.add_argument("--url", required=True)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--sha256", help="expected SHA-256; a mismatch writes nothing")
    s.set_defaults(func=cmd_fetch_list)

    s = sub.add_parser("merge-manifests", help="merge shard manifests; write the availability report")
    s.add_argument("manifests", nargs="*", type=Path)
    s.add_argument("--dataset", required=True)
    s.add_argument("--out", required=True, type=Path, help="merged manifest CSV")
    s.add_argument("--report", required=True, type=Path, help="availability JSON")
    s.add_argument("--ids", required=True, type=Path, help="CSV of the clips used")
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("as500k", help="draw the class-balanced AS-500K subset from AS-2M")
    lists(s, "AS-2M segment CSV ([SPLIT=]PATH)")
    s.add_argument("--size", type=int, default=508_994)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, type=Path, help="subset list (clips CSV)")
    s.add_argument("--stats", required=True, type=Path, help="class-balance statistics JSON")
    s.set_defaults(func=cmd_as500k)
    return ["fetch-list", "split-list", "download", "publish-shard", "merge-manifests", "as500k",
            "doctor"]
