"""Command line of the Model Zoo: fetch and import a released Scenic checkpoint, evaluate a
released finetuned model on our test split.

``avmae import-scenic`` reads the Flax msgpack file (no JAX), infers the architecture
from its tree, checks it against the settings, maps every leaf onto our model and writes
``model.pt`` with ``import.json`` (source URL, SHA-256, the inferred architecture, the
leaf -> parameter map). Anything that does not map exactly is refused before a file is
written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avmae.io import json_object
from avmae.models.objectives import MODALITY_SETS


def cmd_fetch(a) -> None:
    from avmae.acquire.fetch import fetch
    from avmae.io import write_json

    url = a.url.replace("{toy_zoo}", str(a.toy_zoo.resolve())) if a.toy_zoo else a.url
    try:
        digest = fetch(url, a.out, a.sha256, what="the checkpoint")
    except (OSError, ValueError) as e:
        raise SystemExit(f"avmae zoo-fetch: {e}") from None
    write_json(a.record, {"url": url, "path": str(a.out), "bytes": a.out.stat().st_size, "sha256": digest,
                          "sha256_expected": a.sha256})
    print(f"{a.out}: {a.out.stat().st_size} bytes, sha256 {digest}")


def cmd_import(a) -> None:
    from avmae.zoo.importer import import_checkpoint

    try:
        head = {"head": a.head} if "head" in a else {}   # left out: import_checkpoint's default
        record = import_checkpoint(a.checkpoint, json_object(a.settings, "--settings"), a.out, kind=a.kind,
                                   modality=a.modality, url=a.url, **head)
    except ValueError as e:
        raise SystemExit(f"avmae import-scenic: {a.checkpoint}: {e}") from None
    print(f"{record['kind']} {record['architecture']} -> {a.out / 'model.pt'}")


def cmd_evaluate(a) -> None:
    import torch

    from avmae.zoo.importer import evaluate_released

    torch.set_num_threads(a.threads)
    metrics = evaluate_released(json_object(a.settings, "--settings"), a.features, a.model, a.modality, a.out)
    print({k: v for k, v in metrics.items() if k in ("top1", "mAP", "test_clips")})


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the Model Zoo commands to an argparse sub-parser collection; returns their names."""
    s = sub.add_parser("zoo-fetch", help="download a released checkpoint once (https, resumed; file:// for toys)")
    s.add_argument("--url", required=True)
    s.add_argument("--out", required=True, type=Path, help="where the checkpoint goes")
    s.add_argument("--record", required=True, type=Path, help="JSON: url, bytes, sha256")
    s.add_argument("--sha256", help="expected SHA-256; a mismatch keeps nothing")
    s.add_argument("--toy-zoo", type=Path, help="folder that {toy_zoo} in --url stands for (toy checkpoints)")
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("import-scenic", help="import a released Scenic (Flax msgpack) checkpoint as model.pt")
    s.add_argument("--checkpoint", required=True, type=Path, help="the Model Zoo's 'checkpoint' file")
    s.add_argument("--settings", required=True, help="JSON: model (and finetune.mbt for MBT) settings")
    s.add_argument("--out", required=True, type=Path, help="folder for model.pt and import.json")
    s.add_argument("--kind", choices=["avmae", "mbt"], help="expected tree (default: inferred)")
    s.add_argument("--modality", choices=tuple(MODALITY_SETS), help="MBT: the finetuned modality")
    s.add_argument("--head", choices=["single", "multi"], default=argparse.SUPPRESS,
                   help="MBT: softmax (VGGSound) or sigmoid (AudioSet) classes (default: import_checkpoint's)")
    s.add_argument("--url", help="where the checkpoint came from (recorded)")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("evaluate", help="evaluate an imported finetuned model on the test split (no training)")
    s.add_argument("--features", required=True, type=Path, help="feature folder")
    s.add_argument("--settings", required=True, help="JSON: seed, model and finetune settings")
    s.add_argument("--model", required=True, type=Path, help="model.pt of import-scenic (MBT)")
    s.add_argument("--modality", required=True, choices=tuple(MODALITY_SETS))
    s.add_argument("--out", required=True, type=Path, help="folder for metrics.json")
    s.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    s.set_defaults(func=cmd_evaluate)
    return ["zoo-fetch", "import-scenic", "evaluate"]
