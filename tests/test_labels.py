"""Labels through the data pipeline: single, multi-hot (AudioSet) and verb + noun (EPIC),
from list strings to index.csv, meta.json and the dataset's targets; then the toy AudioSet
and EPIC sets end to end through the workflow's download and feature rules."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import copy_workflow, snakemake, write_config
from torch.utils.data import DataLoader

from avmae.acquire.lists import read_audioset_classes, read_epic
from avmae.data.dataset import AVClipDataset
from avmae.features.extract import extract
from avmae.features.labels import LabelError, LabelSpace, parse_verb_noun
from avmae.models.heads import HeadSpec
from avmae.toy.media import SAMPLE_RATE, write_mp4

FIXTURES = Path(__file__).parent / "fixtures"
WINDOW = {"video_frames": 2, "video_stride": 2, "crop": 16, "audio_frames": 64}


# ------------------------------------------------------------------------- LabelSpace
def test_single_label_space_round_trips():
    space = LabelSpace.from_labels("single", ["dog", "cat", "dog", "bird"])
    assert space.classes == ("bird", "cat", "dog") and space.num_classes == 3
    assert space.columns(["dog", "bird"]) == {"label_index": [2, 0]}
    again = LabelSpace.from_meta(json.loads(json.dumps(space.meta())))
    assert again == space and space.meta() == {"label_kind": "single", "classes": ["bird", "cat", "dog"]}
    targets = again.targets(pd.DataFrame({"label_index": [2, 0]}))
    assert targets["label"].tolist() == [2, 0] and targets["label"].dtype == np.int64
    # meta.json written before label kinds existed is single-label
    assert LabelSpace.from_meta({"classes": ["a", "b"]}).kind == "single"


def test_multi_label_space_follows_class_labels_indices():
    names = read_audioset_classes(FIXTURES / "class_labels_indices.csv")
    labels = ["/m/09x0r;/m/zzz", "/m/04rlf", "/m/03fwl;/m/04rlf;/m/09x0r"]
    with pytest.raises(LabelError, match=r"labels:0: class\(es\) \['/m/zzz'\] are not in the class list"):
        LabelSpace.from_labels("multi", labels, names)
    labels[0] = "/m/09x0r;/m/012xff"
    space = LabelSpace.from_labels("multi", labels, names)
    assert space.classes == tuple(names) and space.class_names[1] == "Male speech, man speaking"
    columns = space.columns(labels)
    assert columns == {"label_indices": ["0;2", "4", "3;4;0"]}
    hot = LabelSpace.from_meta(space.meta()).targets(pd.DataFrame(columns))["labels"]
    assert hot.dtype == np.float32 and hot.shape == (3, 8)
    assert hot.sum(axis=1).tolist() == [2, 1, 3] and hot[2, [0, 3, 4]].tolist() == [1, 1, 1]
    # without a class file: the mids seen, sorted
    assert LabelSpace.from_labels("multi", labels).classes == (
        "/m/012xff", "/m/03fwl", "/m/04rlf", "/m/09x0r")


def test_verb_noun_space_uses_epic_class_ids_as_head_indices():
    clips = read_epic(FIXTURES / "EPIC_100_train.csv")
    space = LabelSpace.from_labels("verb_noun", [c.label for c in clips])
    assert parse_verb_noun(clips[1].label) == (6, 114)
    assert space.num_classes == (7, 115)  # 0..max verb_class, 0..max noun_class
    columns = space.columns([c.label for c in clips])
    assert columns["verb_class"][:2] == [3, 6] and columns["noun_class"][:2] == [3, 114]
    targets = LabelSpace.from_meta(space.meta()).targets(pd.DataFrame(columns))
    assert set(targets) == {"verb", "noun"} and targets["noun"][1] == 114
    head = HeadSpec.of("verb_noun", space.num_classes)
    assert head.outputs == 7 + 115


def test_bad_labels_and_index_rows_name_their_place():
    with pytest.raises(LabelError, match=r"manifest.csv:3: label 'playing harp' is not 'verb:<class>;noun:<class>'"):
        LabelSpace.from_labels("verb_noun", pd.Series(["verb:1;noun:2", "playing harp"], index=[2, 3]),
                               source="manifest.csv")
    with pytest.raises(LabelError, match=r"empty class"):
        LabelSpace.from_labels("multi", ["/m/a;"])
    space = LabelSpace("multi", classes=("a", "b"))
    with pytest.raises(LabelError, match=r"index.csv: line 3: label_indices '0;2' are not"):
        space.targets(pd.DataFrame({"label_indices": ["1", "0;2"]}), "index.csv")
    with pytest.raises(LabelError, match=r"index.csv: line 2: verb_class '-1' is not a class index in 0..1"):
        LabelSpace("verb_noun", verb_classes=(0, 1), noun_classes=(0,)).targets(
            pd.DataFrame({"verb_class": ["-1"], "noun_class": ["0"]}), "index.csv")
    with pytest.raises(LabelError, match=r"no column\(s\) \['label_index'\]"):
        LabelSpace("single", classes=("a",)).targets(pd.DataFrame({"id": ["x"]}), "index.csv")
    with pytest.raises(ValueError, match="label kind 'softmax' is not one of"):
        LabelSpace.from_labels("softmax", ["a"])


# ------------------------------------------------------------- features and the dataset
SECONDS = 2.0


def _clip(path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (int(SECONDS * 25), 32, 48, 3), dtype=np.uint8)
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * (300 + 100 * seed) * t) * 8000
    write_mp4(path, frames, np.stack([tone, tone], axis=1).astype(np.int16))
    return str(path)


def _extract(tmp_path, labels, kind, class_list=None):
    rows = [{"id": f"c{i}", "start_seconds": 0.0, "label": label, "split": split, "status": "ok",
             "path": _clip(tmp_path / f"c{i}.mp4", i)}
            for i, (label, split) in enumerate(labels)]
    rows.append({"id": "gone", "start_seconds": 0.0, "label": labels[0][0], "split": "train", "status": "failed",
                 "path": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return extract(tmp_path / "manifest.csv", tmp_path / "features", clip_seconds=SECONDS, fps=10,
                   short_side=24, workers=2, labels=kind, class_list=class_list)


def test_multi_label_features_and_dataset(tmp_path):
    labels = [("/m/09x0r;/m/04rlf", "train"), ("/m/012xff", "train"),
              ("/m/04rlf", "test"), ("/m/09x0r;/m/03fwl;/t/dd00005", "test")]
    meta = _extract(tmp_path, labels, "multi", FIXTURES / "class_labels_indices.csv")
    assert meta["label_kind"] == "multi" and len(meta["classes"]) == 8
    assert meta["classes"][0] == "/m/09x0r" and meta["class_names"][0] == "Speech"
    index = pd.read_csv(tmp_path / "features/test/index.csv", dtype=str)
    assert index.label_indices.tolist() == ["4", "0;3;6"]

    data = AVClipDataset(tmp_path / "features", "train", **WINDOW, train=True)
    item = data[(0, 0)]
    assert "label" not in item and item["labels"].dtype == torch.float32
    assert item["labels"].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
    batch = next(iter(DataLoader(AVClipDataset(tmp_path / "features", "test", **WINDOW, train=False,
                                               num_clips=2), batch_size=4)))
    assert batch["labels"].shape == (4, 8) and batch["labels"][2:, 6].tolist() == [1, 1]
    test = AVClipDataset(tmp_path / "features", "test", **WINDOW, train=False)
    assert test.multi_hot().sum(axis=1).tolist() == [1, 3]
    head = HeadSpec.of(meta["label_kind"], len(meta["classes"]))
    assert torch.isfinite(head.loss(torch.zeros(4, 8), batch["labels"]))


def test_verb_noun_features_and_dataset(tmp_path):
    labels = [("verb:0;noun:3", "train"), ("verb:2;noun:1", "train"), ("verb:1;noun:0", "test")]
    meta = _extract(tmp_path, labels, "verb_noun")
    assert meta["label_kind"] == "verb_noun" and "classes" not in meta
    assert meta["verb_classes"] == [0, 1, 2] and meta["noun_classes"] == [0, 1, 2, 3]
    index = pd.read_csv(tmp_path / "features/train/index.csv")
    assert index[["verb_class", "noun_class"]].values.tolist() == [[0, 3], [2, 1]]

    data = AVClipDataset(tmp_path / "features", "train", **WINDOW, train=True)
    batch = next(iter(DataLoader([data[(0, 0)], data[(0, 1)]], batch_size=2)))
    assert batch["verb"].tolist() == [0, 2] and batch["noun"].tolist() == [3, 1]
    assert "label" not in batch and "labels" not in batch
    head = HeadSpec.of("verb_noun", (len(meta["verb_classes"]), len(meta["noun_classes"])))
    loss = head.loss(torch.zeros(2, head.outputs), torch.stack([batch["verb"], batch["noun"]], 1))
    assert loss.item() == pytest.approx(0.5 * (np.log(3) + np.log(4)), rel=1e-5)


def test_single_label_features_keep_label_index(tmp_path):
    meta = _extract(tmp_path, [("cat", "train"), ("dog", "train"), ("dog", "test")], "single")
    assert meta["label_kind"] == "single" and meta["classes"] == ["cat", "dog"]
    item = AVClipDataset(tmp_path / "features", "train", **WINDOW, train=True)[(0, 1)]
    assert item["label"] == 1 and isinstance(item["label"], int)


def test_labels_that_do_not_fit_the_kind_stop_extraction(tmp_path):
    with pytest.raises(LabelError, match=r"manifest.csv:3: label 'dog' is not 'verb:"):
        _extract(tmp_path, [("verb:0;noun:0", "train"), ("dog", "test")], "verb_noun")
    with pytest.raises(LabelError, match=r"manifest.csv:2: class\(es\) \['/m/nope'\]"):
        _extract(tmp_path, [("/m/nope", "train")], "multi", FIXTURES / "class_labels_indices.csv")


# ---------------------------------------------------------------------------- workflow
def test_toy_audioset_and_epic_through_the_workflow(tmp_path):
    """Toy generation, split, sharded download, merge and features for the two new toy
    sets on a shrunken config (as tests/test_workflow.py does for VGGSound)."""
    cfg = copy_workflow(tmp_path)
    cfg["datasets"]["audioset"]["toy"].update(unbalanced=6, balanced_per_class=1, eval_per_class=1)
    cfg["datasets"]["audioset"]["as500k"]["size"] = 5
    cfg["datasets"]["epic"]["toy"].update(train_participants=1, unseen_participants=1,
                                          videos_per_participant=1, segments_per_video=2)
    write_config(tmp_path, cfg)
    targets = ["results/features/audioset/meta.json", "results/features/epic/meta.json",
               "results/data/audioset/as500k.csv"]
    snakemake(tmp_path, *targets)
    results = tmp_path / "results"

    # AudioSet: the three segment lists went through one split/download/merge
    toy = json.loads((results / "toy/audioset/lists/classes.json").read_text())
    manifest = pd.read_csv(results / "data/audioset/manifest.csv")
    assert len(manifest) == sum(toy["clips"].values()) and (manifest.status == "ok").all()
    assert (manifest.end_seconds - manifest.start_seconds == 10).all()
    meta = json.loads((results / "features/audioset/meta.json").read_text())
    assert meta["label_kind"] == "multi" and meta["classes"] == [c["mid"] for c in toy["classes"]]
    assert meta["counts"] == {"train": toy["clips"]["balanced"] + toy["clips"]["unbalanced"],
                              "test": toy["clips"]["eval"]}
    data = AVClipDataset(results / "features/audioset", "test", 4, 16, 32, 256, train=False)
    for i, row in data.index.iterrows():
        expected = np.isin(meta["classes"], row.label.split(";")).astype(np.float32)
        assert (data[i]["labels"].numpy() == expected).all()
    stats = json.loads((results / "data/audioset/as500k_stats.json").read_text())
    assert stats["after"]["clips"] == 5 and stats["before"]["clips"] == meta["counts"]["train"]

    # EPIC: segments cut out of per-video files at their timestamps
    manifest = pd.read_csv(results / "data/epic/manifest.csv")
    assert len(manifest) == 6 and (manifest.status == "ok").all()
    assert set(manifest.source) == {"P01_01", "P01_02", "P02_01"}
    assert np.allclose(manifest.duration, manifest.clip_end - manifest.clip_start, atol=0.2)
    assert (manifest.clip_start <= manifest.start_seconds).all() and (manifest.end_seconds <= manifest.clip_end).all()
    meta = json.loads((results / "features/epic/meta.json").read_text())
    assert meta["label_kind"] == "verb_noun" and meta["counts"] == {"train": 2, "test": 4}
    data = AVClipDataset(results / "features/epic", "test", 4, 16, 32, 256, train=False)
    for i, row in data.index.iterrows():
        verb, noun = parse_verb_noun(row.label)
        assert (data[i]["verb"], data[i]["noun"]) == (verb, noun)

    # Table 1 does not need them
    plan = snakemake(tmp_path, "-n", "table1")
    assert "dataset=audioset" not in plan.stdout and "dataset=epic" not in plan.stdout
    assert "dataset=vggsound" in plan.stdout
