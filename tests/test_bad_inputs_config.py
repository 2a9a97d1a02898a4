"""Bad workflow configs: each is refused by the schema with the exact key that is wrong.

The message snakemake's ``validate`` gives names the offending value's path as
``On instance['a']['b']``; a test that matched a word only (``video``, ``name``) could
not tell which field was rejected, since such words recur in the schema dump."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def rejected(cfg: dict) -> str:
    with pytest.raises(WorkflowError) as err:
        validate(cfg, SCHEMA)
    return str(err.value)


def put(cfg: dict, path: tuple, value) -> dict:
    bad = copy.deepcopy(cfg)
    node = bad
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return bad


@pytest.mark.parametrize("path,value,why", [
    (("model", "mask_ratio", "video"), 1.2, "1.2 is greater than or equal to the maximum of 1"),
    (("model", "mask_ratio", "audio"), -0.5, "-0.5 is less than the minimum of 0"),
    (("pretrain", "optimizer", "name"), "lamb", "'lamb' is not one of"),
    (("finetune", "eval_clips"), 0, "0 is less than the minimum of 1"),
    (("pretrain", "epochs"), "ten", "'ten' is not of type 'integer'"),        # wrong type
    (("seed",), 1.5, "1.5 is not of type 'integer'"),                          # wrong type
])
def test_bad_value_names_its_key(config, path, value, why):
    message = rejected(put(config, path, value))
    instance = "".join(f"[{k!r}]" for k in path)
    assert f"On instance{instance}:" in message, message[-600:]
    assert why in message


def test_bad_table_row_names_the_row(config):
    message = rejected(put(config, ("tables", "table1", "rows"), [["separate", "mid"]]))
    assert re.search(r"On instance\['tables'\]\['table1'\]\['rows'\]\[0\](\[\d\])?:", message), message[-600:]


def test_missing_required_key_is_named(config):
    bad = copy.deepcopy(config)
    del bad["model"]
    assert "ValidationError: 'model' is a required property" in rejected(bad)


def test_unknown_top_level_key_is_named(config):
    bad = {**config, "modle": {"mask_ratio": 0.5}}   # a typo of 'model'
    assert "Additional properties are not allowed ('modle' was unexpected)" in rejected(bad)


def test_the_default_config_is_accepted(config):
    validate(config, SCHEMA)   # the contrast: every rejection above is the edit's doing
