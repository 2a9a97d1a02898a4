# avmae workflow: URL lists -> download -> features -> AV-MAE pretraining -> finetuning
# -> the paper's tables. Every rule calls one `avmae` CLI command; see README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


rule all:
    input:
        "results/tables/table1.md",


include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/tables.smk"
