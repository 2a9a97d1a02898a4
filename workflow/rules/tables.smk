# The paper's tables: ours (from the runs' metrics.json) beside the paper's numbers.
# One rule writes every table; its spec (avmae/report/specs.py: rows, and for each cell
# the run, finetuning target, modality, metric and paper value) is resolved from the
# config's `tables:` section and passed as a parameter, so editing one table's settings
# reruns that table alone. Runs are named by what defines them (avmae.config.PretrainRun),
# so a run used by several tables is computed once.
from avmae.report.specs import TABLES, spec_inputs, spec_json, table_spec, unimodal_run


def spec_of(name):
    return table_spec(config, name)


rule table:
    input:
        lambda w: spec_inputs(spec_of(w.table)),
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
    params:
        spec=lambda w: spec_json(spec_of(w.table)),
    wildcard_constraints:
        table="|".join(TABLES),
    log:
        "results/tables/log/{table}.log",
    shell:
        "avmae table --spec {params.spec:q} --out results/tables/{wildcards.table} > {log} 2>&1"


def table_files(*names):
    return [f"results/tables/{name}.{ext}" for name in names for ext in ("csv", "md", "tex")]


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
def two_maes_inputs(wildcards):
    run = run_of(wildcards)
    if config["tables"]["table3"]["unimodal"][0] != "separate":
        raise ValueError("tables.table3.unimodal: the Sec. 4.2 baseline merges unimodal MAEs with the "
                         "'separate' encoder; set its encoder to separate (or baseline_epochs to null)")
    return {m: f"results/pretrain/{unimodal_run(config, m, run.size, run.epochs).name}/model.pt"
            for m in ("audio", "video")}


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
    log:
        "results/pretrain/{run}/log/two_maes.log",
    shell:
        "avmae two-maes --audio {input.audio} --video {input.video} --out {output.model}"
        " --settings {params.settings:q} > {log} 2>&1"
