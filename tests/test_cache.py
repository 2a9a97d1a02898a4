"""Snakemake's between-workflow cache: a second clone takes the downloads, features and
pretraining of a first one from the cache; entries are keyed by the code that made them."""

import subprocess
import sys

import pytest
from conftest import copy_workflow, shrink, snakemake, write_config

from avmae import provenance

RUN = "results/pretrain/vggsound_toy_av_mid-shared_joint_e1"


def clone(path):
    path.mkdir()
    write_config(path, shrink(copy_workflow(path)))
    return path


def test_second_clone_takes_data_features_and_pretraining_from_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SNAKEMAKE_OUTPUT_CACHE", str(cache))
    first, second = clone(tmp_path / "first"), clone(tmp_path / "second")
    snakemake(first, "--cache", "--", f"{RUN}/model.pt")
    assert len(list(cache.iterdir())) >= 5   # lists, 2 shards x (download, features), pretraining
    assert (first / RUN / "model.pt").is_symlink()

    snakemake(second, "--cache", "--", f"{RUN}/model.pt")
    # no cached rule ran again (Snakemake leaves their logs empty); outputs link into the cache
    logs = {p.name: p.stat().st_size for p in (second / "results").rglob("*.log")}
    cached = {name: size for name, size in logs.items()
              if name.startswith(("split_list", "download_", "features_", "pretrain"))}
    assert len(cached) == 6 and not any(cached.values()), logs
    assert logs["merge.log"] and logs["features.log"]   # the cheap joins did run
    assert (second / RUN / "model.pt").resolve() == (first / RUN / "model.pt").resolve()
    assert (second / RUN / "config.yaml").exists()
    shard = second / "results/features/vggsound/shards/00000"
    assert shard.is_dir() and (shard / "shard.json").exists()

    # the merged manifest's clip paths are relative, so they resolve in the second clone
    manifest = (second / "results/data/vggsound/manifest.csv").read_text()
    assert str(first) not in manifest and "results/data/vggsound/shards/" in manifest


def test_code_digest_follows_imports_and_ignores_docstrings(tmp_path, monkeypatch):
    pkg = tmp_path / "avmae"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text('"""A."""\nfrom .b import f\nimport numpy\n')
    (pkg / "sub" / "b.py").write_text('def f():\n    """Doc."""\n    return 1  # one\n')
    (pkg / "sub" / "c.py").write_text("x = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)

    def digest():
        provenance._parsed.cache_clear()
        provenance.code_digest.cache_clear()
        return provenance.code_digest("avmae.sub.a")

    names, packages = provenance.dependencies("avmae.sub.a")
    assert names == {"avmae", "avmae.sub", "avmae.sub.a", "avmae.sub.b"} and packages == {"numpy"}
    before = digest()
    (pkg / "sub" / "b.py").write_text('def f():\n    """Other words."""\n\n    return 1\n')
    (pkg / "sub" / "c.py").write_text("x = 3\n")      # not imported by a
    assert digest() == before
    (pkg / "sub" / "b.py").write_text("def f():\n    return 2\n")
    assert digest() != before


@pytest.mark.parametrize("module", ["avmae.acquire.commands", "avmae.features.extract", "avmae.train.pretrain"])
def test_workflow_digests_parse_without_torch(module):
    code = (f"import sys; from avmae.provenance import code_digest; code_digest({module!r});"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_command_has_a_digest_of_its_own_code_without_torch():
    """The Snakefile's `code` params: every avmae command, parsed (never imported) while planning."""
    code = ("import sys; from avmae.provenance import command_digest, command_functions;"
            "[command_digest(c) for c in command_functions()]; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_command_digest_covers_its_function_and_lazy_imports_not_its_neighbours():
    deps = {c: provenance.command_dependencies(c)[0] for c in ("finetune", "pretrain", "table", "figure-curves")}
    assert "avmae.train.finetune" in deps["finetune"] and "avmae.train.finetune" not in deps["pretrain"]
    assert "avmae.report.tables" in deps["table"] and "avmae.report.figures" not in deps["table"]
    assert "avmae.report.figures" in deps["figure-curves"]
    assert provenance.command_digest("finetune") != provenance.command_digest("pretrain")
