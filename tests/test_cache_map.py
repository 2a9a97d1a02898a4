"""Cached by inputs, exactly: every rule reruns when, and only when, what it uses changes.

On a workdir whose every job is marked finished (outputs created, then `snakemake --touch
--forceall`, which records each job's params, inputs and code in Snakemake's metadata), every
leaf of the config is changed to another valid value and the rules with a changed job (its
params, its set of inputs or its command changed, or a new job) must be exactly those
that workflow/rules/params_map.yaml declares for that key. Leaves with the same map entry
change together (one planning run per entry). Writing the config with sorted keys and
without comments changes nothing; editing an avmae module changes exactly the rules whose
commands import it (avmae.provenance.command_dependencies).

Snakemake's own summaries cannot tell this apart (a job downstream of a changed one shows
only "updated input", and `--list-changes params` lists every file), so a small driver
(CHANGES) asks Snakemake's persistence about each job of the DAG directly.
"""

import copy
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow   # minutes: ~100 planning runs of the toy and the paper workflow

ROOT = Path(__file__).resolve().parents[1]
MAP_FILE = ROOT / "workflow/rules/params_map.yaml"
TARGETS = ("all", "zoo")
PROFILES = {"toy": [], "paper": ["config/paper.yaml"]}  # config files over config/config.yaml

# `python changes.py RUNS.json` in a workdir: Snakemake once per run (a list of its arguments)
# in one process, printing for each job of the DAG one line `JOB <run> <json>`: its rule,
# whether its params, inputs or command changed, whether an output is missing. With
# --outputs (one run), each output path instead and whether it is a directory.
CHANGES = '''
import importlib, json, os, sys
import snakemake.cli
from snakemake.io import is_flagged
from snakemake.workflow import Workflow

OUTPUTS = "--outputs" in sys.argv
RUN = CODE = None


def report(self, change_type):
    self._prepare_dag(forceall=False, ignore_incomplete=False, lock_warn_only=True)
    self._build_dag()
    p = self.persistence
    for job in self.dag.jobs:
        outs = list(job.output)
        if OUTPUTS:
            for f in outs:
                print("OUT " + json.dumps([str(f), bool(is_flagged(f, "directory")), job.rule.name]))
            continue
        print(f"JOB {RUN} " + json.dumps({
            "rule": job.rule.name,
            "params": any(bool(p.params_changed(job, file=f)) for f in outs),
            "input": any(p.input_changed(job, file=f) for f in outs),
            "code": any(p.code_changed(job, file=f) for f in outs),
            "new": any(not os.path.exists(f) for f in outs)}), flush=True)


Workflow.list_changes = report
for RUN, (args, code) in enumerate(json.loads(open(sys.argv[1]).read())):
    if code:   # this run's avmae code: a copy, imported afresh
        sys.path[:] = [code] + [p for p in sys.path if p != CODE]
        CODE = code
        for name in [m for m in sys.modules if m == "avmae" or m.startswith("avmae.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    try:
        snakemake.cli.main(args + ["--list-changes", "params"])
    except SystemExit as e:
        if e.code:
            print(f"FAILED {RUN}", flush=True)
'''

# another valid value for string leaves, by key
ALTERNATIVES = {
    "profile": {"toy": "paper", "paper": "toy"},
    "video_format": {"jpeg": "array", "array": "jpeg"},
    "precision": {"auto": "fp32", "fp32": "auto", "bf16": "fp32"},
    "on_nonfinite": {"stop": "skip", "skip": "stop"},
    "video_decode": {"loader": "device", "device": "loader"},
    "audio_window": {"official": "centred", "centred": "official"},
    "audio_norm": {"raw": "dataset", "dataset": "raw", "fixed": "raw"},
    "transfer": {"official": "full", "full": "official"},
    "encoder": {"early": "mid", "mid": "early", "separate": "shared", "shared": "separate"},
    "decoder": {"shared": "separate", "separate": "shared", "early": "shared"},
    "objective": {"joint": "inpaint_video"},
    "size": {"toy": "toylarge", "toylarge": "toy", "base": "large", "large": "base"},
    "dataset": {"vggsound": "audioset", "audioset": "vggsound"},
    "pretrain": {"vggsound": "audioset", "audioset": "vggsound"},
    "target": {"vggsound": "epic", "audioset": "vggsound", "epic": "vggsound"},
    "name": {"adamw": "sgd", "sgd": "adamw"},
    "modality": {"av": "audio", "audio": "video", "video": "av"},
    "base": {"toy": "toylarge", "base": "large"},     # tables.sizes
    "large": {"toylarge": "toy", "large": "base"},
}
# integers with a narrow range of valid values
INTEGERS = {"eval_crops": {1: 3, 3: 1}, "jpeg_quality": None}


