# The paper's tables: ours (from the runs' metrics.json) beside the paper's numbers.


def table1_metrics(wildcards):
    dataset = config["pretrain"]["dataset"]
    paths = (
        f"results/finetune/{run.name}/{dataset}_{modality}/metrics.json"
        for run in table1_runs(config)
        for modality in ("audio", "video", "av")
    )
    return list(dict.fromkeys(paths))  # a run shared by two rows is listed once


rule table1:
    input:
        metrics=table1_metrics,
        meta=features_meta(config["pretrain"]["dataset"]),
        availability=f"results/data/{config['pretrain']['dataset']}/availability.json",
    output:
        csv="results/tables/table1.csv",
        md="results/tables/table1.md",
    params:
        rows=" ".join(f"{enc}-{dec}" for enc, dec in config["tables"]["table1"]["rows"]),
    log:
        "results/tables/log/table1.log",
    shell:
        "avmae table1 --rows {params.rows} --metrics {input.metrics} --meta {input.meta}"
        " --availability {input.availability}"
        " --out results/tables/table1 > {log} 2>&1"
