# Helpers of lists.smk, data.smk and features.smk: list files, shards and the options of
# the data commands (common.smk has the dataset lookups, common_results.smk the results side).
import re
import shlex

# download options passed through from config["download"] when set (else the CLI's polite defaults)
PACING = ("retries", "backoff", "max_backoff", "block_after", "sleep", "rate", "cookies", "proxy")


def n_shards(name):
    return dataset_config(name).get("shards", config["download"].get("shards", 1))


def shard_names(name):
    return [f"{i:05d}" for i in range(n_shards(name))]


def list_args(name, splits=None):
    """--list arguments, [SPLIT=]PATH (see list_files); only `splits` when given."""
    return [f"{split}={path}" if split else path for split, path in list_files(name)
            if splits is None or split in splits]


def list_options(name, splits=None):
    opts = ["--format", dataset_format(name), *classes_options(name)]
    for arg in list_args(name, splits):
        opts += ["--list", arg]
    return shlex.join(opts)


def toy_options(name):
    """The dataset's `toy` settings as `avmae toy` options (--clips-per-class 40 ...)."""
    toy = dataset_config(name)["toy"]
    return shlex.join(str(o) for key in sorted(toy) for o in (f"--{key.replace('_', '-')}", toy[key]))


def download_options(name):
    dl = config["download"]
    opts = ["--clip-seconds", dl["clip_seconds"], "--workers", dl["workers"]]
    for key in PACING:
        if dl.get(key) is not None:
            opts += [f"--{key.replace('_', '-')}", dl[key]]
    if is_toy(name) or url_template(name).startswith("file:"):  # generated or local copies
        opts.append("--allow-file-urls")
    if "{toy_media}" in url_template(name):  # a relative path keeps the command clone-independent
        opts += ["--toy-media", toy_media(name)]
    videos = dataset_config(name).get("videos")
    if videos is not None:  # whole videos, each downloaded once, segments cut locally (EPIC)
        opts.append("--whole-videos")
        for path in checksums_file(name):
            opts += ["--checksums", path]
        if videos.get("keep"):
            opts.append("--keep-videos")
    return shlex.join(str(o) for o in opts)


def checksums_file(name):
    """[path] of a whole-video dataset's checksum list (`videos: checksums`, EPIC's md5.csv), or []."""
    entry = (dataset_config(name).get("videos") or {}).get("checksums")
    return [_local(entry)] if entry is not None else []


def label_options(name):
    return shlex.join(["--labels", label_kind(name), *classes_options(name)])


def fetchable_lists():
    """{path: entry} of every configured list entry that names a url (toy sets have none)."""
    found = {}
    for name, ds in config["datasets"].items():
        if ds.get("toy") is not None:
            continue
        entries = [entry for _, entry in list_entries(name)]
        entries += [entry for _, entry in class_entries(name)]
        entries += [ds["videos"]["checksums"]] if (ds.get("videos") or {}).get("checksums") else []
        found.update({e["path"]: e for e in entries if isinstance(e, dict) and "url" in e})
    return found


FETCHABLE = fetchable_lists()
