"""Every value of config/paper.yaml names its source: an official config key or official
code name (scenic/projects/av_mae/...), a section or table of the paper, hyperparameters.md, or "our choice: ...".

The YAML is parsed (``yaml.compose``: nodes with their line numbers); a leaf's source is
looked for in the comment of its own lines, then of each enclosing mapping's key line,
and in the comment lines directly above those keys."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"

SOURCE = re.compile(
    r"configs/(vggsound|audioset)/(pretrain|finetune)\.py: \S"   # official config and key
    r"|av_mae/[\w/]+\.py: \S"                                      # official code and name
    r"|av_mae/README\.md"                                            # the official Model Zoo
    r"|paper (Sec\.|Table|Fig\.) ?\d"                              # the paper's section, table, figure
    r"|hyperparameters\.md"
    r"|our choice: \S")


def comment(line: str) -> str:
    """The comment of a YAML line ('' if none): from a '#' outside quotes that starts the
    line or follows a blank."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                if quote == "'" and line[i + 1:i + 2] == "'":
                    i += 1
                else:
                    quote = None
        elif c in "\"'":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[i + 1:]
        i += 1
    return ""


def _lines(node) -> range:
    """The lines a node spans."""
    end = node.end_mark.line - (node.end_mark.column == 0 and node.end_mark.line > node.start_mark.line)
    return range(node.start_mark.line, end + 1)


def leaves(node, path=(), keys=()):
    """(path, lines of the leaf, enclosing mappings' lines, innermost first) of every leaf:
    a scalar, or a sequence holding no mapping (e.g. [16, 16]). A mapping's lines are its
    key's line, and all the lines of a flow mapping ({...}) written over several."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            own = (key.start_mark.line,)
            if isinstance(value, yaml.MappingNode) and value.flow_style:
                own += tuple(_lines(value))
            yield from leaves(value, path + (key.value,), (own,) + keys)
    elif isinstance(node, yaml.SequenceNode) and any(_has_mapping(v) for v in node.value):
        for i, value in enumerate(node.value):
            yield from leaves(value, path + (str(i),), keys)
    else:
        yield path, _lines(node), keys


def _has_mapping(node) -> bool:
    if isinstance(node, yaml.MappingNode):
        return True
    return isinstance(node, yaml.SequenceNode) and any(_has_mapping(v) for v in node.value)


def comments_above(lines: list[str], line: int) -> list[str]:
    """The comment-only lines directly above ``line`` (no blank line between)."""
    out = []
    i = line - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.append(lines[i])
        i -= 1
    return out


def source_of(lines: list[str], own: range, keys: tuple[tuple[int, ...], ...]) -> str | None:
    """The first source tag covering a leaf, or None."""
    candidates = [comment(lines[i]) for i in own]
    for mapping in keys:
        candidates.extend(comment(lines[i]) for i in mapping)
        candidates.extend(comments_above(lines, mapping[0]))
    for text in candidates:
        m = SOURCE.search(text)
        if m:
            return m.group(0)
    return None


def unsourced(text: str) -> list[str]:
    """Dotted paths of the leaves of ``text`` (YAML) without a source."""
    lines = text.splitlines()
    root = yaml.compose(text)
    return [".".join(path) for path, own, keys in leaves(root) if source_of(lines, own, keys) is None]


def test_every_paper_value_names_its_source():
    missing = unsourced(PAPER.read_text())
    assert not missing, (f"{PAPER.relative_to(ROOT)}: {len(missing)} value(s) without a source "
                         f"({SOURCE.pattern}): " + ", ".join(missing))


def test_every_leaf_is_visited():
    """The walk reaches every leaf of the parsed config (none hides in a sequence)."""
    def count(v):
        if isinstance(v, dict):
            return sum(count(x) for x in v.values())
        if isinstance(v, list) and any(isinstance(x, dict) for x in v):
            return sum(count(x) for x in v)
        return 1
    text = PAPER.read_text()
    assert len(list(leaves(yaml.compose(text)))) == count(yaml.safe_load(text)) > 150


@pytest.mark.parametrize("text, missing", [
    # a leaf with no comment anywhere above it
    ("a:\n  b: 1\n", ["a.b"]),
    # its own line
    ("a:\n  b: 1   # paper Sec. 4.1\n", []),
    # the comment directly above the enclosing mapping's key covers its leaves
    ("# configs/audioset/finetune.py: circular_time_shift\na:\n  b: 1\n  c: [1, 2]\n", []),
    # ... but not across a blank line
    ("# our choice: x\n\na:\n  b: 1\n", ["a.b"]),
    # one leaf sourced, its sibling not; a '#' inside quotes is no comment
    ("a:\n  b: 1   # hyperparameters.md\n  c: \"x # our choice: y\"\n", ["a.c"]),
    # a word that only looks like a source
    ("a: 1   # our choice:\nb: 2   # paper\nc: 3  # configs/vggsound/pretrain.py\n", ["a", "b", "c"]),
    # a flow mapping over two lines, sourced on its key line; a mapping inside a sequence
    ("a: {b: 1,\n    c: 2}   # av_mae/datasets/dataset_utils.py: sample_sequence\n"
     "d:\n  - {e: 1}\n  - {f: 2}   # our choice: z\n", ["d.0.e"]),
])
def test_the_checker_names_the_leaves_without_source(text, missing):
    assert unsourced(text) == missing
