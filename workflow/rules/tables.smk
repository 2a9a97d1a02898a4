# The paper's tables: ours (from the runs' metrics.json) beside the paper's numbers.
# One rule writes every table; its spec (avmae/report/specs.py: rows, and for each cell
# the run, finetuning target, modality, metric and paper value) is resolved from the
# config's `tables:` section and passed as a parameter, so editing one table's settings
# reruns that table alone. Runs are named by what defines them (avmae.config.PretrainRun),
# so a run used by several tables is computed once. Helpers: common_results.smk.


rule table:
    input:
        lambda w: spec_inputs(spec_of(w.table)),
    output:
        csv=table_output("csv"),
        md=table_output("md"),
        tex=table_output("tex"),
    params:
        spec=lambda w: spec_json(spec_of(w.table)),
    wildcard_constraints:
        table="|".join(TABLES),
    conda:
        "../envs/avmae.yaml"
    log:
        "results/tables/log/{table}.log",
    shell:
        "avmae table --spec {params.spec:q} --out results/tables/{wildcards.table} > {log} 2>&1"


rule table1:
    input:
        table_files("table1"),


rule table2:
    input:
        table_files("table2"),


rule table3:
    input:
        table_files("table3"),


rule table4:
    input:
        table_files("table4"),


rule table5:
    input:
        table_files("table5"),


rule table6:
    input:
        table_files("table6"),


rule table7:
    input:
        table_files("table7a", "table7b", "table7c"),


# Sec. 4.2 baseline (Table 3): an AudioMAE's and a VideoMAE's encoders side by side in one
# checkpoint, named as the AV-MAE with separate encoders and separate decoders (two
# uncoupled MAEs, which rule pretrain refuses); rule finetune reads it like any run.
ruleorder: two_maes > pretrain


rule two_maes:
    input:
        unpack(two_maes_inputs),
    output:
        model="results/pretrain/{run}/model.pt",
    wildcard_constraints:
        run=r"[a-z0-9]+_[a-z0-9]+_av_separate-separate_joint_e[0-9]+",
    params:
        settings=lambda w: as_json({"model": pretrain_settings(config, run_of(w))["model"],
                                    "baseline": "two unimodal MAEs (paper Sec. 4.2)"}),
    conda:
        "../envs/avmae.yaml"
    log:
        "results/pretrain/{run}/log/two_maes.log",
    shell:
        "avmae two-maes --audio {input.audio} --video {input.video} --out {output.model}"
        " --settings {params.settings:q} > {log} 2>&1"
