"""VGGSound URL lists: the official CSV format, and errors that name file and line."""

import pytest

from avmae.acquire.lists import Clip, ListFormatError, read_vggsound, write_vggsound

OFFICIAL_ROWS = """\
---g-f_I2yQ,1,"people marching",test
--0PQM4-hqg,30,waterfall burbling,train
--56QUhyDQM,185,"playing steel guitar, slide guitar",test

--5OkAjCI7g,40.5,"people belly laughing",train
"""


def test_reads_official_format_with_quoted_labels(tmp_path):
    path = tmp_path / "vggsound.csv"
    path.write_text(OFFICIAL_ROWS)
    assert read_vggsound(path) == [
        Clip("---g-f_I2yQ", 1.0, "people marching", "test"),
        Clip("--0PQM4-hqg", 30.0, "waterfall burbling", "train"),
        Clip("--56QUhyDQM", 185.0, "playing steel guitar, slide guitar", "test"),
        Clip("--5OkAjCI7g", 40.5, "people belly laughing", "train"),
    ]


def test_write_then_read_round_trips(tmp_path):
    clips = [Clip("abc_DEF-123", 3.0, "dog barking, loud", "train"),
             Clip("zzzzzzzzzzz", 0.25, 'say "hi"', "test")]
    path = tmp_path / "sub" / "list.csv"
    write_vggsound(path, clips)
    assert read_vggsound(path) == clips
    assert path.read_text().splitlines()[0] == 'abc_DEF-123,3,"dog barking, loud",train'
    assert [p.name for p in path.parent.iterdir()] == ["list.csv"]  # no temp file left


def test_malformed_rows_are_reported_together(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "good0000001,1,fine,train\n"         # line 1: ok
        "onlythree,1,train\n"                # line 2: 3 columns
        "notanumber,abc,dog,train\n"         # line 3: start not numeric
        "negative000,-5,dog,test\n"          # line 4: negative start
        "badsplit000,0,dog,validation\n"     # line 5: unknown split
        ",0,dog,train\n"                     # line 6: empty id
        "emptylabel0,0,,train\n"             # line 7: empty label
        "good0000002,2,\"a, b\",test\n"      # line 8: ok
    )
    with pytest.raises(ListFormatError) as info:
        read_vggsound(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "6 malformed row(s)" in message
    for line, reason in [(2, "expected 4 columns"), (3, "not a number"), (4, ">= 0"),
                         (5, "'validation'"), (6, "empty id"), (7, "empty label")]:
        assert f"{path}:{line}: " in message and reason in message
    assert f"{path}:1:" not in message and f"{path}:8:" not in message


def test_many_errors_are_capped_with_a_count(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("".join(f"id{i},x,label,train\n" for i in range(25)))
    with pytest.raises(ListFormatError) as info:
        read_vggsound(path)
    message = str(info.value)
    assert "25 malformed row(s)" in message
    assert f"{path}:20:" in message and f"{path}:21:" not in message
    assert "... and 5 more" in message
