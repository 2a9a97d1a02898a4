# Figures (results/figures/*.{png,pdf}): reconstructions of the Table 2 models, pretraining
# and finetuning loss curves, and Table 5 as accuracy against pretraining epochs.
from avmae.config import default_run
from avmae.report.specs import OBJECTIVE_LABELS, finetune_metrics


def figure_files(*names):
    return [f"results/figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]


def table2_runs():
    t = config["tables"]["table2"]
    return {o: default_run(config, t["encoder"], t["decoder"], o) for o in t["objectives"]}


def figure_settings():
    return config["tables"].get("figures", {})


rule figure_reconstruction:
    input:
        model=lambda w: f"results/pretrain/{table2_runs()[w.objective].name}/model.pt",
        meta=features_meta(config["pretrain"]["dataset"]),
    output:
        figure_files("reconstruction_{objective}"),
    params:
        settings=lambda w: as_json(pretrain_settings(config, table2_runs()[w.objective])),
        features=lambda w, input: os.path.dirname(input.meta),
        clips=figure_settings().get("clips", 2),
        seed=figure_settings().get("seed", 0),
        title=lambda w: OBJECTIVE_LABELS[w.objective],
    wildcard_constraints:
        objective="|".join(OBJECTIVE_LABELS),
    log:
        "results/figures/log/reconstruction_{objective}.log",
    shell:
        "avmae figure-reconstruction --model {input.model} --settings {params.settings:q}"
        " --features {params.features} --clips {params.clips} --seed {params.seed}"
        " --title {params.title:q} --out results/figures/reconstruction_{wildcards.objective} > {log} 2>&1"


def pretrain_curves():
    t1 = {f"{r.encoder}-{r.decoder}": f"results/pretrain/{r.name}/metrics.json" for r in table1_runs(config)}
    t2 = {OBJECTIVE_LABELS[o]: f"results/pretrain/{r.name}/metrics.json" for o, r in table2_runs().items()}
    return {"Table 1: encoder-decoder": t1, "Table 2: objectives": t2}


def finetune_curves():
    target = config["pretrain"]["dataset"]
    return {label: {OBJECTIVE_LABELS[o]: finetune_metrics(r, target, m) for o, r in table2_runs().items()}
            for m, label in (("audio", "audio-only"), ("video", "video-only"), ("av", "audiovisual"))}


def curve_files(groups):
    return list(dict.fromkeys(p for lines in groups.values() for p in lines.values()))


rule figure_pretrain_curves:
    input:
        curve_files(pretrain_curves()),
    output:
        figure_files("pretrain_curves"),
    params:
        curves=as_json(pretrain_curves()),
    log:
        "results/figures/log/pretrain_curves.log",
    shell:
        "avmae figure-curves --curves {params.curves:q} --title 'Pretraining loss'"
        " --out results/figures/pretrain_curves > {log} 2>&1"


rule figure_finetune_curves:
    input:
        curve_files(finetune_curves()),
    output:
        figure_files("finetune_curves"),
    params:
        curves=as_json(finetune_curves()),
        title=f"Finetuning loss of the Table 2 models (on {config['pretrain']['dataset']})",
    log:
        "results/figures/log/finetune_curves.log",
    shell:
        "avmae figure-curves --curves {params.curves:q} --title {params.title:q}"
        " --out results/figures/finetune_curves > {log} 2>&1"


rule figure_epochs:
    input:
        "results/tables/table5.csv",
    output:
        figure_files("table5_epochs"),
    params:
        scale=config["tables"]["epoch_scale"],
    log:
        "results/figures/log/table5_epochs.log",
    shell:
        "avmae figure-epochs --table {input} --epoch-scale {params.scale}"
        " --out results/figures/table5_epochs > {log} 2>&1"


rule figures:
    input:
        figure_files(*(f"reconstruction_{o}" for o in config["tables"]["table2"]["objectives"]),
                     "pretrain_curves", "finetune_curves", "table5_epochs"),
