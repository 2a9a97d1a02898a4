"""Command line of the training stage: pretraining and finetuning on DeepSpeed.

:func:`add_commands` adds them to the ``avmae`` CLI (``avmae pretrain --help``). Settings
arrive as JSON, as the workflow resolves them from the config, and are recorded next to
each run's outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from avmae.io import json_object
from avmae.models.objectives import MODALITY_SETS


def cmd_pretrain(a) -> None:
    import torch

    from avmae.train import pretrain

    torch.set_num_threads(a.threads)
    pretrain.run(json_object(a.settings, "--settings"), a.features, a.out)


def cmd_finetune(a) -> None:
    import torch

    from avmae.train import finetune

    torch.set_num_threads(a.threads)
    finetune.run(json_object(a.settings, "--settings"), a.features, a.pretrained, a.modality, a.out,
                 a.train_ids)


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add ``pretrain`` and ``finetune`` to an argparse sub-parser collection; returns their names."""
    for name, helptext, func in (("pretrain", "pretrain an AV-MAE on DeepSpeed", cmd_pretrain),
                                 ("finetune", "finetune a pretrained encoder and evaluate it", cmd_finetune)):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--features", required=True, type=Path, help="feature folder")
        s.add_argument("--settings", required=True, help="JSON: seed, model and stage settings")
        s.add_argument("--out", required=True, type=Path, help="run folder")
        s.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
        if name == "finetune":
            s.add_argument("--pretrained", required=True, type=Path, help="model.pt from pretraining")
            s.add_argument("--modality", required=True, choices=tuple(MODALITY_SETS))
            s.add_argument("--train-ids", type=Path,
                           help="clip list restricting the training clips (e.g. as500k.csv)")
        s.set_defaults(func=func)
    return ["pretrain", "finetune"]
