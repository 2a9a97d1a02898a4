"""EPIC_100_{verb,noun}_classes.csv: parsing, errors, and the verb/noun heads they size."""

from pathlib import Path

import pandas as pd
import pytest

from avmae.acquire.lists import (
    EpicClasses,
    ListFormatError,
    read_classes,
    read_epic,
    read_epic_classes,
    read_list,
)
from avmae.features.labels import LabelError, LabelSpace
from avmae.toy import epic as toy_epic

FIXTURES = Path(__file__).parent / "fixtures"
VERBS = FIXTURES / "EPIC_100_verb_classes.csv"  # the first rows of the official files
NOUNS = FIXTURES / "EPIC_100_noun_classes.csv"
SPECS = [f"verb={VERBS}", f"noun={NOUNS}"]


def test_official_rows():
    assert read_epic_classes(VERBS) == ("take", "put", "wash", "open", "close")
    assert read_epic_classes(NOUNS) == ("tap", "spoon", "plate", "cupboard", "knife")
    assert read_classes(SPECS) == EpicClasses(read_epic_classes(VERBS), read_epic_classes(NOUNS))
    assert read_classes(None) is None and read_classes([]) is None


def test_malformed_rows_name_file_and_line(tmp_path):
    lines = VERBS.read_text().splitlines()
    lines[2] = lines[2].replace("1,put", "7,put", 1)          # id out of order
    lines[3] = lines[3].replace("2,wash,", "2,,", 1)          # empty key
    lines[4] = '3,open,"open, close",access'                  # instances not a list
    lines[5] = "4,close,['close']"                            # 3 columns
    path = tmp_path / "EPIC_100_verb_classes.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ListFormatError) as e:
        read_epic_classes(path)
    message = str(e.value)
    assert "4 malformed row(s)" in message
    for line, reason in ((3, "id '7' should be 1"), (4, "empty key"),
                         (5, "instances 'open, close' is not a list"), (6, "expected 4 columns")):
        assert f"{path}:{line}: {reason}" in message

    path.write_text("id,name,instances,category\n0,take,['take'],retrieve\n")
    with pytest.raises(ListFormatError, match=r":1: header 'id,name,instances,category' is not"):
        read_epic_classes(path)
    path.write_text("")
    with pytest.raises(ListFormatError, match="empty file"):
        read_epic_classes(path)


def test_class_specs_must_fit_the_format():
    with pytest.raises(ValueError, match="verb=PATH and noun=PATH"):
        read_classes([f"verb={VERBS}"])
    with pytest.raises(ValueError, match="do not fit the audioset format"):
        read_list(FIXTURES / "balanced_train_segments.csv", "audioset", "train", SPECS)
    with pytest.raises(ValueError, match="do not fit the epic format"):
        read_list(FIXTURES / "EPIC_100_train.csv", "epic", "train", FIXTURES / "class_labels_indices.csv")


def test_class_ids_outside_the_lists_are_row_errors():
    # the fixture lists use classes beyond the 5 verbs and 5 nouns of the fixture class lists
    with pytest.raises(ListFormatError) as e:
        read_list(FIXTURES / "EPIC_100_train.csv", "epic", "train", SPECS)
    assert ("EPIC_100_train.csv:3: verb_class 6 is not among the 5 classes of "
            "EPIC_100_verb_classes.csv") in str(e.value)
    assert ("EPIC_100_train.csv:4: noun_class 8 is not among the 5 classes of "
            "EPIC_100_noun_classes.csv") in str(e.value)


def test_heads_sized_and_named_by_the_class_lists():
    classes = read_classes(SPECS)
    space = LabelSpace.from_labels("verb_noun", ["verb:1;noun:2", "verb:0;noun:4"], classes)
    assert space.num_classes == (5, 5)
    meta = space.meta()
    assert meta["verb_names"] == ["take", "put", "wash", "open", "close"]
    assert meta["noun_names"][:3] == ["tap", "spoon", "plate"]
    assert LabelSpace.from_meta(meta) == space
    assert LabelSpace.from_labels("verb_noun", ["verb:1;noun:2"]).num_classes == (2, 3)  # no lists
    labels = pd.Series(["verb:1;noun:2", "verb:3;noun:114"], index=[6, 7])  # manifest lines
    with pytest.raises(LabelError, match=r"manifest:7: noun class 114 is not among the 5 noun"):
        LabelSpace.from_labels("verb_noun", labels, classes, source="manifest")


def test_toy_writes_both_class_lists(tmp_path):
    toy_epic.make_toy_epic(tmp_path, train_participants=1, unseen_participants=0,
                           videos_per_participant=1, segments_per_video=1)
    classes = read_classes([f"{kind}={tmp_path / name}" for kind, name in toy_epic.CLASS_FILES.items()])
    assert classes == EpicClasses(("take", "put", "wash", "cut"), ("plate", "cup", "door", "drawer"))
    assert read_epic(tmp_path / "EPIC_100_train.csv", "train", classes)
