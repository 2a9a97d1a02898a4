# URL lists and download: toy generation (toy profile only), then the lists are split into
# shards (one download job each, a few hundred to a few thousand clips), and the shard
# manifests are merged into the dataset's manifest and availability report.
# Ids travel only inside list files, never through wildcards or the shell.
# Helpers: common_data.smk.


# A toy set's generator is the one for its format: it writes the lists under their
# official names into lists/ (see TOY_LISTS in common.smk) and the source videos into media/.
rule toy_dataset:
    output:
        lists=directory("results/toy/{dataset}/lists"),
        media=directory(toy_media("{dataset}")),
    params:
        format=lambda w: dataset_format(w.dataset),
        options=lambda w: toy_options(w.dataset),
    threads: config["threads"]["data"]
    conda:
        "../envs/avmae.yaml"
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
    cache: "omit-software"
    conda:
        "../envs/avmae.yaml"
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
        options=lambda w: download_options(w.dataset, w.shard),
    cache: "omit-software"
    threads: config["threads"]["data"]
    # parallel downloads steer the run, not its result: a resource, so editing it reruns nothing
    resources:
        workers=config["download"]["workers"],
    conda:
        "../envs/avmae.yaml"
    log:
        "results/data/{dataset}/log/download_{shard}.log",
    shell:
        "(avmae download --format clips --list {params.list} --url-template {params.template:q}"
        " --out {params.work}/media --manifest {params.work}/manifest.csv {params.options}"
        " --workers {resources.workers}"
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
    conda:
        "../envs/avmae.yaml"
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
        size=lambda w: dataset_config(w.dataset)["as500k"]["size"],
        seed=lambda w: dataset_config(w.dataset)["as500k"]["seed"],
    cache: "omit-software"
    conda:
        "../envs/avmae.yaml"
    log:
        "results/data/{dataset}/log/as500k.log",
    shell:
        "avmae as500k {params.lists} --size {params.size} --seed {params.seed}"
        " --out {output.list} --stats {output.stats} > {log} 2>&1"
