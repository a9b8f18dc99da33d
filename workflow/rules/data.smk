# Prompts: one model-independent file per (dataset, n_shots) (BRIEF contract 2).


rule prompts:
    output:
        "results/prompts/{dataset}/{n_shots}.json",
    params:
        config=CFG,
        data=config["data"],
        seed=config["seed"],
    log:
        "logs/prompts/{dataset}/{n_shots}.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --config {params.config} --dataset {wildcards.dataset}"
        " --n-shots {wildcards.n_shots} --out {output} > {log} 2>&1"


rule config_copy:
    output:
        artifacts.CONFIG_COPY,
    params:
        config=CFG,
        digest=config_digest(_resolved),
    log:
        "logs/config_copy.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale config {params.config} --out {output} > {log} 2>&1"
