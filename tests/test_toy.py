"""The synthetic datasets: real H.264/AAC files, the official list formats, deterministic.

VGGSound (single-label), AudioSet (multi-label, long-tailed, balanced/unbalanced/eval
lists) and EPIC-KITCHENS-100 (verb + noun segments of long videos, unseen kitchens).
"""

import itertools
import json
import re
import subprocess
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from conftest import decode_audio, decode_video

from avmae.acquire.balance import draw_balanced
from avmae.acquire.lists import (
    EPIC_COLUMNS,
    parse_timestamp,
    read_audioset,
    read_audioset_classes,
    read_epic,
    read_vggsound,
)
from avmae.features.extract import Spec
from avmae.ffmpeg import ffmpeg_exe
from avmae.toy import audioset as tas
from avmae.toy import epic as tep
from avmae.toy.vggsound import make_toy_vggsound


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_vggsound(tmp_path_factory.mktemp("toy"), clips_per_class=2,
                             test_fraction=0.5, seed=7, workers=2)


def ffmpeg_info(path):
    """What `ffmpeg -i` prints about a file (there is no ffprobe)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)],  # exits 1: no output
                          capture_output=True, text=True, check=False, timeout=60).stderr


def test_csv_is_vggsound_format_with_8_classes(toy):
    clips = read_vggsound(toy)
    assert len(clips) == 16
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", c.id) for c in clips)
    assert len({c.id for c in clips}) == 16
    assert all(c.start in (0, 1, 2, 3) for c in clips)
    labels = {c.label for c in clips}
    assert len(labels) == 8
    assert Counter((c.label, c.split) for c in clips) == {
        (label, split): 1 for label in labels for split in ("train", "test")}

    classes = json.loads((toy.parent / "classes.json").read_text())["classes"]
    assert {c["label"] for c in classes} == labels
    told_apart_by = Counter(c["told_apart_by"] for c in classes)
    assert told_apart_by == {"video": 2, "audio": 2, "audio+video": 4}


def test_media_are_h264_aac_mp4_of_the_right_length(toy):
    for clip in read_vggsound(toy):
        path = toy.parent / "media" / f"{clip.id}.mp4"
        info = ffmpeg_info(path)
        assert "Input #0, mov,mp4" in info
        assert re.search(r"Video: h264 .*96x64.* 25 fps", info), info
        assert re.search(r"Audio: aac .*44100 Hz, stereo", info), info
        duration = parse_timestamp(re.search(r"Duration: ([\d:.]+)", info).group(1))
        assert abs(duration - (clip.start + 11)) < 0.1, info


def test_same_seed_gives_same_csv_and_content(toy, tmp_path):
    again = make_toy_vggsound(tmp_path / "again", clips_per_class=2, test_fraction=0.5,
                              seed=7, workers=1)
    assert again.read_bytes() == toy.read_bytes()
    spec = Spec(clip_seconds=10.0, fps=25, short_side=40, sample_rate=16000, n_mels=128)
    for clip in read_vggsound(toy)[:3]:
        a, b = (root.parent / "media" / f"{clip.id}.mp4" for root in (toy, again))
        assert (decode_video(a, spec) == decode_video(b, spec)).all()
        assert (decode_audio(a, spec) == decode_audio(b, spec)).all()
    other = make_toy_vggsound(tmp_path / "other", clips_per_class=1, seed=8)
    assert {c.id for c in read_vggsound(other)}.isdisjoint({c.id for c in read_vggsound(toy)})


def test_other_generators_reject_foreign_options(tmp_path):
    from avmae.toy.commands import make_toy

    with pytest.raises(ValueError, match="clips_per_class do not apply to the audioset"):
        make_toy("audioset", tmp_path, clips_per_class=3)
    with pytest.raises(ValueError, match="no toy generator for format 'clips'"):
        make_toy("clips", tmp_path)


# ------------------------------------------------------------------------------- AudioSet

CONFIG_AUDIOSET = {"unbalanced": 200, "balanced_per_class": 5, "eval_per_class": 10, "seed": 0}


@pytest.fixture(scope="module")
def toy_as(tmp_path_factory):
    return tas.make_toy_audioset(tmp_path_factory.mktemp("toy_as"), unbalanced=8,
                                 balanced_per_class=1, eval_per_class=1, seed=3, workers=2)


def test_audioset_lists_parse_with_the_official_readers(toy_as):
    classes = read_audioset_classes(toy_as["classes"])
    assert list(classes) == [mid for mid, _, _ in tas.CLASSES]
    assert all(re.fullmatch(r"/m/0\w+", mid) for mid in classes)
    lists = {part: read_audioset(toy_as[part], "test" if part == "eval" else "train", classes)
             for part in ("balanced", "unbalanced", "eval")}
    assert len(lists["unbalanced"]) == 8
    for part, clips in lists.items():
        lines = toy_as[part].read_text().splitlines()
        assert [line.startswith("#") for line in lines[:4]] == [True, True, True, False]
        assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
        assert all(re.fullmatch(r'[\w-]{11}, \d+\.000, \d+\.000, "[^"]+"', line) for line in lines[3:])
        assert all(c.end == c.start + 10 for c in clips)
        # every class at least once in the quota-drawn lists
        if part != "unbalanced":
            assert {mid for c in clips for mid in c.labels} == set(classes)
    ids = [c.id for clips in lists.values() for c in clips]
    assert len(ids) == len(set(ids))  # the three lists are disjoint, as AudioSet's
    assert any(len(c.labels) > 1 for clips in lists.values() for c in clips)


def test_audioset_design_is_multi_label_long_tailed_and_split_across_modalities():
    jobs = tas.plan_audioset(**CONFIG_AUDIOSET)
    design = tas.design({part: [j.elements for j in part_jobs] for part, part_jobs in jobs.items()})
    assert Counter(c["told_apart_by"] for c in design["classes"]) == {
        "audio": 3, "video": 3, "audio+video": 2}
    unbalanced = np.array(design["class_counts"]["unbalanced"])
    assert unbalanced.max() / unbalanced.min() >= 8          # long tail
    priors = [c["prior"] for c in design["classes"]]
    assert np.corrcoef(priors, unbalanced)[0, 1] > 0.95     # counts follow the designed priors
    assert min(design["class_counts"]["eval"]) >= 10 and min(design["class_counts"]["balanced"]) >= 5
    labels_per_clip = [len(j.clip.labels) for j in jobs["unbalanced"]]
    assert min(labels_per_clip) >= 1 and np.mean(labels_per_clip) > 1.5
    # an audio+video class needs both: each modality alone sees clips that lack the other half
    square = [j for j in jobs["unbalanced"] if "object:square" in j.elements]
    clicking = sum("/m/0toy05" in j.clip.labels for j in square)
    assert 0 < clicking < len(square)
    best = design["best_eval_map"]
    assert best["audiovisual"] == 1.0 and 0.5 < best["audio"] < 0.95 and 0.5 < best["video"] < 0.95
    # the oracle ranks the classes its modality cannot see by what it can: still a ceiling
    scores = tas.oracle_scores([j.elements for j in jobs["eval"]], "video")
    whistling = tas.multi_hot([j.elements for j in jobs["eval"]])[:, 0]
    assert average_precision_score(whistling, scores[:, 0]) < 0.8


def test_as500k_recipe_balances_the_toy_as2m():
    jobs = tas.plan_audioset(**CONFIG_AUDIOSET)
    as2m = [j.clip for part in ("balanced", "unbalanced") for j in jobs[part]]
    subset, stats = draw_balanced(as2m, 60, seed=0)
    before, after = stats["before"], stats["after"]
    assert len(subset) == 60 and after["classes"] == before["classes"] == 8
    assert after["max_over_min"] < before["max_over_min"] / 3
    assert after["normalised_entropy"] > before["normalised_entropy"]
    assert stats["cap"] < before["class_count"]["max"]


def _tone_share(wave, lo, hi, sample_rate=16000):
    """Share of the power within 10 Hz of the strongest frequency in [lo, hi): ~1 for a
    lone tone there, ~0 for noise, clicks or sweeps."""
    power = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / sample_rate)
    peak = freqs[np.argmax(np.where((freqs >= lo) & (freqs < hi), power, 0))]
    return power[np.abs(freqs - peak) <= 10].sum() / power.sum()


def test_audioset_media_carry_their_labels(toy_as):
    spec = Spec(clip_seconds=10.0, fps=5, short_side=64, sample_rate=16000, n_mels=128)
    clips = [c for part in ("balanced", "unbalanced", "eval")
             for c in read_audioset(toy_as[part])]
    media = toy_as["classes"].parent / "media"
    whistle = {c.id: _tone_share(decode_audio(media / f"{c.id}.mp4", spec), 2400, 3600)
               for c in clips}
    has = [whistle[c.id] for c in clips if "/m/0toy00" in c.labels]
    hasnt = [whistle[c.id] for c in clips if "/m/0toy00" not in c.labels]
    assert has and hasnt
    assert min(has) > 0.2 and max(hasnt) < 0.02
    for mid, axis in (("/m/0toy02", 1), ("/m/0toy04", 2)):   # stripes vary along y / along x
        clip = next(c for c in clips if mid in c.labels)
        frames = decode_video(media / f"{clip.id}.mp4", spec).astype(float).mean(axis=3)
        along = frames.mean(axis=3 - axis).std(axis=1).mean()      # profile across the stripes
        across = frames.mean(axis=axis).std(axis=1).mean()         # profile along them
        assert along > 3 * across, (mid, along, across)
    info = ffmpeg_info(media / f"{clips[0].id}.mp4")
    assert re.search(r"Video: h264 .*96x64", info) and re.search(r"Audio: aac", info)


def test_audioset_is_deterministic(toy_as, tmp_path):
    again = tas.make_toy_audioset(tmp_path, unbalanced=8, balanced_per_class=1, eval_per_class=1,
                                  seed=3, workers=1, media_dir=tmp_path / "elsewhere")
    for key in ("balanced", "unbalanced", "eval", "classes"):
        assert again[key].read_bytes() == toy_as[key].read_bytes()
    assert len(list((tmp_path / "elsewhere").glob("*.mp4"))) == sum(
        len(read_audioset(again[p])) for p in ("balanced", "unbalanced", "eval"))


# ---------------------------------------------------------------------------- EPIC-KITCHENS


@pytest.fixture(scope="module")
def toy_ep(tmp_path_factory):
    return tep.make_toy_epic(tmp_path_factory.mktemp("toy_epic"), train_participants=1,
                             unseen_participants=1, videos_per_participant=1,
                             segments_per_video=2, seed=5, workers=2)


def test_epic_lists_parse_with_the_official_reader(toy_ep):
    train, val = read_epic(toy_ep["train"], "train"), read_epic(toy_ep["validation"], "test")
    assert toy_ep["train"].read_text().splitlines()[0] == ",".join(EPIC_COLUMNS)
    assert [c.video for c in train] == ["P01_01"] * 2
    assert sorted({c.video for c in val}) == ["P01_02", "P02_01"]  # a seen and an unseen kitchen
    media = toy_ep["train"].parent / "media"
    for clips in (train, val):
        for clip in clips:
            assert re.fullmatch(r"verb:[0-3];noun:[0-3]", clip.label)
            assert tep.SEGMENT_SECONDS[0] <= clip.end - clip.start <= tep.SEGMENT_SECONDS[1]
        for a, b in itertools.pairwise(clips):
            if a.video == b.video:
                assert b.start >= a.end + 1.0  # idle gaps between actions
    for row in pd.read_csv(toy_ep["train"]).itertuples():
        assert row.start_frame == round(parse_timestamp(row.start_timestamp) * 25)
        assert row.narration == f"{row.verb} {row.noun}" and row.all_noun_classes == f"[{row.noun_class}]"
        duration = re.search(r"Duration: ([\d:.]+)", ffmpeg_info(media / f"{row.video_id}.mp4")).group(1)
        assert parse_timestamp(row.stop_timestamp) < parse_timestamp(duration)


def test_epic_design_verbs_and_nouns_split_across_modalities():
    kitchens, videos = tep.plan_epic()
    design = tep.design(kitchens, videos)
    assert design["segments"] == {"train": 96, "validation": 24}
    assert Counter(v["told_apart_by"] for v in design["verbs"]) == {"video": 2, "audio": 2}
    assert Counter(n["told_apart_by"] for n in design["nouns"]) == {"video": 2, "audio": 2}
    best = design["best_validation_top1"]
    assert best["audiovisual"] == {"verb_top1": 1.0, "noun_top1": 1.0, "action_top1": 1.0}
    for modality in ("audio", "video"):  # oracles on 24 segments: about 75 %, 75 %, 56 %
        verb, noun, action = (best[modality][k] for k in ("verb_top1", "noun_top1", "action_top1"))
        assert 0.55 < verb < 0.95 and 0.55 < noun < 0.95 and action <= min(verb, noun) and action < 0.8
    segments = [s for v in videos for s in v.segments]
    uniform = tep.oracle_accuracy(segments, "video")  # 120 segments, closer to the design
    assert uniform["verb_top1"] == pytest.approx(0.75, abs=0.1)
    assert uniform["action_top1"] == pytest.approx(0.5625, abs=0.12)
    assert set(Counter(s.verb for s in segments)) == set(range(4))
    assert [k["seen_in_train"] for k in design["kitchens"]] == [True] * 4 + [False] * 2


def test_epic_motion_tells_take_from_put():
    rng = np.random.default_rng(0)
    kitchen = tep.Kitchen.draw("P01", True, rng)
    segs = (tep.Segment(0.0, 6.0, 0, 1, 0.5), tep.Segment(7.0, 13.0, 1, 1, 7.5))  # take cup, put cup
    video = tep.Video("P01_01", kitchen, "train", segs, 14, np.random.SeedSequence(0))
    frames = tep.render_video(video, rng).astype(float).mean(axis=3)
    bright = frames > 200  # the object is painted in 205-255, walls are darker
    ys = np.arange(frames.shape[1])[None, :, None]
    centre_y = (bright * ys).sum(axis=(1, 2)) / np.maximum(bright.sum(axis=(1, 2)), 1)
    steps = np.diff(centre_y[::8])  # 0.32 s apart
    take, put = steps[: 6 * 25 // 8 - 1], steps[7 * 25 // 8 + 1: 13 * 25 // 8 - 1]
    assert (take < 0).mean() > 0.7 and (put > 0).mean() > 0.7  # y grows downwards
    assert centre_y[: 6 * 25].max() < 32 < centre_y[7 * 25: 13 * 25].min()  # upper / lower half
    assert not bright[int(6.5 * 25)].any()  # nothing between actions


def test_epic_validation_has_unseen_kitchens(toy_ep):
    """Domain shift: the unseen kitchen's walls are blue and its room is louder."""
    media = toy_ep["train"].parent / "media"
    val = read_epic(toy_ep["validation"], "test")
    spec = Spec(clip_seconds=1.0, fps=25, short_side=64, sample_rate=16000, n_mels=128)
    stats = {}
    for video in ("P01_01", "P01_02", "P02_01"):
        first = min(c.start for c in read_epic(toy_ep["train"]) + val if c.video == video)
        frames = decode_video(media / f"{video}.mp4", spec).astype(float)  # the idle first second
        wave = decode_audio(media / f"{video}.mp4", spec)[: int(16000 * min(first, 1.0))]
        stats[video] = (frames[..., 2].mean() - frames[..., 0].mean(), np.sqrt(np.mean(wave**2)))
    (seen_b_r, seen_rms), (again_b_r, again_rms), (unseen_b_r, unseen_rms) = (
        stats["P01_01"], stats["P01_02"], stats["P02_01"])
    assert seen_b_r < -40 and again_b_r < -40 and unseen_b_r > 40
    assert unseen_rms > 2 * max(seen_rms, again_rms)
