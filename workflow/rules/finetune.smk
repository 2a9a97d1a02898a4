# Finetuning of a pretrained encoder on {target} for audio, video or audiovisual input.


rule finetune:
    input:
        model="results/pretrain/{run}/model.pt",
        meta=lambda w: features_meta(w.target),
    output:
        metrics="results/finetune/{run}/{target}_{modality}/metrics.json",
    params:
        settings=lambda w: as_json(finetune_settings(config, run_of(w), w.target)),
        features="results/features/{target}",
        out="results/finetune/{run}/{target}_{modality}",
    wildcard_constraints:
        target="[a-z0-9]+",
    threads: config["threads"]["train"]
    # DeepSpeed processes (SLURM tasks), nodes and GPUs: as in pretrain.smk.
    resources:
        tasks=1,
        nodes=1,
        gpu=0,
    log:
        "results/finetune/{run}/{target}_{modality}/log/finetune.log",
    shell:
        "python -m avmae.train.launch --tasks {resources.tasks} --nodes {resources.nodes}"
        " --gpus {resources.gpu} --cpus-per-task {threads} --"
        " avmae finetune --features {params.features} --pretrained {input.model}"
        " --modality {wildcards.modality} --settings {params.settings:q}"
        " --out {params.out} --threads {threads} > {log} 2>&1"
