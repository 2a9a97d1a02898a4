"""Command line of the feature stage: one manifest at once, or shard by shard then joined.

:func:`add_commands` adds them to the ``avmae`` CLI (``avmae features --help``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


SIZE_OPTIONS = ("clip_seconds", "fps", "short_side", "sample_rate", "n_mels", "workers", "video_format",
                "jpeg_quality")


def _sizes(a) -> dict:
    """The size options given; the others keep :func:`~avmae.features.extract.extract_shard`'s defaults."""
    return {key: getattr(a, key) for key in SIZE_OPTIONS if hasattr(a, key)}


def cmd_features(a) -> None:
    from avmae.features.extract import extract

    extract(a.manifest, a.out, labels=a.labels, class_list=a.classes, **_sizes(a))


def cmd_features_shard(a) -> None:
    from avmae.features.extract import extract_shard

    extract_shard(a.manifest, a.out, **_sizes(a))


def cmd_features_combine(a) -> None:
    from avmae.features.extract import combine

    meta = combine(a.manifest, a.shards, a.out, labels=a.labels, class_list=a.classes)
    print(f"{meta['counts']} clips from {len(a.shards)} shard(s): {a.out / 'meta.json'}")


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the feature commands to an argparse sub-parser collection; returns their names."""
    def sizes(s):
        # no defaults here: a size left out is extract_shard's (the workflow passes every one)
        g = s.add_argument_group("sizes", "defaults: those of avmae.features.extract.extract_shard")
        unset = argparse.SUPPRESS
        g.add_argument("--clip-seconds", type=float, default=unset)
        g.add_argument("--fps", type=int, default=unset)
        g.add_argument("--short-side", type=int, default=unset, help="short side of the stored frames")
        g.add_argument("--sample-rate", type=int, default=unset)
        g.add_argument("--n-mels", type=int, default=unset)
        g.add_argument("--workers", type=int, default=unset, help="clips decoded at once")
        g.add_argument("--video-format", choices=["jpeg", "array"], default=unset,
                       help="jpeg: frame shards; array: uint8 video.npy")
        g.add_argument("--jpeg-quality", type=int, default=unset, help="libjpeg quality of the stored frames, 50..100")

    def label_kind(s):
        s.add_argument("--labels", choices=("single", "multi", "verb_noun"), default="single",
                       help="label kind: single (VGGSound), multi (AudioSet), verb_noun (EPIC)")
        s.add_argument("--classes", action="append",
                       help="AudioSet class_labels_indices.csv (class order), or EPIC verb=PATH "
                            "and noun=PATH (EPIC_100_{verb,noun}_classes.csv: head sizes, names)")

    s = sub.add_parser("features", help="decode clips to log-mel spectrograms and 25 fps frames")
    s.add_argument("--manifest", required=True, type=Path, help="download manifest")
    s.add_argument("--out", required=True, type=Path, help="feature folder")
    sizes(s)
    label_kind(s)
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("features-shard", help="features of one download shard (then features-combine)")
    s.add_argument("--manifest", required=True, type=Path, help="the shard's download manifest")
    s.add_argument("--out", required=True, type=Path, help="the shard's feature folder")
    sizes(s)
    s.set_defaults(func=cmd_features_shard)

    s = sub.add_parser("features-combine", help="join feature shards: labels, statistics, meta.json")
    s.add_argument("--manifest", required=True, type=Path, help="the dataset's merged download manifest")
    s.add_argument("--shards", required=True, nargs="+", type=Path, help="feature shard folders")
    s.add_argument("--out", required=True, type=Path, help="feature folder (meta.json, {split}/index.csv)")
    label_kind(s)
    s.set_defaults(func=cmd_features_combine)
    return ["features", "features-shard", "features-combine"]
