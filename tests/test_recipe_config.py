"""The paper profile is the authors' recipe (the official configs), per dataset and stage,
with the paper text's (or hyperparameters.md's) variant one value away; bad audio modes
are refused by the schema and when the workflow plans, naming the key."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError

from avmae.config import PretrainRun, deep_merge, finetune_settings, pretrain_settings
from avmae.data.audio import AudioInput
from avmae.data.augment import Augment, SpecAugment

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def toy():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


@pytest.fixture
def paper(toy):
    return deep_merge(toy, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))


def run(dataset, size="large"):
    return PretrainRun(dataset, size, "mid", "shared", "joint", 80)


def test_audio_input_defaults_are_what_both_profiles_set(toy, paper):
    """AudioInput's defaults (no mapping, or a key left out) are the official window and
    raw log-mel, the values config.yaml and paper.yaml give both stages' input."""
    assert AudioInput.from_config(None) == AudioInput.from_config({}) == AudioInput("official", "raw")
    for cfg in (toy, paper):
        for stage in ("pretrain", "finetune"):
            inp = cfg[stage]["input"]
            assert (inp["audio_window"], inp["audio_norm"]) == (AudioInput.window, AudioInput.norm)


def test_paper_profile_is_the_official_recipe_per_dataset(paper):
    validate(paper, SCHEMA)
    pre = {d: pretrain_settings(paper, run(d))["pretrain"]["input"] for d in ("vggsound", "audioset")}
    assert pre["vggsound"]["audio_frames"] == 800 and pre["audioset"]["audio_frames"] == 1000   # 8 s; 10 s
    for inp in pre.values():   # both pretrainings regress the raw log-mel, official windows
        assert AudioInput.from_config(inp) == AudioInput("official", "raw")
    fine = {d: finetune_settings(paper, run("vggsound"), d)["finetune"] for d in ("vggsound", "audioset", "epic")}
    assert fine["vggsound"]["input"]["audio_frames"] == 800 and fine["audioset"]["input"]["audio_frames"] == 1000
    assert AudioInput.from_config(fine["vggsound"]["input"]) == AudioInput("official", "raw")
    assert AudioInput.from_config(fine["audioset"]["input"]) == AudioInput("official", "fixed", 1.102, 2.762)
    aug = {d: Augment.from_config(f["augment"]) for d, f in fine.items()}
    assert aug["vggsound"].spec_augment == SpecAugment(1, 48, 0, 48)        # frequency masks only
    assert aug["audioset"].spec_augment == SpecAugment(2, 36, 0, 48)
    assert aug["audioset"].circular_time_shift and not aug["vggsound"].circular_time_shift
    assert not aug["epic"].circular_time_shift
    assert paper["pretrain"]["grad_clip"] == 0.0 and paper["finetune"]["grad_clip"] == 1.0


@pytest.mark.parametrize("edit, check", [
    # 8 s of AudioSet audio (paper Sec. 4.1), pretraining and finetuning
    (lambda c: c["pretrain"]["by_dataset"]["audioset"]["input"].update(audio_frames=800),
     lambda p, f: p["input"]["audio_frames"] == 800),
    (lambda c: c["finetune"]["by_dataset"]["audioset"]["input"].update(audio_frames=800),
     lambda p, f: f["input"]["audio_frames"] == 800),
    # time masks as listed (hyperparameters.md: 4 x 48 frames)
    (lambda c: c["finetune"]["by_dataset"]["audioset"]["augment"]["spec_augment"].update(time_masks=4),
     lambda p, f: Augment.from_config(f["augment"]).spec_augment == SpecAugment(2, 36, 4, 48)),
    # our own statistics instead of the official constants
    (lambda c: c["finetune"]["by_dataset"]["audioset"]["input"].update(audio_norm="dataset"),
     lambda p, f: AudioInput.from_config(f["input"]).norm == "dataset"),
    (lambda c: c["pretrain"]["input"].update(audio_norm="dataset"),
     lambda p, f: AudioInput.from_config(p["input"]).norm == "dataset"),
    # our former window rule
    (lambda c: c["pretrain"]["input"].update(audio_window="centred"),
     lambda p, f: AudioInput.from_config(p["input"]).window == "centred"),
    # no circular shift
    (lambda c: c["finetune"]["by_dataset"]["audioset"]["augment"].update(circular_time_shift=False),
     lambda p, f: not Augment.from_config(f["augment"]).circular_time_shift),
])
def test_each_variant_is_one_value_away(paper, edit, check):
    edit(paper)
    validate(paper, SCHEMA)
    p = pretrain_settings(paper, run("audioset"))["pretrain"]
    f = finetune_settings(paper, run("audioset"), "audioset")["finetune"]
    assert check(p, f)


