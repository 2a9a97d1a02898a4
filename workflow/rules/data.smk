# URL lists and download: toy generation (toy profile only), then the lists are split into
# shards (one download job each, a few hundred to a few thousand clips), and the shard
# manifests are merged into the dataset's manifest and availability report.
# Ids travel only inside list files, never through wildcards or the shell.
import shlex

# download options passed through from config["download"] when set (else the CLI's polite defaults)
PACING = ("retries", "backoff", "max_backoff", "block_after", "sleep", "rate", "cookies", "proxy")


def n_shards(name):
    return dataset_config(name).get("shards", config["download"].get("shards", 1))


def shard_names(name):
    return [f"{i:05d}" for i in range(n_shards(name))]


def list_args(name, splits=None):
    """--list arguments, [SPLIT=]PATH (see list_files); only `splits` when given."""
    return [f"{split}={path}" if split else path for split, path in list_files(name)
            if splits is None or split in splits]


def list_options(name, splits=None):
    opts = ["--format", dataset_format(name)]
    if classes_file(name):
        opts += ["--classes", classes_file(name)]
    for arg in list_args(name, splits):
        opts += ["--list", arg]
    return shlex.join(opts)


def toy_options(name):
    """The dataset's `toy` settings as `avmae toy` options (--clips-per-class 40 ...)."""
    toy = dataset_config(name)["toy"]
    return shlex.join(str(o) for key in sorted(toy) for o in (f"--{key.replace('_', '-')}", toy[key]))


def download_options(name):
    dl = config["download"]
    opts = ["--clip-seconds", dl["clip_seconds"], "--workers", dl["workers"]]
    for key in PACING:
        if dl.get(key) is not None:
            opts += [f"--{key.replace('_', '-')}", dl[key]]
    if is_toy(name) or url_template(name).startswith("file:"):  # generated or local copies
        opts.append("--allow-file-urls")
    return shlex.join(str(o) for o in opts)


# A toy set's generator is the one for its format: it writes the lists under their
# official names into lists/ (see TOY_LISTS in common.smk) and the source videos into media/.
rule toy_dataset:
    output:
        lists=directory("results/toy/{dataset}/lists"),
        media=directory("results/toy/{dataset}/media"),
    params:
        format=lambda w: dataset_format(w.dataset),
        options=lambda w: toy_options(w.dataset),
    threads: config["threads"]["data"]
    log:
        "results/toy/{dataset}/log/toy.log",
    shell:
        "avmae toy --format {params.format} --out {output.lists} --media {output.media}"
        " {params.options} --workers {threads} > {log} 2>&1"


rule split_list:
    input:
        lambda w: list_inputs(w.dataset),
    output:
        directory("results/data/{dataset}/shards/lists"),
    params:
        lists=lambda w: list_options(w.dataset),
        shards=lambda w: n_shards(w.dataset),
    log:
        "results/data/{dataset}/log/split_list.log",
    shell:
        "avmae split-list {params.lists} --shards {params.shards} --out {output} > {log} 2>&1"


# Clip files and the resume journal live beside the declared output, so a failed or
# killed job keeps them: a rerun skips the clips already verified.
rule download_shard:
    input:
        "results/data/{dataset}/shards/lists",
    output:
        manifest="results/data/{dataset}/shards/{shard}/manifest.csv",
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        list="results/data/{dataset}/shards/lists/{shard}.csv",
        media="results/data/{dataset}/shards/{shard}/media",
        template=lambda w: url_template(w.dataset),
        options=lambda w: download_options(w.dataset),
    threads: config["threads"]["data"]
    log:
        "results/data/{dataset}/log/download_{shard}.log",
    shell:
        "avmae download --format clips --list {params.list} --url-template {params.template:q}"
        " --out {params.media} --manifest {output.manifest} {params.options} > {log} 2>&1"


rule download:
    input:
        lambda w: expand("results/data/{{dataset}}/shards/{shard}/manifest.csv",
                         shard=shard_names(w.dataset)),
    output:
        manifest="results/data/{dataset}/manifest.csv",
        report="results/data/{dataset}/availability.json",
        ids="results/data/{dataset}/clips_used.csv",
    log:
        "results/data/{dataset}/log/merge.log",
    shell:
        "avmae merge-manifests {input} --dataset {wildcards.dataset} --out {output.manifest}"
        " --report {output.report} --ids {output.ids} > {log} 2>&1"


# AS-500K: the class-capped subset of the training lists (AS-2M) that AudioSet finetuning
# uses (balance.py has the recipe); only for datasets with an `as500k` entry.
rule as500k:
    input:
        lambda w: list_inputs(w.dataset),
    output:
        list="results/data/{dataset}/as500k.csv",
        stats="results/data/{dataset}/as500k_stats.json",
    params:
        lists=lambda w: list_options(w.dataset, splits=("train",)),
        subset=lambda w: dataset_config(w.dataset)["as500k"],
    log:
        "results/data/{dataset}/log/as500k.log",
    shell:
        "avmae as500k {params.lists} --size {params.subset[size]} --seed {params.subset[seed]}"
        " --out {output.list} --stats {output.stats} > {log} 2>&1"
