# Model weights and generation shards.
#
# One inference job per (model, dataset) runs every shot count through `ctxscale infer`
# (via `ctxscale infer-dataset`). The shards themselves are not declared outputs, so a
# killed job never loses a finished shard: the rerun keeps finished shards and resumes
# the interrupted one from its .partial; stale shards (other settings) are regenerated.
# The declared output is the list of the (model, dataset)'s shards with their sha256.


rule fetch_model:
    output:
        "{cache}/models/{model}-{sha12}/ctxscale-model.json",
    params:
        gguf=lambda wildcards: MODELS[wildcards.model].gguf,
    log:
        "logs/fetch_model/{cache}/{model}-{sha12}.log",
    wildcard_constraints:
        cache=re.escape(CACHE),
        sha12="[0-9a-f]{12}",
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/inference.yaml"
    shell:
        "ctxscale fetch-model --config \"$CTXSCALE_CONFIG\" --model {wildcards.model}"
        " --cache-dir {wildcards.cache} > {log} 2>&1"


rule infer:
    input:
        prompts=infer_prompts,
        model=model_ready,
    output:
        "results/generations/{model}/{dataset}/manifest.tsv",
    params:
        model=model_settings,
    log:
        "logs/infer/{model}/{dataset}.log",
    wildcard_constraints:
        model=one_of(m for m in MODELS if m not in MINI_MODELS),
    threads: config["inference"]["threads"]
    resources:
        gpu=gpus,
        mem_mb=infer_mem_mb,
        runtime=infer_runtime,
    conda:
        "../../envs/inference.yaml"
    shell:
        "ctxscale infer-dataset --config \"$CTXSCALE_CONFIG\" --model {wildcards.model}"
        " --dataset {wildcards.dataset} --out {output} >> {log} 2>&1"


# Miniature models are evaluated in a few jobs, each running several models one after the
# other in one process: importing torch and transformers takes longer than evaluating one
# of them. A family's ladder is one job (ready when its run is), and the extensions of
# each ladder checkpoint another.
for _group, _models in MINI_INFER_GROUPS.items():

    rule:
        name:
            f"infer_mini_{_group}"
        input:
            prompts=sorted(
                {artifacts.prompt_path(d, k) for m in _models for d, ks in MODELS[m].plan for k in ks}
            ),
            models=[f for m in _models for f in mini_checkpoint_files(m)],
        output:
            [artifacts.dataset_manifest(m, d) for m in _models for d in MINI["datasets"]],
        params:
            models=" ".join(_models),
            settings=[settings_of(m) for m in _models],
            # each model's shot counts: the union of the group's prompts would hide a change
            plans=[MODELS[m].plan for m in _models],
            datasets=" ".join(MINI["datasets"]),
        log:
            f"logs/infer/mini_{_group}.log",
        threads: config["inference"]["threads"]
        conda:
            "../../envs/inference.yaml"
        shell:
            "ctxscale infer-dataset --config \"$CTXSCALE_CONFIG\" --model {params.models}"
            " --dataset {params.datasets} --out {output} >> {log} 2>&1"
