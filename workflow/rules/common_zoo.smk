# Helpers of the Model Zoo rules (zoo.smk): the config's released models, their settings,
# and which model.pt a finetuning run starts from.

TOY_ZOO = "results/toy/zoo"


def zoo_models():
    return config.get("zoo", {}).get("models", {})


def zoo_model(name):
    if name not in zoo_models():
        raise ValueError(f"zoo model {name!r} is not defined under 'zoo.models' in the config")
    return zoo_models()[name]


def zoo_finetuned():
    """The finetuned models, by target dataset (DATASET_ORDER), modality (av, audio, video) and
    name: the Model Zoo table's rows, whatever the order of `zoo.models`."""
    return sorted((n for n, m in zoo_models().items() if m.get("modality")),
                  key=lambda n: (dataset_order(zoo_model(n)["target"]),
                                 ("av", "audio", "video").index(zoo_model(n)["modality"]), n))


def zoo_settings(name):
    """What the model is: its run's model settings, and for a finetuned model the
    finetuning settings of its target (MBT fusion layer, bottlenecks, test protocol)."""
    m = zoo_model(name)
    run = PretrainRun.parse(m["run"])
    if m.get("modality"):
        return {**finetune_settings(config, run, m["target"]), "target": m["target"], "modality": m["modality"]}
    return pretrain_settings(config, run)


def pretrained_model(run):
    """The model.pt a finetuning of ``run`` starts from: its pretraining's, or the released
    model `zoo.stand_in` names for it, which must have the run's model settings."""
    name = config.get("zoo", {}).get("stand_in", {}).get(run)
    if name is None:
        return f"results/pretrain/{run}/model.pt"
    ours = model_settings(config, PretrainRun.parse(run))
    released = model_settings(config, PretrainRun.parse(zoo_model(name)["run"]))
    if ours != released:
        raise ValueError(f"zoo.stand_in.{run}: {name} is a model of run {zoo_model(name)['run']}, whose model "
                         f"settings differ from {run}'s ({ours} vs {released})")
    return f"results/zoo/{name}/model.pt"


def zoo_entries():
    return [{"name": n, "dataset": zoo_model(n)["target"], "modality": zoo_model(n)["modality"],
             "released": zoo_model(n).get("reported"), "metrics": f"results/zoo/{n}/eval/metrics.json",
             "availability": f"results/data/{zoo_model(n)['target']}/availability.json"}
            for n in zoo_finetuned()]
