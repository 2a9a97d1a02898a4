# URL lists and download: toy generation (toy profile only), then yt-dlp.


rule toy_dataset:
    output:
        list="results/toy/{dataset}/vggsound.csv",
        media=directory("results/toy/{dataset}/media"),
    params:
        toy=lambda w: dataset_config(w.dataset)["toy"],
        out="results/toy/{dataset}",
    threads: config["threads"]["data"]
    log:
        "results/toy/{dataset}/log/toy.log",
    shell:
        "avmae toy --out {params.out} --clips-per-class {params.toy[clips_per_class]}"
        " --test-fraction {params.toy[test_fraction]} --seed {params.toy[seed]}"
        " --workers {threads} > {log} 2>&1"


rule download:
    input:
        list=lambda w: list_path(w.dataset),
    output:
        manifest="results/data/{dataset}/manifest.csv",
    params:
        template=lambda w: url_template(w.dataset),
        file_urls=lambda w: "--allow-file-urls" if is_toy(w.dataset) else "",
        clip_seconds=config["download"]["clip_seconds"],
        media="results/data/{dataset}/media",
    threads: config["threads"]["data"]
    log:
        "results/data/{dataset}/log/download.log",
    shell:
        "avmae download --list {input.list} --url-template {params.template:q}"
        " --out {params.media} --manifest {output.manifest} {params.file_urls}"
        " --clip-seconds {params.clip_seconds} --workers {threads} > {log} 2>&1"
