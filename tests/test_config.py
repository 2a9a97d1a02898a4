"""Run names, per-run settings and config validation."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from avmae.config import (
    PretrainRun,
    deep_merge,
    finetune_settings,
    pretrain_settings,
    table1_runs,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_run_name_round_trip():
    run = PretrainRun("vggsound", "base", "mid", "shared", "joint", 400)
    assert run.name == "vggsound_base_av_mid-shared_joint_e400"
    assert PretrainRun.parse(run.name) == run
    inpaint = PretrainRun("audioset", "large", "early", "shared", "inpaint_video", 80)
    assert inpaint.name == "audioset_large_av_early-shared_inpaintvideo_e80"
    assert PretrainRun.parse(inpaint.name) == inpaint
    audio_mae = PretrainRun("vggsound", "base", "separate", "shared", "joint", 400, "audio")
    assert PretrainRun.parse(audio_mae.name) == audio_mae
    with pytest.raises(ValueError, match="not a pretraining run name"):
        PretrainRun.parse("vggsound_base_av_late-shared_joint_e400")
    with pytest.raises(ValueError, match="objective must be one of"):
        PretrainRun("vggsound", "base", "mid", "shared", "inpaint", 400)


def test_settings_come_from_the_config(config):
    run = PretrainRun("vggsound", "base", "separate", "early", "joint", 7)
    s = pretrain_settings(config, run)
    assert s["pretrain"]["epochs"] == 7
    assert s["model"]["encoder"]["width"] == 768 and s["model"]["decoder"]["width"] == 384
    assert s["model"]["encoder_strategy"] == "separate" and s["model"]["decoder_strategy"] == "early"
    assert s["model"]["objective"] == "joint" and s["model"]["modalities"] == ["audio", "video"]
    assert "size" not in s["model"] and "dataset" not in s["pretrain"]
    f = finetune_settings(config, run, "vggsound")
    assert f["finetune"]["mbt"]["fusion_layer"] == config["finetune"]["mbt"]["fusion_layer"]["base"]
    assert f["finetune"]["optimizer"] == config["finetune"]["optimizer"]
    with pytest.raises(KeyError, match="'huge'"):
        pretrain_settings(config, PretrainRun("vggsound", "huge", "mid", "shared", "joint", 1))


def test_finetune_settings_per_target_dataset(config):
    config["finetune"]["by_dataset"] = {"audioset": {"batch_size": 128, "optimizer": {"lr": 1.6},
                                                     "mbt": {"fusion_layer": {"large": 18}}}}
    run = PretrainRun("vggsound", "large", "mid", "shared", "joint", 7)
    audioset = finetune_settings(config, run, "audioset")["finetune"]
    assert audioset["batch_size"] == 128 and audioset["optimizer"]["lr"] == 1.6
    assert audioset["optimizer"]["name"] == config["finetune"]["optimizer"]["name"]  # merged, not replaced
    assert audioset["mbt"]["fusion_layer"] == 18 and "by_dataset" not in audioset
    vggsound = finetune_settings(config, run, "vggsound")["finetune"]
    assert vggsound["batch_size"] == config["finetune"]["batch_size"] and vggsound["mbt"]["fusion_layer"] == 16
    del config["finetune"]["mbt"]["fusion_layer"]["toy"]
    with pytest.raises(KeyError, match="no entry for model size 'toy'"):
        finetune_settings(config, PretrainRun("vggsound", "toy", "mid", "shared", "joint", 7), "vggsound")


def test_table1_rows_share_runs(config):
    runs = table1_runs(config)
    assert len(runs) == 7 and len(set(runs)) == 6   # the mid/shared row appears twice, runs once


# Values the schema refuses, each named by its key: tests/test_bad_inputs_config.py.


def test_workflow_refuses_bad_config_before_any_job(tmp_path, config):
    bad = copy.deepcopy(config)
    bad["model"]["mask_ratio"]["audio"] = -0.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "table1", "--configfile", str(path),
                           "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode != 0
    assert "['model']['mask_ratio']['audio']" in proc.stdout + proc.stderr


def test_pretraining_values_per_dataset(config):
    config["model"]["by_dataset"] = {"audioset": {"mask_ratio": {"audio": 0.7}}}
    config["pretrain"]["by_dataset"] = {"audioset": {"optimizer": {"lr": 3e-4}}}
    validate(config, SCHEMA)
    audioset = pretrain_settings(config, PretrainRun("audioset", "base", "mid", "shared", "joint", 80))
    assert audioset["model"]["mask_ratio"] == {"audio": 0.7, "video": config["model"]["mask_ratio"]["video"]}
    assert audioset["pretrain"]["optimizer"]["lr"] == 3e-4 and "by_dataset" not in audioset["pretrain"]
    assert "by_dataset" not in audioset["model"]
    vggsound = pretrain_settings(config, PretrainRun("vggsound", "base", "mid", "shared", "joint", 80))
    assert vggsound["model"]["mask_ratio"]["audio"] == config["model"]["mask_ratio"]["audio"]
    assert vggsound["pretrain"]["optimizer"]["lr"] == config["pretrain"]["optimizer"]["lr"]


def test_paper_profile_validates_on_top_of_the_default(config):
    """`--configfile config/paper.yaml` deep-merges onto the default config."""
    paper = deep_merge(config, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
    validate(paper, SCHEMA)
    run = PretrainRun("vggsound", "base", "mid", "shared", "joint", 400)
    s = pretrain_settings(paper, run)
    assert s["model"]["video_patch"] == [2, 16, 16] and s["pretrain"]["batch_size"] == 512
    assert s["pretrain"]["input"] == {"video_frames": 16, "video_stride": 4, "crop": 224, "audio_frames": 800,
                                      "audio_window": "official", "audio_norm": "raw"}
