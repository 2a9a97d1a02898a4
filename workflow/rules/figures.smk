# Figures (results/figures/*.{png,pdf}): reconstructions of the Table 2 models, pretraining
# and finetuning loss curves, and Table 5 as accuracy against pretraining epochs.
# Helpers: common_results.smk.


rule figure_reconstruction:
    input:
        model=lambda w: f"results/pretrain/{table2_runs()[w.objective].name}/model.pt",
        meta=features_meta(config["pretrain"]["dataset"]),
    output:
        figure_output("reconstruction_{objective}", "reconstruction", "Reconstructions"),
    params:
        settings=lambda w: as_json(pretrain_settings(config, table2_runs()[w.objective])),
        features=lambda w, input: os.path.dirname(input.meta),
        clips=config["tables"]["figures"]["clips"],
        seed=config["tables"]["figures"]["seed"],
        title=lambda w: OBJECTIVE_LABELS[w.objective],
    wildcard_constraints:
        objective="|".join(OBJECTIVE_LABELS),
    conda:
        "../envs/avmae.yaml"
    log:
        "results/figures/log/reconstruction_{objective}.log",
    shell:
        "avmae figure-reconstruction --model {input.model} --settings {params.settings:q}"
        " --features {params.features} --clips {params.clips} --seed {params.seed}"
        " --title {params.title:q} --out results/figures/reconstruction_{wildcards.objective} > {log} 2>&1"


rule figure_pretrain_curves:
    input:
        curve_files(pretrain_curves()),
    output:
        figure_output("pretrain_curves", "pretrain_curves", "Loss curves"),
    params:
        curves=as_json(pretrain_curves()),
    conda:
        "../envs/avmae.yaml"
    log:
        "results/figures/log/pretrain_curves.log",
    shell:
        "avmae figure-curves --curves {params.curves:q} --title 'Pretraining loss'"
        " --out results/figures/pretrain_curves > {log} 2>&1"


rule figure_finetune_curves:
    input:
        curve_files(finetune_curves()),
    output:
        figure_output("finetune_curves", "finetune_curves", "Loss curves"),
    params:
        curves=as_json(finetune_curves()),
        title=f"Finetuning loss of the Table 2 models (on {config['pretrain']['dataset']})",
    conda:
        "../envs/avmae.yaml"
    log:
        "results/figures/log/finetune_curves.log",
    shell:
        "avmae figure-curves --curves {params.curves:q} --title {params.title:q}"
        " --out results/figures/finetune_curves > {log} 2>&1"


rule figure_epochs:
    input:
        "results/tables/table5.csv",
    output:
        figure_output("table5_epochs", "table5_epochs", "Table 5: pretraining epochs"),
    params:
        scale=config["tables"]["epoch_scale"],
    conda:
        "../envs/avmae.yaml"
    log:
        "results/figures/log/table5_epochs.log",
    shell:
        "avmae figure-epochs --table {input} --epoch-scale {params.scale}"
        " --out results/figures/table5_epochs > {log} 2>&1"


rule figures:
    input:
        figure_files(*(f"reconstruction_{o}" for o in config["tables"]["table2"]["objectives"]),
                     "pretrain_curves", "finetune_curves", "table5_epochs"),
