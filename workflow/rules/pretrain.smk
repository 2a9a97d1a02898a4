# AV-MAE pretraining. The run name (see avmae.config.PretrainRun) says what the run
# is; the settings parameter carries every other value, so editing one reruns it.


rule pretrain:
    input:
        meta=lambda w: features_meta(run_of(w).dataset),
    output:
        model="results/pretrain/{run}/model.pt",
        metrics="results/pretrain/{run}/metrics.json",
    params:
        settings=lambda w: as_json(pretrain_settings(config, run_of(w))),
        features=lambda w: f"results/features/{run_of(w).dataset}",
        out="results/pretrain/{run}",
    threads: config["threads"]["train"]
    log:
        "results/pretrain/{run}/log/pretrain.log",
    shell:
        "avmae pretrain --features {params.features} --settings {params.settings:q}"
        " --out {params.out} --threads {threads} > {log} 2>&1"
