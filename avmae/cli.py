"""The ``avmae`` command line: one subcommand per workflow step, grouped by stage.

Each Snakemake rule calls exactly one of these; they can also be run by hand. Each stage
package adds its own commands (``<stage>/commands.py``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from avmae.acquire.commands import add_commands as add_acquire
from avmae.features.commands import add_commands as add_features
from avmae.report.commands import add_commands as add_report
from avmae.toy.commands import add_commands as add_toy
from avmae.train.commands import add_commands as add_train
from avmae.zoo.commands import add_commands as add_zoo

# (stage, what it does, its commands' adder), in workflow order
STAGES = (
    ("toy", "synthetic datasets in the official list formats", add_toy),
    ("acquire", "lists, downloads, shards, availability", add_acquire),
    ("features", "log-mel spectrograms and stored frames", add_features),
    ("train", "AV-MAE pretraining and MBT finetuning on DeepSpeed", add_train),
    ("zoo", "the authors' released checkpoints: import, evaluate", add_zoo),
    ("report", "the paper's tables and figures", add_report),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avmae", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = []
    for stage, what, add in STAGES:
        names = add(sub)
        groups.append(f"  {stage} ({what}):\n    " + ", ".join(names))
    p.epilog = "commands by stage:\n" + "\n".join(groups) + "\n\n'avmae COMMAND --help' describes one."
    return p


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
