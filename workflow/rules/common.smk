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


def is_toy(name):
    return dataset_config(name).get("toy") is not None


def list_path(name):
    """The dataset's URL list: generated for toy sets, from the config otherwise."""
    if is_toy(name):
        return f"results/toy/{name}/vggsound.csv"
    return dataset_config(name)["list"]


def url_template(name):
    template = dataset_config(name)["url_template"]
    return template.replace("{toy_media}", os.path.abspath(f"results/toy/{name}/media"))


def features_meta(name):
    return f"results/features/{name}/meta.json"


def run_of(wildcards):
    return PretrainRun.parse(wildcards.run)


def as_json(settings):
    return json.dumps(settings, sort_keys=True)
