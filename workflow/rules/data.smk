# Prompts: one job per dataset writes the prompts file of every shot count (instance
# selection once, demonstrations per shot count), filtered to max_instance_tokens with
# data.tokenizer; one job per (family tokenizer, dataset) writes the same with a family's
# own tokenizer under results/prompts/by_tokenizer/<folder>/ (artifacts.prompts_for).
# `ctxscale prepare --config` reads the seed and the data block itself (tasks.config_options,
# kept in params as the rerun trigger). Flags kept: --dataset, --n-shots and --out-dir name
# the files the job declares as outputs; --tokenizer names which selection it writes.


rule prompts:
    output:
        expand("results/prompts/{{dataset}}/{n_shots}.json", n_shots=config["n_shots"]),
    params:
        settings=lambda wildcards: prepare_settings(wildcards.dataset),
        n_shots=" ".join(map(str, config["n_shots"])),
        tokenizer=tokenizer_option(config["data"]["tokenizer"]),
    log:
        "logs/prompts/{dataset}.log",
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --config \"$CTXSCALE_CONFIG\" --dataset {wildcards.dataset}"
        " --n-shots {params.n_shots} --out-dir results/prompts/{wildcards.dataset}"
        " {params.tokenizer} > {log} 2>&1"


rule prompts_tokenizer:
    output:
        expand(
            "results/prompts/by_tokenizer/{{tokenizer}}/{{dataset}}/{n_shots}.json",
            n_shots=config["n_shots"],
        ),
    params:
        settings=lambda wildcards: prepare_settings(
            wildcards.dataset, OWN_TOKENIZERS[wildcards.tokenizer]
        ),
        n_shots=" ".join(map(str, config["n_shots"])),
        tokenizer=lambda wildcards: tokenizer_option(OWN_TOKENIZERS[wildcards.tokenizer]),
    log:
        "logs/prompts/by_tokenizer/{tokenizer}/{dataset}.log",
    wildcard_constraints:
        tokenizer=one_of(OWN_TOKENIZERS),
        dataset=one_of(config["datasets"]),
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --config \"$CTXSCALE_CONFIG\" --dataset {wildcards.dataset}"
        " --n-shots {params.n_shots}"
        " --out-dir results/prompts/by_tokenizer/{wildcards.tokenizer}/{wildcards.dataset}"
        " {params.tokenizer} > {log} 2>&1"


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
