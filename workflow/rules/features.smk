# Feature extraction: log-mel spectrograms (arrays) and 25 fps frames (JPEG shards or arrays),
# one job per download shard, then one that joins them.
# Labels follow the dataset's format: single (VGGSound), multi-hot (AudioSet, in the order
# of class_labels_indices.csv) or verb + noun (EPIC); see avmae/features/labels.py.


# One job per download shard, clips decoded in parallel threads within it.
rule features_shard:
    input:
        manifest="results/data/{dataset}/shards/{shard}/manifest.csv",
        media="results/data/{dataset}/shards/{shard}/media",
    output:
        directory("results/features/{dataset}/shards/{shard}"),
    wildcard_constraints:
        shard=r"\d{5}",
    params:
        options=features_options(),
    cache: "omit-software"
    threads: config["threads"]["data"]
    conda:
        "../envs/avmae.yaml"
    log:
        "results/features/{dataset}/log/features_{shard}.log",
    shell:
        "avmae features-shard --manifest {input.manifest} --out {output} {params.options}"
        " --workers {threads} > {log} 2>&1"


# Joins the shards without copying them: labels (from every row of the dataset's
# manifest), train-split normalisation statistics, meta.json.
rule features:
    input:
        shards=lambda w: expand("results/features/{{dataset}}/shards/{shard}", shard=shard_names(w.dataset)),
        manifest="results/data/{dataset}/manifest.csv",
        classes=lambda w: classes_input(w.dataset),
    output:
        meta="results/features/{dataset}/meta.json",
    params:
        out="results/features/{dataset}",
        labels=lambda w: label_options(w.dataset),
    conda:
        "../envs/avmae.yaml"
    log:
        "results/features/{dataset}/log/features.log",
    shell:
        "avmae features-combine --manifest {input.manifest} --shards {input.shards}"
        " --out {params.out} {params.labels} > {log} 2>&1"
