# Helpers of lists.smk, data.smk and features.smk: list files, shards and the options of
# the data commands (common.smk has the dataset lookups, common_results.smk the results side).
import re
import shlex
import sys

# download options passed through from config["download"] when set (else the CLI's polite
# defaults, avmae/acquire/policy.py); rate_limit_pause/max_pauses: how a rate-limited shard
# pauses; videos_per_hour: the budget of each session (download.sessions) over its shards
PACING = ("retries", "backoff", "max_backoff", "block_after", "sleep", "videos_per_hour",
          "rate_limit_pause", "max_pauses")


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


def download_options(name, shard):
    """avmae download's options for shard ``shard`` (5 digits) of dataset ``name``."""
    dl = config["download"]
    opts = ["--clip-seconds", dl["clip_seconds"]]   # download.workers: a resource (data.smk), no param
    local = dataset_config(name).get("local")
    if local is not None:  # a copy on disk, registered instead of downloaded (checked here, before any job)
        from avmae.acquire.local import workflow_options
        key, videos = f"datasets.{name}.local", dataset_config(name).get("videos") is not None
        return shlex.join(str(o) for o in opts + workflow_options(local, key, videos))
    for key in PACING:
        if dl.get(key) is not None:
            opts += [f"--{key.replace('_', '-')}", dl[key]]
    from avmae.acquire.policy import session_options  # cookies, proxy and pace file of the shard's session
    opts += session_options(dl.get("sessions"), int(shard))
    for arg in dataset_config(name).get("extractor_args") or []:  # yt-dlp's, e.g. the player client
        opts += ["--extractor-args", arg]
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


# Inputs that only the user can supply: list entries (lists, class lists, checksums) of
# downloaded datasets that name no `url` (VGGSound's list has no stable download URL) and
# are not on disk. Rule missing_input (lists.smk) stands in for each one so that the DAG
# builds; its priority function stops the run once the DAG is complete (dry runs too),
# before any job starts, with one line per missing input that the requested targets need.

# What each list is and where its official file comes from, by list format (`format`).
LIST_KINDS = {"vggsound": "VGGSound clip list", "audioset": "AudioSet segment CSV",
              "epic": "EPIC-KITCHENS-100 annotations", "clips": "clip list (id,start,label,split)"}
CLASS_KINDS = {"audioset": "AudioSet class index (class_labels_indices.csv)",
               "epic": "EPIC-KITCHENS-100 {kind} classes"}
LIST_SOURCES = {
    "vggsound": "the VGGSound authors' page https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (vggsound.csv)",
    "audioset": "https://research.google.com/audioset/download.html (segment CSVs, class_labels_indices.csv)",
    "epic": "https://github.com/epic-kitchens/epic-kitchens-100-annotations",
    "clips": "your own data (no public source)",
}
CHECKSUMS = ("EPIC-KITCHENS video checksums (md5.csv)",
             "https://github.com/epic-kitchens/epic-kitchens-download-scripts (data/md5.csv)")


def external_entries(name):
    """(path, what, config key, where to get it) of each list entry of dataset ``name`` that
    the workflow does not make; toy sets and entries with a `url` (fetched) have none."""
    if is_toy(name):
        return []
    ds, fmt = dataset_config(name), dataset_format(name)
    kind, source = LIST_KINDS.get(fmt, f"{fmt} list"), LIST_SOURCES.get(fmt, "your own data")
    found = []
    if "list" in ds:
        found.append((ds["list"], kind, f"datasets.{name}.list", source))
    for split, entries in (ds.get("lists") or {}).items():
        many = isinstance(entries, list)
        for i, entry in enumerate(entries if many else [entries]):
            found.append((entry, f"{kind} ({split} split)",
                          f"datasets.{name}.lists.{split}" + (f"[{i}]" if many else ""), source))
    for k, entry in class_entries(name):
        found.append((entry, CLASS_KINDS.get(fmt, f"{fmt} classes").format(kind=k),
                      f"datasets.{name}.classes" + (f".{k}" if k else ""), source))
    checksums = (ds.get("videos") or {}).get("checksums")
    if checksums is not None:
        found.append((checksums, *CHECKSUMS[:1], f"datasets.{name}.videos.checksums", CHECKSUMS[1]))
    return [(_local(e), what, key + (".path" if isinstance(e, dict) else ""), where)
            for e, what, key, where in found if not (isinstance(e, dict) and "url" in e)]


def missing_inputs():
    """{path: (what, key, where)} of the external inputs not on disk (every dataset, in config order)."""
    missing = {}
    for name in config["datasets"]:
        for path, what, key, where in external_entries(name):
            if path not in FETCHABLE and not path.startswith("results/") and not os.path.exists(path):
                missing.setdefault(path, (what, key, where))
    return missing


MISSING = missing_inputs()
NEEDED = set()  # the MISSING paths the DAG asked for (rule missing_input's jobs)


def missing_line(path):
    what, key, where = MISSING[path]
    return f"  {path}: {what}; config key {key}; from {where}"


def need_missing(wildcards):
    """Input function of missing_input (lists.smk), called for each of its jobs: the DAG needs the file."""
    NEEDED.add(wildcards.missingpath)
    return []


def stop_on_missing(wildcards):
    """Priority function of missing_input (evaluated once the DAG is complete, before
    any job starts): stops the run, naming every missing input the DAG needs."""
    # printed and raised as SystemExit: Snakemake would wrap any Exception of a priority
    # function in a traceback (InputFunctionException)
    paths = sorted(NEEDED | {wildcards.missingpath}, key=list(MISSING).index)
    print(missing_message(paths), file=sys.stderr)
    raise SystemExit(1)


def missing_message(paths):
    """One line per path of MISSING: what it is, its config key, where to get it."""
    return "\n".join([
        f"Stopped before any job: {len(paths)} input file(s) must come from you "
        "(the workflow cannot make or download them):",
        *(missing_line(p) for p in paths),
        "Put each file at its path, or set its config key to where your copy is (in a config file "
        "given after the profile's: --configfile config/paper.yaml my.yaml), then rerun."])
