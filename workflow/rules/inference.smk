# Model weights and generation shards (BRIEF contract 3). An inference job writes
# OUT.partial record by record and renames it to OUT when complete; the partial is not a
# declared output, so a killed run keeps it and the rerun resumes from it.


rule fetch_model:
    output:
        touch("cache/models/{model}.ready"),
    params:
        config=CFG,
        model=model_settings,
    log:
        "logs/fetch_model/{model}.log",
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/inference.yaml"
    shell:
        "ctxscale fetch-model --config {params.config} --model {wildcards.model} > {log} 2>&1"


rule infer:
    input:
        prompts="results/prompts/{dataset}/{n_shots}.json",
        model="cache/models/{model}.ready",
    output:
        "results/generations/{model}/{dataset}/{n_shots}.jsonl",
    params:
        config=CFG,
        model=model_settings,
    log:
        "logs/infer/{model}/{dataset}/{n_shots}.log",
    threads: config["inference"]["threads"]
    resources:
        gpu=gpus,
        mem_mb=infer_mem_mb,
        runtime=infer_runtime,
    conda:
        "../../envs/inference.yaml"
    shell:
        "ctxscale infer --config {params.config} --model {wildcards.model}"
        " --prompts {input.prompts} --out {output} >> {log} 2>&1"