# Leaves with no other valid value here (the map still declares them): a toy set's format
# picks its generator, whose settings `toy` holds; a downloaded set's, the format of its lists.
# A leaf that is null (`toy: null`, not a toy set) stays so.
UNCHANGEABLE = {"datasets.*.format": "fixed by the toy settings or the list files",
                "tables.table1.objective": "joint is the only one (the schema's enum)"}


def leaves(cfg, path=()):
    """(key path, value) of every leaf: values that are not non-empty mappings."""
    if isinstance(cfg, dict) and cfg:
        for key, value in cfg.items():
            yield from leaves(value, path + (key,))
    else:
        yield path, cfg


def perturbed(path, value, cfg=None):
    """Another valid value for leaf ``path`` (of ``cfg``)."""
    key = path[-1]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):   # x3: epochs scaled by tables.epoch_scale still name other runs
        if key in INTEGERS:
            return INTEGERS[key][value] if INTEGERS[key] else value + 1
        return value * 3 if value >= 2 else value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        if key in ALTERNATIVES and value in ALTERNATIVES[key]:
            return ALTERNATIVES[key][value]
        if key == "run":   # another encoder: other model settings
            return value.replace("_separate-", "_early-") if "_separate-" in value else \
                value.replace("_mid-", "_separate-")
        return value + "2"
    if isinstance(value, list):
        if path[-2:] == ("table3", "unimodal"):
            return [value[0], "early"]
        if value and isinstance(value[0], (int, float)) and not isinstance(value[0], bool):
            return [perturbed(path, value[0]), *value[1:]]
        return value[:-1] if len(value) > 1 else [perturbed(path, value[0])]
    if value == {} and key == "videos":
        return {"keep": True}
    if value == {} and key == "stand_in":   # a released pretrained model for its own run
        name, model = next((n, m) for n, m in cfg["zoo"]["models"].items() if not m.get("modality"))
        return {model["run"]: name}
    raise AssertionError(f"no other value known for {'.'.join(path)} = {value!r}")


# what an optimizer needs beside its name (the schema requires it)
OPTIMIZER_NEEDS = {"sgd": {"momentum": 0.9}, "adamw": {"betas": [0.9, 0.95]}}


def set_leaf(cfg, path, value):
    for key in path[:-1]:
        cfg = cfg[key]
    cfg[path[-1]] = value
    if path[-2:-1] == ("optimizer",) and path[-1] == "name":
        cfg.update(OPTIMIZER_NEEDS[value])


def load_map(profile):
    """[(pattern, rules)] for ``profile``: its own section over the common one; patterns
    are dotted keys with `*` for any one key."""
    sections = yaml.safe_load(MAP_FILE.read_text())
    entries = {**sections["common"], **sections[profile]}
    return [(tuple(k.split(".")), frozenset(v or ())) for k, v in entries.items()]


def entry_of(path, mapping):
    """The most specific map entry whose pattern matches the first keys of ``path``."""
    found = [(p, r) for p, r in mapping
             if len(p) <= len(path) and all(fnmatch.fnmatchcase(k, q) for k, q in zip(path, p))]
    if not found:
        return None
    return max(found, key=lambda e: (len(e[0]), -sum(q == "*" for q in e[0])))


def merged_config(workdir, profile):
    cfg = yaml.safe_load((workdir / "config/config.yaml").read_text())
    if profile == "paper":
        from snakemake.utils import update_config
        update_config(cfg, yaml.safe_load((workdir / "config/paper.yaml").read_text()))
    return cfg


