"""The ``avmae`` command line: one subcommand per workflow stage.

Each Snakemake rule calls exactly one of these; they can also be run by hand.
Stage settings arrive as JSON (``--settings``), as the workflow resolves them from
the config, and are recorded next to each run's outputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from avmae.data.commands import add_commands
from avmae.report.commands import add_commands as add_report_commands


def _settings(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--settings is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise SystemExit("--settings must be a JSON object")
    return value


def cmd_toy(a):
    from avmae.data.toy import GENERATOR_OPTIONS, make_toy

    options = {k: getattr(a, k) for names in GENERATOR_OPTIONS.values() for k in names
               if getattr(a, k) is not None}
    try:
        make_toy(a.format, a.out, media_dir=a.media, seed=a.seed, workers=a.workers, **options)
    except ValueError as e:
        raise SystemExit(f"avmae toy: {e}") from None


def _sizes(a) -> dict:
    return dict(clip_seconds=a.clip_seconds, fps=a.fps, short_side=a.short_side,
                sample_rate=a.sample_rate, n_mels=a.n_mels, workers=a.workers,
                video_format=a.video_format, jpeg_quality=a.jpeg_quality)


def cmd_features(a):
    from avmae.data.features import extract

    extract(a.manifest, a.out, labels=a.labels, class_list=a.classes, **_sizes(a))


def cmd_features_shard(a):
    from avmae.data.features import extract_shard

    extract_shard(a.manifest, a.out, **_sizes(a))


def cmd_features_combine(a):
    from avmae.data.features import combine

    meta = combine(a.manifest, a.shards, a.out, labels=a.labels, class_list=a.classes)
    print(f"{meta['counts']} clips from {len(a.shards)} shard(s): {a.out / 'meta.json'}")


def cmd_pretrain(a):
    import torch

    from avmae.train import pretrain

    torch.set_num_threads(a.threads)
    pretrain.run(_settings(a.settings), a.features, a.out)


def cmd_finetune(a):
    import torch

    from avmae.train import finetune

    torch.set_num_threads(a.threads)
    finetune.run(_settings(a.settings), a.features, a.pretrained, a.modality, a.out, a.train_ids)


def cmd_table1(a):
    from avmae.config import PretrainRun
    from avmae.report.tables import table1, write_table

    rows = [tuple(r.split("-")) for r in a.rows]
    metrics = {}
    for path in a.metrics:
        # <run>/<dataset>_<modality>/metrics.json, run = <ds>_<size>_<enc>-<dec>_<obj>_e<N>
        run = PretrainRun.parse(Path(path).parent.parent.name)
        modality = Path(path).parent.name.rsplit("_", 1)[1]
        metrics[(run.encoder, run.decoder, modality)] = path
    meta = json.loads(Path(a.meta).read_text())
    availability = json.loads(Path(a.availability).read_text())["footnote"]
    df = table1(rows, metrics, meta.get("counts", {}), availability)
    write_table(df, a.out, "Table 1: pretraining architectures (encoder x decoder)")
    print(df.to_string(index=False))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avmae", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("toy", help="generate a synthetic dataset (mp4s + lists in the official format)")
    s.add_argument("--format", choices=("vggsound", "audioset", "epic"), default="vggsound",
                   help="which dataset to imitate (see avmae/data/toy*.py)")
    s.add_argument("--out", required=True, type=Path, help="folder for the lists and classes.json")
    s.add_argument("--media", type=Path, help="folder for the videos (default: OUT/media)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    g = s.add_argument_group("vggsound (defaults 40, 0.25)")
    g.add_argument("--clips-per-class", type=int)
    g.add_argument("--test-fraction", type=float)
    g = s.add_argument_group("audioset (defaults 200, 3, 8)")
    g.add_argument("--unbalanced", type=int, help="clips in unbalanced_train_segments.csv")
    g.add_argument("--balanced-per-class", type=int, help="balanced train: positives per class at least")
    g.add_argument("--eval-per-class", type=int, help="eval: positives per class at least")
    g = s.add_argument_group("epic (defaults 4, 2, 3, 8)")
    g.add_argument("--train-participants", type=int, help="kitchens of the train split")
    g.add_argument("--unseen-participants", type=int, help="new kitchens, in validation only")
    g.add_argument("--videos-per-participant", type=int, help="train videos per train kitchen")
    g.add_argument("--segments-per-video", type=int, help="action segments per video")
    s.set_defaults(func=cmd_toy)

    # download, split-list, merge-manifests, as500k
    add_commands(sub)

    def sizes(s):
        s.add_argument("--clip-seconds", type=float, default=10.0)
        s.add_argument("--fps", type=int, default=25)
        s.add_argument("--short-side", type=int, default=256)
        s.add_argument("--sample-rate", type=int, default=16000)
        s.add_argument("--n-mels", type=int, default=128)
        s.add_argument("--workers", type=int, default=2)
        s.add_argument("--video-format", choices=["jpeg", "array"], default="jpeg",
                       help="jpeg: frame shards (default); array: uint8 video.npy")
        s.add_argument("--jpeg-quality", type=int, default=89, help="libjpeg quality of the stored frames, 50..100")

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

    for name, helptext, func in (("pretrain", "pretrain an AV-MAE on DeepSpeed", cmd_pretrain),
                                 ("finetune", "finetune a pretrained encoder and evaluate it", cmd_finetune)):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--features", required=True, type=Path, help="feature folder")
        s.add_argument("--settings", required=True, help="JSON: seed, model and stage settings")
        s.add_argument("--out", required=True, type=Path, help="run folder")
        s.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
        if name == "finetune":
            s.add_argument("--pretrained", required=True, type=Path, help="model.pt from pretraining")
            s.add_argument("--modality", required=True, choices=["audio", "video", "av"])
            s.add_argument("--train-ids", type=Path,
                           help="clip list restricting the training clips (e.g. as500k.csv)")
        s.set_defaults(func=func)

    s = sub.add_parser("table1", help="write Table 1 (ours beside the paper's)")
    s.add_argument("--rows", nargs="+", required=True, help="encoder-decoder pairs in order")
    s.add_argument("--metrics", nargs="+", required=True, type=Path, help="finetune metrics.json files")
    s.add_argument("--meta", required=True, type=Path, help="features meta.json (clip counts)")
    s.add_argument("--availability", required=True, type=Path, help="download availability.json")
    s.add_argument("--out", required=True, type=Path, help="output prefix, e.g. results/tables/table1")
    s.set_defaults(func=cmd_table1)

    # table (every paper table), two-maes, figure-*
    add_report_commands(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
