"""Command line of the report stage: tables, the Sec. 4.2 baseline checkpoint, figures.

:func:`add_commands` adds them to the ``avmae`` CLI (``avmae table --help``). The
workflow resolves every table and figure from the config into JSON arguments
(``avmae.report.specs``), so each command reads only the files it is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from avmae.io import json_object as _json


def cmd_table(a) -> None:
    from avmae.report.tables import write_spec_table

    spec = _json(a.spec, "--spec")
    try:
        df = write_spec_table(spec, a.out)
    except (KeyError, ValueError) as e:
        raise SystemExit(f"avmae table {spec.get('name', '')}: {e}") from None
    print(df.to_string(index=False))


def cmd_table_zoo(a) -> None:
    from avmae.report.zoo_table import write_zoo_table

    entries = json.loads(a.entries)
    print(write_zoo_table(entries, a.out, a.profile).to_string(index=False))


def cmd_two_maes(a) -> None:
    from avmae.report.baselines import merge_unimodal_maes

    try:
        merge_unimodal_maes(a.audio, a.video, a.out, _json(a.settings, "--settings"))
    except ValueError as e:
        raise SystemExit(f"avmae two-maes: {e}") from None


def cmd_figure_reconstruction(a) -> None:
    from avmae.report.figures import load_model, reconstruction_figure, test_batch

    settings = _json(a.settings, "--settings")
    model = load_model(settings, a.model)
    batch = test_batch(a.features, settings["pretrain"], a.clips, settings["seed"])
    seeds = [a.seed * 1000 + i for i in range(batch["audio"].shape[0])]
    reconstruction_figure(model, batch, seeds, a.out, a.title)


def cmd_figure_curves(a) -> None:
    from avmae.report.figures import loss_curves_figure

    groups = _json(a.curves, "--curves")
    try:
        loss_curves_figure(groups, a.out, a.title)
    except (KeyError, ValueError) as e:
        raise SystemExit(f"avmae figure-curves: {e}") from None


def cmd_figure_epochs(a) -> None:
    from avmae.report.figures import epochs_figure

    epochs_figure(a.table, a.out, a.epoch_scale)


def add_commands(sub: argparse._SubParsersAction) -> list[str]:
    """Add the report commands to an argparse sub-parser collection; returns their names."""
    s = sub.add_parser("table", help="write one paper table (ours beside the paper's): CSV, Markdown, LaTeX")
    s.add_argument("--spec", required=True, help="JSON table spec (avmae.report.specs.table_spec)")
    s.add_argument("--out", required=True, type=Path, help="output prefix, e.g. results/tables/table2")
    s.set_defaults(func=cmd_table)

    s = sub.add_parser("table-zoo", help="the Model Zoo table: released scores beside ours on this copy")
    s.add_argument("--entries", required=True, help="JSON list: name, dataset, modality, released, metrics, "
                                                     "availability")
    s.add_argument("--profile", required=True, choices=["toy", "paper"], help="the config's profile")
    s.add_argument("--out", required=True, type=Path, help="output prefix, e.g. results/tables/zoo")
    s.set_defaults(func=cmd_table_zoo)

    s = sub.add_parser("two-maes", help="Sec. 4.2 baseline: an AudioMAE's and a VideoMAE's encoders in one "
                                        "checkpoint, to initialise MBT")
    s.add_argument("--audio", required=True, type=Path, help="model.pt of the audio-only MAE (separate encoder)")
    s.add_argument("--video", required=True, type=Path, help="model.pt of the video-only MAE (separate encoder)")
    s.add_argument("--out", required=True, type=Path, help="model.pt to write")
    s.add_argument("--settings", default="{}", help="JSON recorded in config.yaml beside it")
    s.set_defaults(func=cmd_two_maes)

    s = sub.add_parser("figure-reconstruction", help="masked input / reconstruction / original of test clips")
    s.add_argument("--model", required=True, type=Path, help="model.pt from pretraining")
    s.add_argument("--settings", required=True, help="JSON pretraining settings of the run (seed, model, pretrain)")
    s.add_argument("--features", required=True, type=Path, help="feature folder (its test clips are shown)")
    s.add_argument("--clips", required=True, type=int, help="test clips shown (tables.figures.clips)")
    s.add_argument("--seed", required=True, type=int,
                   help="mask seeds: seed * 1000 + clip (tables.figures.seed)")
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, type=Path, help="output prefix (.png and .pdf)")
    s.set_defaults(func=cmd_figure_reconstruction)

    s = sub.add_parser("figure-curves", help="training loss curves from metrics.json files")
    s.add_argument("--curves", required=True, help='JSON {panel: {line label: metrics.json}}')
    s.add_argument("--title", default="")
    s.add_argument("--out", required=True, type=Path, help="output prefix (.png and .pdf)")
    s.set_defaults(func=cmd_figure_curves)

    s = sub.add_parser("figure-epochs", help="Table 5 as accuracy against pretraining epochs")
    s.add_argument("--table", required=True, type=Path, help="results/tables/table5.csv")
    s.add_argument("--epoch-scale", required=True, type=float, help="tables.epoch_scale (for the axis label)")
    s.add_argument("--out", required=True, type=Path, help="output prefix (.png and .pdf)")
    s.set_defaults(func=cmd_figure_epochs)
    return ["table", "table-zoo", "two-maes", "figure-reconstruction", "figure-curves", "figure-epochs"]
