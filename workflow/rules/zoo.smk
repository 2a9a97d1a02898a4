# The authors' Model Zoo (config `zoo`, avmae/zoo/): each released checkpoint is fetched
# once (https, resumed, SHA-256 recorded), imported into our model.pt (no JAX; refused
# unless every leaf maps), and each released finetuned model is evaluated on our copy of
# its test split with the finetuning test protocol, into results/tables/zoo.{csv,md,tex}.
# A released pretrained model stands in for a pretraining run under `zoo.stand_in`
# (run name -> model name): finetuning that run then starts from the released weights.
# The toy profile writes tiny checkpoints in the same format (avmae toy-zoo) and serves
# them as file:// URLs ({toy_zoo} in a url).

rule toy_zoo:
    input:
        meta=lambda w: sorted({features_meta(zoo_model(n)["target"]) for n in zoo_finetuned()}),
    output:
        directory(TOY_ZOO),
    params:
        models=lambda w: as_json({n: zoo_settings(n) for n in zoo_models()}),
        meta=lambda w: " ".join(sorted({f"--meta {zoo_model(n)['target']}={features_meta(zoo_model(n)['target'])}"
                                        for n in zoo_finetuned()})),
        seed=config["seed"],
    conda:
        "../envs/avmae.yaml"
    log:
        "results/toy/log/zoo.log",
    shell:
        "avmae toy-zoo --models {params.models:q} {params.meta} --seed {params.seed} --out {output} > {log} 2>&1"


rule zoo_fetch:
    input:
        lambda w: [TOY_ZOO] if "{toy_zoo}" in zoo_model(w.name)["url"] else [],
    output:
        checkpoint="results/zoo/{name}/checkpoint",
        record="results/zoo/{name}/checkpoint.json",
    params:
        url=lambda w: zoo_model(w.name)["url"],
        options=lambda w: " ".join(
            ([f"--sha256 {zoo_model(w.name)['sha256']}"] if zoo_model(w.name).get("sha256") else [])
            + ([f"--toy-zoo {TOY_ZOO}"] if "{toy_zoo}" in zoo_model(w.name)["url"] else [])),
    wildcard_constraints:
        name="[a-z0-9_]+",
    conda:
        "../envs/avmae.yaml"
    log:
        "results/zoo/{name}/log/fetch.log",
    shell:
        "avmae zoo-fetch --url {params.url:q} --out {output.checkpoint} --record {output.record}"
        " {params.options} > {log} 2>&1"


rule zoo_import:
    input:
        "results/zoo/{name}/checkpoint",
    output:
        model="results/zoo/{name}/model.pt",
        record="results/zoo/{name}/import.json",
    params:
        settings=lambda w: as_json(zoo_settings(w.name)),
        options=lambda w: (f"--kind mbt --modality {zoo_model(w.name)['modality']}"
                           f" --head {label_kind(zoo_model(w.name)['target'])}"
                           if zoo_model(w.name).get("modality") else "--kind avmae"),
        url=lambda w: zoo_model(w.name)["url"],
    wildcard_constraints:
        name="[a-z0-9_]+",
    conda:
        "../envs/avmae.yaml"
    log:
        "results/zoo/{name}/log/import.log",
    shell:
        "avmae import-scenic --checkpoint {input} --settings {params.settings:q} {params.options}"
        " --url {params.url:q} --out results/zoo/{wildcards.name} > {log} 2>&1"


rule zoo_evaluate:
    input:
        model="results/zoo/{name}/model.pt",
        meta=lambda w: features_meta(zoo_model(w.name)["target"]),
    output:
        "results/zoo/{name}/eval/metrics.json",
    params:
        settings=lambda w: as_json(zoo_settings(w.name)),
        features=lambda w: f"results/features/{zoo_model(w.name)['target']}",
        modality=lambda w: zoo_model(w.name)["modality"],
    wildcard_constraints:
        name="[a-z0-9_]+",
    threads: config["threads"]["train"]
    conda:
        "../envs/avmae.yaml"
    log:
        "results/zoo/{name}/log/evaluate.log",
    shell:
        "avmae evaluate --features {params.features} --settings {params.settings:q} --model {input.model}"
        " --modality {params.modality} --threads {threads} --out results/zoo/{wildcards.name}/eval > {log} 2>&1"


rule zoo_table:
    input:
        lambda w: [f for e in zoo_entries() for f in (e["metrics"], e["availability"])],
    output:
        csv="results/tables/zoo.csv",
        md="results/tables/zoo.md",
        tex="results/tables/zoo.tex",
    params:
        entries=lambda w: json.dumps(zoo_entries()),
        profile=config["profile"],
    conda:
        "../envs/avmae.yaml"
    log:
        "results/tables/log/zoo.log",
    shell:
        "avmae table-zoo --entries {params.entries:q} --profile {params.profile} --out results/tables/zoo > {log} 2>&1"


# Every released model imported (a refusal shows here), every finetuned one evaluated on
# this copy, and the table.
rule zoo:
    input:
        rules.zoo_table.output,
        lambda w: [f"results/zoo/{n}/import.json" for n in zoo_models()],
