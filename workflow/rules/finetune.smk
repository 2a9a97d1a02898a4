# Finetuning of a pretrained encoder on {target} for audio, video or audiovisual input.
# A target with an `as500k` entry (AudioSet) trains on that class-balanced subset, as the
# paper does (MBT's AS-500K, train_subset in common_results.smk); the test split is the
# dataset's own.


rule finetune:
    input:
        model=lambda w: pretrained_model(w.run),   # zoo.smk: the run's, or a released stand-in
        meta=lambda w: features_meta(w.target),
        subset=lambda w: train_subset(w.target),
    output:
        metrics="results/finetune/{run}/{target}_{modality}/metrics.json",
    params:
        settings=lambda w: as_json(finetune_settings(config, run_of(w), w.target)),
        features="results/features/{target}",
        out="results/finetune/{run}/{target}_{modality}",
        subset=lambda w: shlex.join(["--train-ids", *train_subset(w.target)]) if train_subset(w.target) else "",
    wildcard_constraints:
        target="[a-z0-9]+",
    threads: config["threads"]["train"]
    # DeepSpeed processes (SLURM tasks), nodes and GPUs: as in pretrain.smk.
    resources:
        tasks=1,
        nodes=1,
        gpu=0,
    conda:
        "../envs/avmae.yaml"
    log:
        "results/finetune/{run}/{target}_{modality}/log/finetune.log",
    shell:
        "python -m avmae.train.launch --tasks {resources.tasks} --nodes {resources.nodes}"
        " --gpus {resources.gpu} --cpus-per-task {threads} --"
        " avmae finetune --features {params.features} --pretrained {input.model}"
        " --modality {wildcards.modality} --settings {params.settings:q}"
        " --out {params.out} --threads {threads} {params.subset} > {log} 2>&1"
