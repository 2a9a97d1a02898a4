# avmae workflow: URL lists -> download -> features -> AV-MAE pretraining -> finetuning
# -> the paper's tables. Every rule calls one `avmae` CLI command; see README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


# Front page of `snakemake --report results/report.html` (tables and figures: report() in their rules).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/common_data.smk"
include: "workflow/rules/common_results.smk"


# The whole paper: every table (CSV, Markdown, LaTeX) and every figure.
# (A function: the target rules are defined further down, in tables.smk and figures.smk.)
rule all:
    input:
        lambda w: [f for target in ("table1", "table2", "table3", "table4", "table5", "table6",
                                    "table7", "figures") for f in getattr(rules, target).input],


include: "workflow/rules/lists.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/zoo.smk"
