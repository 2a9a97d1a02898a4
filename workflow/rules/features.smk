# Feature extraction: log-mel spectrograms and 25 fps frames, written as arrays.


rule features:
    input:
        manifest="results/data/{dataset}/manifest.csv",
    output:
        meta="results/features/{dataset}/meta.json",
    params:
        f=config["features"],
        out="results/features/{dataset}",
    threads: config["threads"]["data"]
    log:
        "results/features/{dataset}/log/features.log",
    shell:
        "avmae features --manifest {input.manifest} --out {params.out}"
        " --clip-seconds {params.f[clip_seconds]} --fps {params.f[fps]}"
        " --short-side {params.f[short_side]} --sample-rate {params.f[sample_rate]}"
        " --n-mels {params.f[n_mels]} --workers {threads} > {log} 2>&1"
