"""AudioSet and EPIC-KITCHENS-100 lists in their official formats, and the clip list."""

from pathlib import Path

import pytest

from avmae.acquire.lists import (
    Clip,
    ListFormatError,
    parse_timestamp,
    read_audioset,
    read_audioset_classes,
    read_clips,
    read_epic,
    read_list,
    write_clips,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_audioset_segments_with_comment_lines_and_quoted_labels():
    classes = read_audioset_classes(FIXTURES / "class_labels_indices.csv")
    assert list(classes)[:2] == ["/m/09x0r", "/m/05zppz"]
    assert classes["/m/05zppz"] == "Male speech, man speaking"
    clips = read_audioset(FIXTURES / "balanced_train_segments.csv", "train", classes)
    assert clips[0] == Clip("--PJHxphWEs", 30.0, "/m/09x0r;/t/dd00088", "train", end=40.0)
    assert clips[2].labels == ("/m/03fwl", "/m/04rlf", "/m/09x0r")
    assert [c.id for c in clips] == ["--PJHxphWEs", "--ZhevVpy1s", "--aE2O5G5WE", "--aO5cdqSAg"]
    assert read_list(FIXTURES / "balanced_train_segments.csv", "audioset", "test")[1].split == "test"


def test_audioset_malformed_rows_are_reported_together(tmp_path):
    path = tmp_path / "seg.csv"
    path.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=4, num_segs=4, num_unique_labels=527, num_positive_labels=5\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'okokokokok1, 0.000, 10.000, "/m/09x0r"\n'          # 4: fine
        'badend00000, 10.000, 5.000, "/m/09x0r"\n'          # 5: end before start
        'unknown0000, 0.000, 10.000, "/m/09x0r,/m/zzz"\n'   # 6: unknown label
        "threecols00, 0.000, 10.000\n"                      # 7: 3 columns
        'emptylabel0, 0.000, 10.000, "/m/09x0r,"\n'         # 8: empty label
        'okokokokok2, 1.5, 11.5, "/m/04rlf"\n')             # 9: fine
    classes = read_audioset_classes(FIXTURES / "class_labels_indices.csv")
    with pytest.raises(ListFormatError) as info:
        read_audioset(path, "train", classes)
    message = str(info.value)
    assert "4 malformed row(s)" in message
    for line, reason in [(5, "is not after"), (6, "'/m/zzz'"), (7, "expected 4 columns"),
                         (8, "empty label")]:
        assert f"{path}:{line}: " in message and reason in message
    assert f"{path}:4:" not in message and f"{path}:9:" not in message


def test_epic_annotations():
    train = read_epic(FIXTURES / "EPIC_100_train.csv", "train")
    assert train[0] == Clip("P01_01_0", 0.14, "verb:3;noun:3", "train", end=3.37, source="P01_01")
    assert train[3].start == pytest.approx(7 * 60 + 59.75) and train[3].video == "P01_01"
    assert train[4].labels == ("verb:1", "noun:40")  # quoted all_nouns list parsed as one field
    val = read_list(FIXTURES / "EPIC_100_validation.csv", "epic", "test")
    assert [(c.id, c.split, c.end) for c in val] == [("P01_11_0", "test", 1.89), ("P01_11_1", "test", 2.63)]


def test_epic_malformed_rows(tmp_path):
    lines = (FIXTURES / "EPIC_100_train.csv").read_text().splitlines()
    lines[1] = lines[1].replace("00:00:00.14", "0:0:x")            # 2: bad timestamp
    lines[2] = lines[2].replace(",6,light", ",six,light")           # 3: verb_class
    lines[3] = lines[3].replace("00:00:26.20", "00:00:20.00")       # 4: stop before start
    path = tmp_path / "EPIC_100_train.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ListFormatError) as info:
        read_epic(path)
    message = str(info.value)
    assert "3 malformed row(s)" in message
    for line, reason in [(2, "not HH:MM:SS.ff"), (3, "verb_class 'six'"), (4, "is not after")]:
        assert f"{path}:{line}: " in message and reason in message
    header = tmp_path / "noheader.csv"
    header.write_text("narration_id,video_id\n")
    with pytest.raises(ListFormatError, match="header lacks column"):
        read_epic(header)


def test_timestamps():
    assert parse_timestamp("01:02:03.5") == 3723.5
    assert parse_timestamp("00:00:07") == 7.0
    with pytest.raises(ValueError):
        parse_timestamp("00:61:00.00")


def test_clip_list_round_trips_every_format(tmp_path):
    clips = (read_list(FIXTURES / "vggsound.csv")
             + read_list(FIXTURES / "balanced_train_segments.csv", "audioset")
             + read_list(FIXTURES / "EPIC_100_train.csv", "epic"))
    write_clips(tmp_path / "clips.csv", clips)
    assert read_clips(tmp_path / "clips.csv") == clips
    assert read_list(tmp_path / "clips.csv", "clips") == clips
    with pytest.raises(ValueError, match="unknown list format"):
        read_list(tmp_path / "clips.csv", "youtube8m")
