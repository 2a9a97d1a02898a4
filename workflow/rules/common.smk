# Helpers shared by the rules: run names, per-run settings, dataset sources.
import json
import os

from avmae.config import (
    RUN_CONSTRAINT,
    PretrainRun,
    finetune_settings,
    pretrain_settings,
    table1_runs,
)


wildcard_constraints:
    dataset="[a-z0-9]+",
    run=RUN_CONSTRAINT,
    modality="audio|video|av",


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
TOY_CLASSES = {"audioset": "class_labels_indices.csv"}
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
    return [(split, entry) for split, entries in ds["lists"].items()
            for entry in (entries if isinstance(entries, list) else [entries])]


def classes_file(name):
    """AudioSet's class_labels_indices.csv of the dataset, or None."""
    if is_toy(name):
        file = TOY_CLASSES.get(dataset_format(name))
        return f"{toy_lists_dir(name)}/{file}" if file else None
    entry = dataset_config(name).get("classes")
    return _local(entry) if entry is not None else None


def classes_input(name):
    """The input that provides classes_file (a toy set: its generated folder), or []."""
    if classes_file(name) is None:
        return []
    return [toy_lists_dir(name)] if is_toy(name) else [classes_file(name)]


def list_inputs(name):
    """Input files of the rules that read the lists (a toy set: its generated folder)."""
    if is_toy(name):
        return [toy_lists_dir(name)]
    files = [path for _, path in list_files(name)]
    return files + ([classes_file(name)] if classes_file(name) else [])


def label_kind(name):
    """single (VGGSound), multi (AudioSet) or verb_noun (EPIC), unless `labels` says."""
    return dataset_config(name).get("labels", LABEL_KINDS[dataset_format(name)])


def url_template(name):
    template = dataset_config(name)["url_template"]
    return template.replace("{toy_media}", os.path.abspath(f"results/toy/{name}/media"))


def features_meta(name):
    return f"results/features/{name}/meta.json"


def run_of(wildcards):
    return PretrainRun.parse(wildcards.run)


def as_json(settings):
    return json.dumps(settings, sort_keys=True)
