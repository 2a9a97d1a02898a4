# URL lists and download: toy generation (toy profile only), then the list is split into
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


def list_args(name):
    """--list arguments: the toy list, `list: PATH` or `lists: {split: PATH}`."""
    if is_toy(name) or "list" in dataset_config(name):
        return [list_path(name)]
    return [f"{split}={path}" for split, path in dataset_config(name)["lists"].items()]


def list_inputs(name):
    return [arg.partition("=")[2] or arg for arg in list_args(name)]


def list_options(name):
    ds = dataset_config(name)
    opts = ["--format", ds.get("format", "vggsound")]
    if "classes" in ds:
        opts += ["--classes", ds["classes"]]
    for arg in list_args(name):
        opts += ["--list", arg]
    return shlex.join(opts)


def download_options(name):
    dl = config["download"]
    opts = ["--clip-seconds", dl["clip_seconds"], "--workers", dl["workers"]]
    for key in PACING:
        if dl.get(key) is not None:
            opts += [f"--{key.replace('_', '-')}", dl[key]]
    if is_toy(name):
        opts.append("--allow-file-urls")
    return shlex.join(str(o) for o in opts)


rule toy_dataset:
    output:
        list="results/toy/{dataset}/vggsound.csv",
        media=directory("results/toy/{dataset}/media"),
    params:
        toy=lambda w: dataset_config(w.dataset)["toy"],
        out="results/toy/{dataset}",
    threads: config["threads"]["data"]
    log:
        "results/toy/{dataset}/log/toy.log",
    shell:
        "avmae toy --out {params.out} --clips-per-class {params.toy[clips_per_class]}"
        " --test-fraction {params.toy[test_fraction]} --seed {params.toy[seed]}"
        " --workers {threads} > {log} 2>&1"


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
