# Official list files. A list entry {path, url} (optionally with the expected sha256) is
# fetched once from its URL to `path` by `avmae fetch-list`; a file already at `path`
# (a local copy the user provides) is used as it is. split_list records the SHA-256 of
# every list it reads in results/data/{dataset}/shards/lists/sources.json.
import re
import shlex


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


if FETCHABLE:

    rule fetch_list:
        output:
            "{listpath}",
        wildcard_constraints:
            listpath="|".join(re.escape(path) for path in FETCHABLE),
        params:
            url=lambda w: FETCHABLE[w.listpath]["url"],
            sha256=lambda w: shlex.join(["--sha256", FETCHABLE[w.listpath]["sha256"]])
            if "sha256" in FETCHABLE[w.listpath] else "",
            code=DATA_CODE,
        cache: "omit-software"
        retries: 2
        shell:
            "avmae fetch-list --url {params.url:q} --out {output:q} {params.sha256}"
