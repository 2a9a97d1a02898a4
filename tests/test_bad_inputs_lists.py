"""Bad URL lists and ids: each gives an error naming the file and line (or, for an id,
the manifest row's reason), and nothing is written where the id points.

Lists are read whole (every malformed row reported at once, avmae.acquire.lists); ids
that are not safe file names and repeated (id, start) rows are refused per row by the
download (``rejections``: [A-Za-z0-9_-]{1,64}), before any URL or path is built."""

from pathlib import Path

import pytest

from avmae.acquire.download import download, rejections
from avmae.acquire.lists import (
    Clip,
    ListFormatError,
    read_audioset,
    read_clips,
    read_epic,
    read_vggsound,
    write_clips,
)

FIXTURES = Path(__file__).parent / "fixtures"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("reader", [read_vggsound, read_audioset, read_epic, read_clips])
def test_an_empty_file_is_an_error_naming_it(tmp_path, reader):
    for data in (b"", b"\n\n  \n", b"\xef\xbb\xbf"):   # nothing, blank lines, a lone BOM
        path = write(tmp_path, f"list_{len(data)}.csv", data)
        with pytest.raises(ListFormatError, match=f"^{path}: empty file"):
            reader(path)


def test_a_header_only_shard_list_is_an_empty_list_not_an_error(tmp_path):
    write_clips(tmp_path / "shard.csv", [])      # a shard no clip hashed to
    assert read_clips(tmp_path / "shard.csv") == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999", "-1"])
def test_non_finite_or_negative_starts_name_file_and_line(tmp_path, value):
    path = write(tmp_path, "v.csv", f"okid0000001,1,a,train\nbadid000002,{value},a,train\n".encode())
    with pytest.raises(ListFormatError) as err:
        read_vggsound(path)
    assert f"{path}:2: start_seconds '{value}' must be a finite number >= 0" in str(err.value)
    assert "1 malformed row(s)" in str(err.value)


def test_audioset_infinite_end_names_file_and_line(tmp_path):
    path = write(tmp_path, "as.csv", b"# a\n# b\n# YTID, start_seconds, end_seconds, positive_labels\n"
                                     b'abc, 0.000, inf, "/m/09x0r"\n')
    with pytest.raises(ListFormatError, match=f"{path}:4: end_seconds 'inf' must be a finite number >= 0"):
        read_audioset(path)


def test_a_bom_is_not_part_of_the_first_id(tmp_path):
    path = write(tmp_path, "v.csv", b"\xef\xbb\xbf-abc0000001,1,a,train\n")
    assert read_vggsound(path) == [Clip("-abc0000001", 1.0, "a", "train")]


def test_crlf_line_ends_leave_no_carriage_return_and_keep_line_numbers(tmp_path):
    path = write(tmp_path, "v.csv", b"id000000001,1,a b,train\r\nid000000002,2,\"x, y\",test\r\n")
    assert read_vggsound(path) == [Clip("id000000001", 1.0, "a b", "train"), Clip("id000000002", 2.0, "x, y", "test")]
    bad = write(tmp_path, "bad.csv", b"id000000001,1,a,train\r\nid000000002,2,a,val\r\n")
    with pytest.raises(ListFormatError, match=rf"{bad}:2: split 'val' is not one of train, test"):
        read_vggsound(bad)
    epic = (FIXTURES / "EPIC_100_train.csv").read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert read_epic(write(tmp_path, "epic.csv", epic)) == read_epic(FIXTURES / "EPIC_100_train.csv")


def test_non_utf8_bytes_name_file_line_and_byte(tmp_path):
    # Latin-1 "café" on line 2: byte 0xe9 is the 14th character of that line
    path = write(tmp_path, "v.csv", b"id000000001,1,cafe,train\nid000000002,1,caf\xe9,train\n")
    with pytest.raises(ListFormatError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at column 18\)"):
        read_vggsound(path)


def test_duplicate_rows_are_read_then_refused_once_by_the_download(tmp_path):
    """Repeated (id, start) rows: the list keeps them (line numbers stay the file's), the
    download takes the first and gives the repeat its reason; another start of the same
    id is a clip of its own."""
    path = write(tmp_path, "v.csv", b"dup00000001,1,a,train\ndup00000001,1,a,train\ndup00000001,5,a,train\n")
    clips = read_vggsound(path)
    assert len(clips) == 3
    repeat = "duplicate row: id 'dup00000001' starting at 1 s is listed before; only its first row is downloaded"
    assert rejections(clips) == [None, repeat, None]


BAD_IDS = {
    "percent-encoded traversal": "%2e%2e%2fetc%2fpasswd",
    "traversal": "../../etc/passwd",
    "absolute path": "/tmp/x",
    "newline": "abc\ndef",
    "NUL": "abc\x00def",
    "over 255 bytes": "a" * 256,
    "over 255 bytes in UTF-8": "\u00e9" * 128,      # 128 characters, 256 bytes
    "dot": ".",
}


@pytest.mark.parametrize("name", list(BAD_IDS))
def test_unsafe_ids_are_refused_before_any_path_or_url(tmp_path, name):
    bad = BAD_IDS[name]
    # a list can carry it (quoted CSV keeps a newline), the shard lists round-trip it
    write_clips(tmp_path / "shard.csv", [Clip(bad, 0.0, "a", "train")])
    (clip,) = read_clips(tmp_path / "shard.csv")
    assert clip.id == bad
    assert rejections([clip]) == [f"invalid id {bad!r}: expected 1-64 characters from [A-Za-z0-9_-]"]
    # the download writes its manifest row and nothing else: no file named after the id
    out = tmp_path / "deep" / "media"
    manifest = download([clip], "file:///nowhere/{id}.mp4", out, tmp_path / "manifest.csv", workers=1,
                        allow_file_urls=True)
    assert manifest.status.tolist() == ["unavailable"] and manifest.reason[0].startswith("invalid id")
    assert not out.exists() or list(out.iterdir()) == []
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert {str(p) for p in written} <= {"shard.csv", "manifest.csv", "manifest.journal.jsonl"}, written
