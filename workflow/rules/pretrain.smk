# AV-MAE pretraining. The run name (see avmae.config.PretrainRun) says what the run
# is; the settings parameter carries every other value, so editing one reruns it.


rule pretrain:
    input:
        meta=lambda w: features_meta(run_of(w).dataset),
    output:
        model="results/pretrain/{run}/model.pt",
        metrics="results/pretrain/{run}/metrics.json",
        config="results/pretrain/{run}/config.yaml",
    params:
        settings=lambda w: as_json(pretrain_settings(config, run_of(w))),
        features=lambda w: f"results/features/{run_of(w).dataset}",
        out="results/pretrain/{run}",
    # Checkpoints, steps.csv and TensorBoard events stay in the run folder (a rerun resumes
    # from them); a run taken from the cache brings its model, metrics and config.
    cache: "omit-software"
    threads: config["threads"]["train"]
    # DeepSpeed processes of one data-parallel group (SLURM tasks), the nodes they spread
    # over, and the job's GPUs. One process runs as is; more run as one srun step
    # (avmae.train.launch), which workflow/profiles/slurm sets up. Resources do not
    # change results (the global batch is fixed), so they never trigger a rerun.
    resources:
        tasks=1,
        nodes=1,
        gpu=0,
    conda:
        "../envs/avmae.yaml"
    log:
        "results/pretrain/{run}/log/pretrain.log",
    shell:
        "python -m avmae.train.launch --tasks {resources.tasks} --nodes {resources.nodes}"
        " --gpus {resources.gpu} --cpus-per-task {threads} --"
        " avmae pretrain --features {params.features} --settings {params.settings:q}"
        " --out {params.out} --threads {threads} > {log} 2>&1"
