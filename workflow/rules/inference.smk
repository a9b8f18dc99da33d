# Model weights and generation shards.
#
# One inference job per (model, dataset) runs every shot count through `ctxscale infer`
# (via `ctxscale infer-dataset`) and lists the shards with their sha256 (`manifest`).
# The shards are declared outputs flagged `update`: Snakemake knows them (`--forcerun
# scores` regenerates a deleted one) but never deletes them before a rerun, so a killed or
# rerun job keeps every finished shard and resumes the interrupted one from its .partial;
# stale shards (other settings) are regenerated.

# Real models run the config's shot grid on every dataset (miniature models: their plan).
REAL_N_SHOTS = sorted(int(k) for k in config["n_shots"])


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
        manifest="results/generations/{model}/{dataset}/manifest.tsv",
        shards=update(
            expand("results/generations/{{model}}/{{dataset}}/{n}.jsonl", n=REAL_N_SHOTS)
        ),
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
        " --dataset {wildcards.dataset} --out {output.manifest} >> {log} 2>&1"


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
                {
                    artifacts.prompts_for(MODELS[m], d, k)
                    for m in _models
                    for d, ks in MODELS[m].plan
                    for k in ks
                }
            ),
            models=[f for m in _models for f in mini_checkpoint_files(m)],
        output:
            manifests=[artifacts.dataset_manifest(m, d) for m in _models for d in MINI["datasets"]],
            shards=update(shard_files(_models)),
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
            " --dataset {params.datasets} --out {output.manifests} >> {log} 2>&1"
