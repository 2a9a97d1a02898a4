# Feature extraction: log-mel spectrograms (arrays) and 25 fps frames (JPEG shards or arrays).
# Labels follow the dataset's format: single (VGGSound), multi-hot (AudioSet, in the order
# of class_labels_indices.csv) or verb + noun (EPIC); see avmae/data/labels.py.
import shlex


def label_options(name):
    opts = ["--labels", label_kind(name)]
    if classes_file(name):
        opts += ["--classes", classes_file(name)]
    return shlex.join(opts)


rule features:
    input:
        manifest="results/data/{dataset}/manifest.csv",
        classes=lambda w: classes_input(w.dataset),
    output:
        meta="results/features/{dataset}/meta.json",
    params:
        f=config["features"],
        out="results/features/{dataset}",
        labels=lambda w: label_options(w.dataset),
    threads: config["threads"]["data"]
    log:
        "results/features/{dataset}/log/features.log",
    shell:
        "avmae features --manifest {input.manifest} --out {params.out}"
        " --clip-seconds {params.f[clip_seconds]} --fps {params.f[fps]}"
        " --short-side {params.f[short_side]} --sample-rate {params.f[sample_rate]}"
        " --n-mels {params.f[n_mels]} --workers {threads}"
        " --video-format {params.f[video_format]} --jpeg-quality {params.f[jpeg_quality]}"
        " {params.labels} > {log} 2>&1"