def test_toy_profile_recipe(toy):
    """The toy: official windows, raw log-mel, no time masks, AudioSet's circular shift;
    AudioSet finetuning normalises with the toy's own statistics; 256-frame windows."""
    validate(toy, SCHEMA)
    for target, norm in (("vggsound", "raw"), ("audioset", "dataset"), ("epic", "raw")):
        f = finetune_settings(toy, run("vggsound", "toy"), target)["finetune"]
        assert AudioInput.from_config(f["input"]) == AudioInput("official", norm)
        aug = Augment.from_config(f["augment"])
        assert aug.spec_augment.time_masks == 0 and aug.circular_time_shift == (target == "audioset")
        assert f["input"]["audio_frames"] == 256
    for dataset in ("vggsound", "audioset"):
        p = pretrain_settings(toy, run(dataset, "toy"))["pretrain"]
        assert AudioInput.from_config(p["input"]) == AudioInput("official", "raw")


# (what to set, the instance jsonschema names, its reason): the reasons are the schema's
# enums, bounds and required keys (workflow/schemas/config.schema.yaml).
@pytest.mark.parametrize("path, value, instance, why", [
    (("pretrain", "input", "audio_window"), "centered", "['pretrain']['input']['audio_window']",
     "'centered' is not one of ['official', 'centred']"),
    (("finetune", "input", "audio_norm"), "zscore", "['finetune']['input']['audio_norm']",
     "'zscore' is not one of ['raw', 'fixed', 'dataset']"),
    (("finetune", "input", "audio_norm"), "fixed", "['finetune']['input']",     # fixed needs its constants
     "'audio_mean' is a required property"),
    (("finetune", "input", "audio_std"), 0, "['finetune']['input']['audio_std']",
     "0 is less than or equal to the minimum of 0"),
    (("finetune", "augment", "circular_time_shift"), "yes", "['finetune']['augment']['circular_time_shift']",
     "'yes' is not of type 'boolean'"),
    (("finetune", "by_dataset"), {"audioset": {"input": {"audio_norm": "zscore"}}},
     "['finetune']['by_dataset']['audioset']['input']['audio_norm']", "'zscore' is not one of"),
    (("pretrain", "by_dataset"), {"audioset": {"input": {"audio_window": "middle"}}},
     "['pretrain']['by_dataset']['audioset']['input']['audio_window']", "'middle' is not one of"),
    (("finetune", "by_dataset"), {"audioset": {"augment": {"circular_time_shift": 1}}},
     "['finetune']['by_dataset']['audioset']['augment']['circular_time_shift']", "1 is not of type 'boolean'"),
    (("finetune", "by_dataset"), {"audioset": {"input": {"audio_frame": 1000}}},
     "['finetune']['by_dataset']['audioset']['input']", "('audio_frame' was unexpected)"),
])
def test_bad_audio_modes_are_rejected_by_the_schema(toy, path, value, instance, why):
    bad = copy.deepcopy(toy)
    node = bad
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(WorkflowError) as err:
        validate(bad, SCHEMA)
    assert f"On instance{instance}:" in str(err.value) and why in str(err.value), str(err.value)[-600:]


def test_settings_refuse_a_merged_input_without_its_constants(paper):
    """A by_dataset entry may set `fixed` alone (the schema sees it partial); the merged
    input is checked when the workflow builds the run's settings."""
    paper["finetune"]["by_dataset"]["audioset"]["input"] = {"audio_norm": "fixed"}
    validate(paper, SCHEMA)
    with pytest.raises(ValueError, match=r"finetune.input \(with by_dataset.audioset\).audio_norm 'fixed' "
                                         r"needs audio_mean and audio_std"):
        finetune_settings(paper, run("vggsound"), "audioset")
    assert finetune_settings(paper, run("vggsound"), "vggsound")


def test_audioset_ten_second_audio_reaches_the_model():
    """1000 x 128 log-mel: 62 x 8 = 496 tokens, the last 8 frames unused (official VALID patches)."""
    import torch

    from avmae.models.avmae import AVMAE, ModelConfig
    cfg = {"encoder": {"width": 16, "depth": 1, "heads": 2, "mlp_dim": 32},
           "decoder": {"width": 16, "depth": 1, "heads": 2, "mlp_dim": 32},
           "encoder_strategy": "separate", "decoder_strategy": "shared", "video_patch": [2, 8, 8],
           "audio_patch": [16, 16], "modalities": ["audio"]}
    model = AVMAE(ModelConfig.from_dict(cfg))
    loss, out = model({"audio": torch.randn(1, 1, 1000, 128)}, seeds=[0])
    assert out["mask"]["audio"].shape[1] == 496 and torch.isfinite(loss)