class Workdir:
    def __init__(self, path: Path, profile: str, code: Path):
        self.path, self.profile, self.code = path, profile, code
        self.rules = set()   # the rules with a job in the DAG (of the unchanged config)
        self.outputs = set()

    def run(self, *args, code=None):
        env = {**os.environ, "PYTHONPATH": str(code or self.code)}
        proc = subprocess.run([sys.executable, *args], cwd=self.path, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def args(self, configfiles=()):
        """Targets, then the profile's config files and ``configfiles`` (merged in this order)."""
        files = PROFILES[self.profile] + list(configfiles)
        return [*TARGETS, "--cores", "1", *(["--configfile", *files] if files else [])]

    def snakemake(self, *args):
        return self.run("-m", "snakemake", *self.args(), *args)

    def changed(self, *configfiles) -> set[str]:
        """Rules with a job whose params, inputs or command changed, or a new job."""
        return self.changed_runs([configfiles])[0]

    def changed_runs(self, runs, codes=None, name="runs") -> list[set[str]]:
        """:meth:`changed` for each list of config files in ``runs``, in one process;
        ``codes``: for each run, the folder of the avmae code it imports (None: the workdir's)."""
        codes = codes or [None] * len(runs)
        (self.path / f"{name}.json").write_text(json.dumps(
            [[self.args(files), str(code or self.code)] for files, code in zip(runs, codes)]))
        proc = self.run("changes.py", f"{name}.json")
        found = [set() for _ in runs]
        seen = set()
        for line in proc.stdout.splitlines():
            if line.startswith("FAILED "):   # the run stopped (an invalid config?): its output is in stderr
                seen.add(int(line.split()[1]))
                found[int(line.split()[1])] = {"FAILED (see the driver's stderr)"}
            elif line.startswith("JOB "):
                _, run, job = line.split(" ", 2)
                job = json.loads(job)
                seen.add(int(run))
                if job["params"] or job["input"] or job["code"] or job["new"]:
                    found[int(run)].add(job["rule"])
        assert seen == set(range(len(runs))), proc.stdout[-2000:] + proc.stderr[-2000:]
        return found


def finish(path: Path, profile: str) -> Workdir:
    """A workdir whose every job of `all` and `zoo` is recorded as done (outputs are empty)."""
    for item in ("Snakefile", "workflow", "config"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, path / item)
    code = path.parent / f"{path.name}-code"   # the avmae code the workdir was finished with
    shutil.copytree(ROOT / "avmae", code / "avmae", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "changes.py").write_text(CHANGES)
    if profile == "paper":
        paper = yaml.safe_load((path / "config/paper.yaml").read_text())
        paper["download"]["shards"] = 2                   # planning time: few shards
        for ds in paper["datasets"].values():
            if "shards" in ds:
                ds["shards"] = 2
        (path / "config/paper.yaml").write_text(yaml.safe_dump(paper, sort_keys=False))
        for ds in paper["datasets"].values():              # the lists only the user can supply
            if isinstance(ds.get("list"), str):
                (path / ds["list"]).parent.mkdir(parents=True, exist_ok=True)
                (path / ds["list"]).write_text("")
    wd = Workdir(path, profile, code)
    (path / "plan.json").write_text(json.dumps([[wd.args(), None]]))
    proc = wd.run("changes.py", "plan.json", "--outputs")
    for line in proc.stdout.splitlines():
        if line.startswith("OUT "):
            out, is_dir, rule = json.loads(line[4:])
            wd.rules.add(rule)
            wd.outputs.add(out)
            if is_dir:
                (path / out).mkdir(parents=True, exist_ok=True)
            else:
                (path / out).parent.mkdir(parents=True, exist_ok=True)
                (path / out).touch()
    wd.snakemake("--touch", "--forceall")
    assert wd.changed() == set()
    return wd


@pytest.fixture(scope="module", params=list(PROFILES))
def finished(request, tmp_path_factory):
    return finish(tmp_path_factory.mktemp(request.param), request.param)


def groups(cfg, mapping):
    """{map entry: [leaf paths]} over the config's leaves; leaves no entry matches: under None."""
    found = {}
    for path, _ in leaves(cfg):
        found.setdefault(entry_of(path, mapping), []).append(path)
    return found


def in_chunks(workdir, runs, name, codes=None, size=12):
    """Workdir.changed_runs over ``runs`` in chunks (a planning process grows with each run),
    two processes side by side."""
    codes = codes or [None] * len(runs)
    chunks = [list(range(i, min(i + size, len(runs)))) for i in range(0, len(runs), size)]
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(lambda c: workdir.changed_runs([runs[i] for i in c[1]], [codes[i] for i in c[1]],
                                                          name=f"{name}{c[0]}"), enumerate(chunks))
        return [got for result in results for got in result]


def test_every_leaf_reruns_exactly_the_rules_the_map_declares(finished):
    """Expected: the map's rules that have jobs in this profile's DAG."""
    cfg = merged_config(finished.path, finished.profile)
    values = dict(leaves(cfg))
    by_entry = groups(cfg, load_map(finished.profile))
    assert None not in by_entry, f"config keys missing from {MAP_FILE.name}: " + ", ".join(
        ".".join(p) for p in by_entry[None])

    checks = []   # (map entry, leaves changed, config file)
    for i, (entry, paths) in enumerate(by_entry.items()):
        paths = [p for p in paths if values[p] is not None
                 and not any(fnmatch.fnmatchcase(".".join(p), k) for k in UNCHANGEABLE)]
        if not paths:
            continue
        edited = copy.deepcopy(cfg)
        for path in paths:
            set_leaf(edited, path, perturbed(path, values[path], cfg))
            if (isinstance(values[path], str) and values[path] not in finished.outputs
                    and (finished.path / values[path]).is_file()):   # a list only you can supply
                shutil.copy(finished.path / values[path], finished.path / perturbed(path, values[path]))
        (finished.path / f"perturbed_{i}.yaml").write_text(yaml.safe_dump(edited))
        checks.append((entry, paths, f"perturbed_{i}.yaml"))

    found = in_chunks(finished, [[c[2]] for c in checks], "leaves")
    wrong = [f"{'.'.join(entry[0])} ({', '.join('.'.join(p) for p in paths)}): map {sorted(entry[1] & finished.rules)}"
             f", changed {sorted(got)}"
             for (entry, paths, _), got in zip(checks, found) if got != entry[1] & finished.rules]
    assert not wrong, "\n".join(wrong)


def test_key_order_and_comments_rerun_nothing(finished):
    cfg = merged_config(finished.path, finished.profile)
    (finished.path / "sorted.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    assert finished.changed("sorted.yaml") == set()
    reverse = lambda d: {k: reverse(v) for k, v in reversed(d.items())} if isinstance(d, dict) else d
    (finished.path / "reversed.yaml").write_text(yaml.safe_dump(reverse(cfg), sort_keys=False))
    assert finished.changed("reversed.yaml") == set()


def rule_commands(workdir: Workdir) -> dict[str, set[str]]:
    """rule -> the avmae commands its shell command runs (from the dry run's printed commands)."""
    import re
    proc = workdir.snakemake("-n", "-p", "--forceall")
    found, rule = {}, None
    for line in proc.stdout.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        elif rule and re.search(r"(?:^|[\s(;&|])avmae\s+[a-z]", line):
            found.setdefault(rule, set()).update(re.findall(r"(?:^|[\s(;&|])avmae\s+([a-z][a-z0-9-]*)", line))
    return found


def test_code_edits_rerun_exactly_the_rules_whose_commands_import_the_module(finished):
    """For each distinct set of rules that import some avmae module, one such module is
    edited in a copy of the code: exactly those rules change. A comment changes nothing."""
    if finished.profile != "toy":
        pytest.skip("the paper profile has the same rules and commands")
    from avmae.provenance import command_dependencies
    importers = {}   # module -> rules whose commands import it
    for rule, commands in rule_commands(finished).items():
        for command in commands:
            for module in command_dependencies(command)[0]:
                importers.setdefault(module, set()).add(rule)
    picked = {}      # one module for each distinct set of rules
    for module, rules in sorted(importers.items()):
        picked.setdefault(frozenset(rules), module)
    edits = [(module, rules, "\n_EDITED = 1\n") for rules, module in picked.items()]
    edits.append(("avmae.train.finetune", frozenset(), "\n# a comment\n"))

    codes = []
    for i, (module, _, text) in enumerate(edits):
        code = finished.path.parent / f"{finished.path.name}-edit{i}"
        shutil.copytree(finished.code, code)
        path = code / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = code / module.replace(".", "/") / "__init__.py"
        path.write_text(path.read_text() + text)
        codes.append(code)
    found = in_chunks(finished, [[]] * len(edits), "code", codes)
    wrong = [f"{module}: importers {sorted(rules)}, changed {sorted(got)}"
             for (module, rules, _), got in zip(edits, found) if got != rules]
    assert not wrong, "\n".join(wrong)
