"""Paper tables: our numbers (read from the runs' metrics.json) beside the paper's.

One path serves every table: a spec (``avmae.report.specs``) lists the rows, and for
each cell the ``metrics.json`` and key of our number and the paper's number.
:func:`build_table` reads them into a frame with, per column, ``ours`` and ``paper``,
and in the paper profile (the spec's ``profile``) ``diff`` (ours - paper): a toy
table's numbers are not comparable with the paper's, and its footnote says so. Rows
the paper quotes from other works carry paper values only. :func:`write_table` writes
it as CSV, Markdown and LaTeX (booktabs), with a footnote on the clips used (features
``meta.json`` counts and the download availability report) and the paper's setting.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from avmae.io import write_text
from avmae.report.specs import METRIC_NAMES

PARTS = ("ours", "paper", "diff")


def parts_of(profile: str | None) -> tuple[str, ...]:
    """The parts of each paper column: ours and paper, and diff (ours - paper) in the paper profile."""
    return PARTS if profile == "paper" else PARTS[:2]


def _read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read {what} ({e})") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(value).__name__}")
    return value


def read_metric(path: str | Path, key: str) -> float:
    """``key`` of a metrics.json; a missing file, bad JSON or missing key names the file."""
    metrics = _read_json(path, "metrics")
    if key not in metrics:
        raise KeyError(f"{path}: metrics have no {key!r} (keys: {sorted(metrics)})")
    try:
        value = float(metrics[key])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: metric {key!r} is not a number: {metrics[key]!r}") from e
    if not math.isfinite(value):
        raise ValueError(f"{path}: metric {key!r} is {value}")
    return value


def dataset_sources(spec: dict) -> list[tuple[str, dict, str]]:
    """(dataset, clip counts, availability footnote) of each dataset the table uses."""
    out = []
    for ds, files in spec["datasets"].items():
        meta = _read_json(files["meta"], "features meta")
        availability = _read_json(files["availability"], "availability report")
        if "footnote" not in availability:
            raise KeyError(f"{files['availability']}: availability report has no 'footnote'")
        out.append((ds, meta.get("counts", {}), availability["footnote"]))
    return out


def footnote(spec: dict, sources: list[tuple[str, dict, str]]) -> str:
    keys = sorted({c["key"] for row in spec["rows"] for c in row["cells"].values() if "key" in c})
    clips = "; ".join(f"{ds} {counts.get('train', 0)} train / {counts.get('test', 0)} test"
                      for ds, counts, _ in sources)
    lines = [f"Ours: {', '.join(METRIC_NAMES.get(k, k) for k in keys)}, on the clips that survived download "
             f"and feature extraction ({clips}).",
             *(f"{avail}." for _, _, avail in sources if avail), *spec.get("notes", [])]
    return " ".join(lines)


def build_table(spec: dict) -> pd.DataFrame:
    """The table of ``spec``, its footnote from the spec's datasets' files."""
    d = spec.get("decimals", 1)
    diff = "diff" in parts_of(spec.get("profile"))
    quoted = any(row.get("quoted") for row in spec["rows"])
    records = []
    for row in spec["rows"]:
        rec = {c: row["labels"].get(c, "") for c in spec["label_columns"]}
        if quoted:
            rec["Source"] = "paper (quoted)" if row.get("quoted") else "ours"
        for col in spec["columns"]:
            cell = row["cells"].get(col, {})
            ours = read_metric(cell["metrics"], cell["key"]) if "metrics" in cell else None
            paper = cell.get("paper")
            rec[f"{col} (ours)"] = None if ours is None else round(ours, d)
            rec[f"{col} (paper)"] = paper
            if diff:
                rec[f"{col} (diff)"] = None if ours is None or paper is None else round(ours - paper, d)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    df.attrs["title"] = spec["title"]
    df.attrs["label_columns"] = list(spec["label_columns"]) + (["Source"] if quoted else [])
    df.attrs["columns"] = list(spec["columns"])
    df.attrs["parts"] = list(parts_of(spec.get("profile")))
    df.attrs["footnote"] = footnote(spec, dataset_sources(spec))
    return df


# ----------------------------------------------------------------------------- output
def format_cell(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_table(title: str, align: str, head: list[str], rows: list[list[str]], footnote: str) -> str:
    """A booktabs table: ``head`` lines (each ending ``\\\\`` or a rule) above the ``midrule``,
    ``rows`` of cells below it, the footnote under the tabular."""
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{latex_escape(title)}}}",
             r"\begin{tabular}{" + align + "}", r"\toprule", *head, r"\midrule",
             *(" & ".join(cells) + r" \\" for cells in rows),
             r"\bottomrule", r"\end{tabular}", f"\\par\\smallskip{{\\footnotesize {latex_escape(footnote)}}}",
             r"\end{table}", ""]
    return "\n".join(lines)


def to_latex(df: pd.DataFrame, decimals: int = 1) -> str:
    """A booktabs table: label columns, then per paper column a group of ours / paper (/ diff)."""
    labels, columns = df.attrs["label_columns"], df.attrs["columns"]
    parts = df.attrs.get("parts") or [p for p in PARTS if f"{columns[0]} ({p})" in df.columns]
    n = len(labels) + len(parts) * len(columns)
    groups = [""] * len(labels) + [f"\\multicolumn{{{len(parts)}}}{{c}}{{{latex_escape(c)}}}" for c in columns]
    rules = [f"\\cmidrule(lr){{{len(labels) + 1 + i * len(parts)}-{len(labels) + (i + 1) * len(parts)}}}"
             for i in range(len(columns))]
    head = [" & ".join(groups) + r" \\", " ".join(rules),
            " & ".join([latex_escape(c) for c in labels] + list(parts) * len(columns)) + r" \\"]
    rows = [[latex_escape(row[c]) for c in labels]
            + [format_cell(row[f"{c} ({p})"], decimals) for c in columns for p in parts]
            for _, row in df.iterrows()]
    return latex_table(df.attrs["title"], "l" * len(labels) + "r" * (n - len(labels)), head, rows,
                       df.attrs.get("footnote", ""))


def write_table(df: pd.DataFrame, out_prefix: str | Path, title: str | None = None, decimals: int = 1) -> None:
    """Write ``{out_prefix}.csv``, ``.md`` and ``.tex`` (booktabs)."""
    out_prefix = Path(out_prefix)
    title = title or df.attrs.get("title", out_prefix.name)
    df.attrs.setdefault("title", title)
    write_text(out_prefix.with_suffix(".csv"), df.to_csv(index=False))
    cells = df.astype(object).where(df.notna(), None)  # empty cells as None, so tabulate writes "--"
    table = cells.to_markdown(index=False, missingval="--", floatfmt=f".{decimals}f")
    write_text(out_prefix.with_suffix(".md"), f"# {title}\n\n{table}\n\n{df.attrs.get('footnote', '')}\n")
    if "label_columns" in df.attrs:
        write_text(out_prefix.with_suffix(".tex"), to_latex(df, decimals))


def write_spec_table(spec: dict, out_prefix: str | Path) -> pd.DataFrame:
    """Build the table of ``spec`` from its files and write it (``avmae table``)."""
    df = build_table(spec)
    write_table(df, out_prefix, spec["title"], spec.get("decimals", 1))
    return df
