# The authors' Model Zoo (config `zoo`, avmae/zoo/): each released checkpoint is fetched
# once (https, resumed, SHA-256 recorded), imported into our model.pt (no JAX; refused
# unless every leaf maps), and each released finetuned model is evaluated on our copy of
# its test split with the finetuning test protocol, into results/tables/zoo.{csv,md,tex}.
# A released pretrained model stands in for a pretraining run under `zoo.stand_in`
# (run name -> model name): finetuning that run then starts from the released weights.
# The toy profile writes tiny checkpoints in the same format (avmae toy-zoo) and serves
# them as file:// URLs ({toy_zoo} in a url).

TOY_ZOO = "results/toy/zoo"


def zoo_models():
    return config.get("zoo", {}).get("models", {})


def zoo_model(name):
    if name not in zoo_models():
        raise ValueError(f"zoo model {name!r} is not defined under 'zoo.models' in the config")
    return zoo_models()[name]


def zoo_finetuned():
    return [n for n, m in zoo_models().items() if m.get("modality")]


def zoo_settings(name):
    """What the model is: its run's model settings, and for a finetuned model the
    finetuning settings of its target (MBT fusion layer, bottlenecks, test protocol)."""
    m = zoo_model(name)
    run = PretrainRun.parse(m["run"])
    if m.get("modality"):
        return {**finetune_settings(config, run, m["target"]), "target": m["target"], "modality": m["modality"]}
    return pretrain_settings(config, run)


def pretrained_model(run):
    """The model.pt a finetuning of ``run`` starts from: its pretraining's, or the released
    model `zoo.stand_in` names for it, which must have the run's model settings."""
    name = config.get("zoo", {}).get("stand_in", {}).get(run)
    if name is None:
        return f"results/pretrain/{run}/model.pt"
    ours = model_settings(config, PretrainRun.parse(run))
    released = model_settings(config, PretrainRun.parse(zoo_model(name)["run"]))
    if ours != released:
        raise ValueError(f"zoo.stand_in.{run}: {name} is a model of run {zoo_model(name)['run']}, whose model "
                         f"settings differ from {run}'s ({ours} vs {released})")
    return f"results/zoo/{name}/model.pt"


rule toy_zoo:
    input:
        meta=lambda w: sorted({features_meta(zoo_model(n)["target"]) for n in zoo_finetuned()}),
    output:
        directory(TOY_ZOO),
    params:
        models=lambda w: as_json({n: zoo_settings(n) for n in zoo_models()}),
        meta=lambda w: " ".join(f"--meta {zoo_model(n)['target']}={features_meta(zoo_model(n)['target'])}"
                                for n in zoo_finetuned()),
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


def zoo_entries():
    return [{"name": n, "dataset": zoo_model(n)["target"], "modality": zoo_model(n)["modality"],
             "released": zoo_model(n).get("reported"), "metrics": f"results/zoo/{n}/eval/metrics.json",
             "availability": f"results/data/{zoo_model(n)['target']}/availability.json"}
            for n in zoo_finetuned()]


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
