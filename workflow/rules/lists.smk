# Official list files. A list entry {path, url} (optionally with the expected sha256) is
# fetched once from its URL to `path` by `avmae fetch-list`; a file already at `path`
# (a local copy the user provides) is used as it is. split_list records the SHA-256 of
# every list it reads in results/data/{dataset}/shards/lists/sources.json.
# FETCHABLE: common_data.smk.


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
        cache: "omit-software"
        retries: 2
        conda:
            "../envs/avmae.yaml"
        log:
            "results/lists/log/{listpath}.log",
        shell:
            "avmae fetch-list --url {params.url:q} --out {output:q} {params.sha256} > {log} 2>&1"


# Inputs only the user can supply (MISSING, common_data.smk: list entries without a url,
# not on disk). This rule stands in for each one the DAG needs so that the DAG completes;
# its priority function, which Snakemake evaluates for every job once the DAG is built,
# then stops the run before any job starts (dry runs too), naming each such file, its
# config key and where to get it. It has no command: it never runs.
if MISSING:

    rule missing_input:
        input:
            need_missing,
        output:
            "{missingpath}",
        wildcard_constraints:
            missingpath="|".join(re.escape(path) for path in MISSING),
        priority: stop_on_missing
        localrule: True
