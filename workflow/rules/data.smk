# Prompts: one job per dataset writes the model-independent prompts
# file of every shot count (instance selection once, demonstrations per shot count).


rule prompts:
    output:
        expand("results/prompts/{{dataset}}/{n_shots}.json", n_shots=config["n_shots"]),
    params:
        options=prepare_options(),
        n_shots=" ".join(map(str, config["n_shots"])),
    log:
        "logs/prompts/{dataset}.log",
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --dataset {wildcards.dataset} --n-shots {params.n_shots}"
        " --out-dir results/prompts/{wildcards.dataset} {params.options} > {log} 2>&1"


rule config_copy:
    output:
        artifacts.CONFIG_COPY,
    params:
        digest=config_digest(_resolved),
    log:
        "logs/config_copy.log",
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale config \"$CTXSCALE_CONFIG\" --out {output} > {log} 2>&1"
