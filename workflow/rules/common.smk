# Helpers shared by the rules: run names, per-run settings, dataset sources.
import json
import os
import shlex

from avmae.config import (
    RUN_CONSTRAINT,
    PretrainRun,
    finetune_settings,
    model_settings,
    pretrain_settings,
    table1_runs,
)

# Each rule's `code` param (the digest of the avmae code it runs) is set in the Snakefile.


wildcard_constraints:
    dataset="[a-z0-9]+",
    run=RUN_CONSTRAINT,
    modality="audio|video|av",


# Where the config gives datasets (or splits, modalities) as mapping keys whose order shows
# in a result (table rows, list order), that order is this one, then by name: key order in
# the config never reruns a job.
DATASET_ORDER = ("vggsound", "audioset", "epic")
SPLIT_ORDER = ("train", "test")


def dataset_order(name):
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def split_order(split):
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split or "")


def dataset_config(name):
    if name not in config["datasets"]:
        raise ValueError(f"dataset {name!r} is not defined under 'datasets' in the config")
    return config["datasets"][name]


def dataset_format(name):
    """vggsound, audioset or epic (or clips): how the dataset's lists are written."""
    return dataset_config(name).get("format", "vggsound")


def is_toy(name):
    return dataset_config(name).get("toy") is not None


def toy_lists_dir(name):
    return f"results/toy/{name}/lists"


# The lists a toy generator writes (in toy_lists_dir), per format: (split, file name);
# split None means the list carries its own (VGGSound). Same names as the official files.
TOY_LISTS = {
    "vggsound": [(None, "vggsound.csv")],
    "audioset": [("train", "balanced_train_segments.csv"),
                 ("train", "unbalanced_train_segments.csv"),
                 ("test", "eval_segments.csv")],
    "epic": [("train", "EPIC_100_train.csv"), ("test", "EPIC_100_validation.csv")],
}
TOY_CLASSES = {"audioset": [(None, "class_labels_indices.csv")],
               "epic": [("verb", "EPIC_100_verb_classes.csv"), ("noun", "EPIC_100_noun_classes.csv")]}
# what the labels of each list format are (avmae features --labels)
LABEL_KINDS = {"vggsound": "single", "audioset": "multi", "epic": "verb_noun", "clips": "single"}


def _local(entry):
    """A list entry is a path, or {path, url} (the official source a fetch rule reads)."""
    return entry["path"] if isinstance(entry, dict) else entry


def list_files(name):
    """The dataset's URL lists as (split or None, path): generated for toy sets (see
    TOY_LISTS), from `list` or `lists` in the config otherwise."""
    if is_toy(name):
        fmt = dataset_format(name)
        if fmt not in TOY_LISTS:
            raise ValueError(f"datasets.{name}: no toy generator for format {fmt!r}")
        return [(split, f"{toy_lists_dir(name)}/{file}") for split, file in TOY_LISTS[fmt]]
    return [(split, _local(entry)) for split, entry in list_entries(name)]


def list_entries(name):
    """(split or None, entry) of a downloaded dataset's `list` or `lists`, entries as the
    config gives them (a path, or {path, url})."""
    ds = dataset_config(name)
    if "list" in ds:
        return [(None, ds["list"])]
    return [(split, entry) for split, entries in sorted(ds["lists"].items(), key=lambda e: split_order(e[0]))
            for entry in (entries if isinstance(entries, list) else [entries])]


def class_entries(name):
    """(kind, entry) of a downloaded dataset's `classes`: AudioSet's one file (kind None),
    or EPIC's {verb: ..., noun: ...}; entries as the config gives them (a path, or {path, url})."""
    entry = dataset_config(name).get("classes")
    if entry is None:
        return []
    return sorted(entry.items()) if isinstance(entry, dict) and "path" not in entry else [(None, entry)]


def class_files(name):
    """(kind or None, path) of the dataset's class lists (a toy set: generated, TOY_CLASSES)."""
    if is_toy(name):
        return [(kind, f"{toy_lists_dir(name)}/{file}")
                for kind, file in TOY_CLASSES.get(dataset_format(name), [])]
    return [(kind, _local(entry)) for kind, entry in class_entries(name)]


def classes_options(name):
    """`--classes` options: PATH (AudioSet), or verb=PATH and noun=PATH (EPIC)."""
    return [o for kind, path in class_files(name)
            for o in ("--classes", f"{kind}={path}" if kind else path)]


def classes_input(name):
    """The input that provides the class lists (a toy set: its generated folder), or []."""
    if not class_files(name):
        return []
    return [toy_lists_dir(name)] if is_toy(name) else [path for _, path in class_files(name)]


def list_inputs(name):
    """Input files of the rules that read the lists (a toy set: its generated folder)."""
    if is_toy(name):
        return [toy_lists_dir(name)]
    return [path for _, path in list_files(name) + class_files(name)]


def label_kind(name):
    """single (VGGSound), multi (AudioSet) or verb_noun (EPIC), unless `labels` says."""
    return dataset_config(name).get("labels", LABEL_KINDS[dataset_format(name)])


def url_template(name):
    """The dataset's url_template; `{toy_media}` in it stands for toy_media(name)."""
    return dataset_config(name)["url_template"]


def toy_media(name):
    return f"results/toy/{name}/media"


def features_meta(name):
    return f"results/features/{name}/meta.json"


def run_of(wildcards):
    return PretrainRun.parse(wildcards.run)


# Params are canonical: settings as JSON with sorted keys, options in a fixed order, so
# the order of keys in the config never reruns a job; values that only steer execution
# (threads, worker counts, log paths) are no params (README, "Partial reruns").
def as_json(settings):
    return json.dumps(settings, sort_keys=True)


def features_options():
    """`avmae features-shard` options from `features`: every value but `workers` (the job
    decodes clips in {threads} threads)."""
    f = config["features"]
    keys = ("clip_seconds", "fps", "short_side", "sample_rate", "n_mels", "video_format", "jpeg_quality")
    return shlex.join(str(o) for key in keys for o in (f"--{key.replace('_', '-')}", f[key]))
