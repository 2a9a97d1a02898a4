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
    opts = ["--format", dataset_format(name), *classes_options(name)]
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
    if "{toy_media}" in url_template(name):  # a relative path keeps the command clone-independent
        opts += ["--toy-media", toy_media(name)]
    videos = dataset_config(name).get("videos")
    if videos is not None:  # whole videos, each downloaded once, segments cut locally (EPIC)
        opts.append("--whole-videos")
        for path in checksums_file(name):
            opts += ["--checksums", path]
        if videos.get("keep"):
            opts.append("--keep-videos")
    return shlex.join(str(o) for o in opts)


def checksums_file(name):
    """[path] of a whole-video dataset's checksum list (`videos: checksums`, EPIC's md5.csv), or []."""
    entry = (dataset_config(name).get("videos") or {}).get("checksums")
    return [_local(entry)] if entry is not None else []


# A toy set's generator is the one for its format: it writes the lists under their
# official names into lists/ (see TOY_LISTS in common.smk) and the source videos into media/.
rule toy_dataset:
    output:
        lists=directory("results/toy/{dataset}/lists"),
        media=directory(toy_media("{dataset}")),
    params:
        format=lambda w: dataset_format(w.dataset),
        options=lambda w: toy_options(w.dataset),
        code=TOY_CODE,
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
        code=DATA_CODE,
    cache: "omit-software"
    log:
        "results/data/{dataset}/log/split_list.log",
    shell:
        "avmae split-list {params.lists} --shards {params.shards} --out {output} > {log} 2>&1"


# A shard downloads into its work folder, where the clips and the resume journal outlive
# a failed or killed job (a rerun skips the clips already verified); when it is done,
# publish-shard links the kept clips into the declared output. Rules marked `cache:`
# are shared between clones through Snakemake's between-workflow cache (README,
# "Sharing results"): every value they depend on, their code included, is a param.
rule download_shard:
    input:
        "results/data/{dataset}/shards/lists",
        lambda w: checksums_file(w.dataset),
    output:
        manifest="results/data/{dataset}/shards/{shard}/manifest.csv",
        media=directory("results/data/{dataset}/shards/{shard}/media"),
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        list="results/data/{dataset}/shards/lists/{shard}.csv",
        work="results/data/{dataset}/work/{shard}",
        template=lambda w: url_template(w.dataset),
        options=lambda w: download_options(w.dataset),
        code=DATA_CODE,
    cache: "omit-software"
    threads: config["threads"]["data"]
    log:
        "results/data/{dataset}/log/download_{shard}.log",
    shell:
        "(avmae download --format clips --list {params.list} --url-template {params.template:q}"
        " --out {params.work}/media --manifest {params.work}/manifest.csv {params.options}"
        " && avmae publish-shard --work-manifest {params.work}/manifest.csv"
        " --manifest {output.manifest} --media {output.media}) > {log} 2>&1"


rule download:
    input:
        lambda w: expand("results/data/{{dataset}}/shards/{shard}/manifest.csv",
                         shard=shard_names(w.dataset)),
    output:
        manifest="results/data/{dataset}/manifest.csv",
        report="results/data/{dataset}/availability.json",
        ids="results/data/{dataset}/clips_used.csv",
    params:
        code=DATA_CODE,
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
        code=DATA_CODE,
    cache: "omit-software"
    log:
        "results/data/{dataset}/log/as500k.log",
    shell:
        "avmae as500k {params.lists} --size {params.subset[size]} --seed {params.subset[seed]}"
        " --out {output.list} --stats {output.stats} > {log} 2>&1"
