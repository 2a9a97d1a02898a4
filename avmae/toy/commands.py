"""Command line of the toy stage: ``avmae toy`` runs one list format's generator.

:func:`make_toy` picks the generator: VGGSound (:mod:`avmae.toy.vggsound`), AudioSet
(:mod:`avmae.toy.audioset`: multi-label, long-tailed) or EPIC-KITCHENS-100
(:mod:`avmae.toy.epic`: verb + noun segments, unseen kitchens). All three split the
signal across modalities the same way and share :mod:`avmae.toy.media`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# format -> the generator's own options (besides out_dir, media_dir and COMMON_OPTIONS)
COMMON_OPTIONS = ("seed", "workers")
GENERATOR_OPTIONS = {
    "vggsound": ("clips_per_class", "test_fraction"),
    "audioset": ("unbalanced", "balanced_per_class", "eval_per_class"),
    "epic": ("train_participants", "unseen_participants", "videos_per_participant",
             "segments_per_video"),
}


def make_toy(fmt: str, out_dir: str | os.PathLike, media_dir: str | os.PathLike | None = None,
             **options) -> None:
    """Run the toy generator of list format ``fmt`` (vggsound, audioset or epic) with
    ``options`` (its own, seed, workers; those left out keep the generator's defaults);
    options that belong to another generator are an error naming them."""
    if fmt not in GENERATOR_OPTIONS:
        raise ValueError(f"no toy generator for format {fmt!r}; expected one of "
                         f"{', '.join(GENERATOR_OPTIONS)}")
    foreign = sorted(set(options) - set(GENERATOR_OPTIONS[fmt]) - set(COMMON_OPTIONS))
    if foreign:
        raise ValueError(f"option(s) {', '.join(foreign)} do not apply to the {fmt} toy "
                         f"generator (its options: {', '.join(GENERATOR_OPTIONS[fmt])})")
    if fmt == "vggsound":
        from avmae.toy.vggsound import make_toy_vggsound as generate
    elif fmt == "audioset":
        from avmae.toy.audioset import make_toy_audioset as generate
    else:
        from avmae.toy.epic import make_toy_epic as generate
    generate(out_dir, media_dir=media_dir, **options)


def cmd_toy(a) -> None:
    given = (*COMMON_OPTIONS, *(k for names in GENERATOR_OPTIONS.values() for k in names))
    options = {k: getattr(a, k) for k in given if getattr(a, k) is not None}
    try:
        make_toy(a.format, a.out, media_dir=a.media, **options)
    except ValueError as e:
        raise SystemExit(f"avmae toy: {e}") from None


def cmd_toy_zoo(a) -> None:
    import json

    from avmae.features.labels import LabelSpace
    from avmae.io import json_object
    from avmae.toy.zoo import write_model

    models = json_object(a.models, "--models")
    classes = {}
    for spec in a.meta or []:
        dataset, _, path = spec.partition("=")
        classes[dataset] = LabelSpace.from_meta(json.loads(Path(path).read_text()), path).num_classes
    seed = {} if a.seed is None else {"seed": a.seed}   # left out: write_model's default
    for name, model in models.items():
        write_model(model, classes.get(model.get("target")), a.out / name / "checkpoint", **seed)
        print(f"{a.out / name / 'checkpoint'}")


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add ``toy`` and ``toy-zoo`` to an argparse sub-parser collection; returns the names added."""
    s = sub.add_parser("toy", help="generate a synthetic dataset (mp4s + lists in the official format)")
    s.add_argument("--format", choices=tuple(GENERATOR_OPTIONS), default="vggsound",
                   help="which dataset to imitate (see avmae/toy/)")
    s.add_argument("--out", required=True, type=Path, help="folder for the lists and classes.json")
    s.add_argument("--media", type=Path, help="folder for the videos (default: OUT/media)")
    # no defaults here: an option left out is the generator's (make_toy_vggsound, ...)
    s.add_argument("--seed", type=int)
    s.add_argument("--workers", type=int, help="videos encoded at once")
    g = s.add_argument_group("vggsound")
    g.add_argument("--clips-per-class", type=int)
    g.add_argument("--test-fraction", type=float)
    g = s.add_argument_group("audioset")
    g.add_argument("--unbalanced", type=int, help="clips in unbalanced_train_segments.csv")
    g.add_argument("--balanced-per-class", type=int, help="balanced train: positives per class at least")
    g.add_argument("--eval-per-class", type=int, help="eval: positives per class at least")
    g = s.add_argument_group("epic")
    g.add_argument("--train-participants", type=int, help="kitchens of the train split")
    g.add_argument("--unseen-participants", type=int, help="new kitchens, in validation only")
    g.add_argument("--videos-per-participant", type=int, help="train videos per train kitchen")
    g.add_argument("--segments-per-video", type=int, help="action segments per video")
    s.set_defaults(func=cmd_toy)

    s = sub.add_parser("toy-zoo", help="tiny random checkpoints in the Model Zoo's format (Flax msgpack)")
    s.add_argument("--models", required=True, help="JSON {name: {model, finetune?, target?, modality?}}")
    s.add_argument("--meta", action="append", help="DATASET=features meta.json: class counts of finetuned models")
    s.add_argument("--seed", type=int, help="weights' seed (default: write_model's)")
    s.add_argument("--out", required=True, type=Path, help="folder: OUT/<name>/checkpoint")
    s.set_defaults(func=cmd_toy_zoo)
    return ["toy", "toy-zoo"]
