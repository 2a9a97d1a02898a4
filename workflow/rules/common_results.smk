# Helpers of finetune.smk, tables.smk and figures.smk (common.smk holds the data side).
# Outputs flagged with report() make up `snakemake --report`: tables and figures, with
# the captions in workflow/report/ (paths below are relative to workflow/rules/).
from avmae.config import default_run
from avmae.report.specs import (OBJECTIVE_LABELS, TABLES, TITLES, finetune_metrics, spec_inputs, spec_json,
                                table_spec, unimodal_run)


def train_subset(target):
    return [f"results/data/{target}/as500k.csv"] if "as500k" in dataset_config(target) else []


def spec_of(name):
    """Table ``name``'s spec. Table 4's rows (`tables.table4.pretrain`, a mapping) follow
    DATASET_ORDER, not the config's key order, which never changes a result."""
    t4 = config["tables"]["table4"]
    pretrain = {ds: t4["pretrain"][ds] for ds in sorted(t4["pretrain"], key=dataset_order)}
    return table_spec({**config, "tables": {**config["tables"], "table4": {**t4, "pretrain": pretrain}}}, name)


def table_files(*names):
    return [f"results/tables/{name}.{ext}" for name in names for ext in ("csv", "md", "tex")]


def table_output(ext):
    """Rule table's output in format ``ext``, in the report under Tables / the table's title."""
    return report(f"results/tables/{{table}}.{ext}", caption="../report/table.rst", category="Tables",
                  subcategory=lambda w: TITLES[w.table], labels={"Table": "{table}", "Format": ext.upper()})


def two_maes_inputs(wildcards):
    run = run_of(wildcards)
    if config["tables"]["table3"]["unimodal"][0] != "separate":
        raise ValueError("tables.table3.unimodal: the Sec. 4.2 baseline merges unimodal MAEs with the "
                         "'separate' encoder; set its encoder to separate (or baseline_epochs to null)")
    return {m: f"results/pretrain/{unimodal_run(config, m, run.size, run.epochs).name}/model.pt"
            for m in ("audio", "video")}


def figure_files(*names):
    return [f"results/figures/{name}.{ext}" for name in names for ext in ("png", "pdf")]


def figure_output(name, caption, subcategory):
    """PNG and PDF of figure ``name``, in the report under Figures / ``subcategory``."""
    return [report(f, caption=f"../report/{caption}.rst", category="Figures", subcategory=subcategory,
                   labels={"Figure": name, "Format": f.rsplit(".", 1)[1].upper()})
            for f in figure_files(name)]


def table2_runs():
    t = config["tables"]["table2"]
    return {o: default_run(config, t["encoder"], t["decoder"], o) for o in t["objectives"]}


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
