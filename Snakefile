# avmae workflow: URL lists -> download -> features -> AV-MAE pretraining -> finetuning
# -> the paper's tables. Every rule calls one `avmae` CLI command; see README.md.
import re

from snakemake.utils import min_version, update_config, validate

from avmae.config import typed_overrides
from avmae.provenance import command_digest

min_version("9.0")


configfile: "config/config.yaml"


# Nested overrides from the command line: --config 'tables={decimals: 2}' 'pretrain={epochs: 2}'.
# Snakemake reads such a mapping with YAML's base loader (every leaf a string) and merges it
# into the config files' values; its leaves are read again as YAML (2, 0.1, true, null, [..])
# and merged once more, so the schema below checks the merged, typed config.
update_config(config, typed_overrides(workflow.config_settings.config or {}))
validate(config, "workflow/schemas/config.schema.yaml")


# Front page of `snakemake --report results/report.html` (tables and figures: report() in their rules).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/common_data.smk"
include: "workflow/rules/common_results.smk"
include: "workflow/rules/common_zoo.smk"


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


# Every rule that runs avmae code has the param `code`: the digest of the code of the
# `avmae COMMAND`s (and `python -m avmae.MODULE`s) in its shell command, and of every avmae
# module they import (avmae.provenance.command_digest). Editing that code reruns the rule's
# jobs; the between-workflow cache keys entries by it.
AVMAE_COMMAND = re.compile(r"(?:^|[\s(;&|])avmae\s+([a-z][a-z0-9-]*)")
AVMAE_MODULE = re.compile(r"python\s+-m\s+(avmae(?:\.\w+)+)")
for _rule in list(workflow.rules):
    _commands = tuple(AVMAE_COMMAND.findall(_rule.shellcmd or ""))
    _modules = tuple(AVMAE_MODULE.findall(_rule.shellcmd or ""))
    if _commands or _modules:
        _rule.set_params(code=command_digest(*_commands, modules=_modules))
