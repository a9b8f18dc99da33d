# Prompts: one job per dataset writes the prompts file of every shot count (instance
# selection once, demonstrations per shot count), filtered to max_instance_tokens with
# data.tokenizer; one job per (family tokenizer, dataset) writes the same with a family's
# own tokenizer under results/prompts/by_tokenizer/<folder>/ (artifacts.prompts_for).


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


rule prompts_tokenizer:
    output:
        expand(
            "results/prompts/by_tokenizer/{{tokenizer}}/{{dataset}}/{n_shots}.json",
            n_shots=config["n_shots"],
        ),
    params:
        options=lambda wildcards: prepare_options(OWN_TOKENIZERS[wildcards.tokenizer]),
        n_shots=" ".join(map(str, config["n_shots"])),
    log:
        "logs/prompts/by_tokenizer/{tokenizer}/{dataset}.log",
    wildcard_constraints:
        tokenizer=one_of(OWN_TOKENIZERS),
        dataset=one_of(config["datasets"]),
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --dataset {wildcards.dataset} --n-shots {params.n_shots}"
        " --out-dir results/prompts/by_tokenizer/{wildcards.tokenizer}/{wildcards.dataset}"
        " {params.options} > {log} 2>&1"


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
