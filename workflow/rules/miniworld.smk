# The miniature world (docs/miniworld.md): its prompts, and its models trained on the CPU.
# One training job per family writes every checkpoint of the family's compute ladder; one
# job per ladder checkpoint and method fine-tunes its context extensions. The checkpoints
# then flow through the same inference as every other model.

MINI = config["miniworld"]


rule mini_prompts:
    output:
        expand("results/prompts/{{dataset}}/{n_shots}.json", n_shots=sorted(MINI["n_shots"])),
    params:
        n_shots=" ".join(map(str, sorted(MINI["n_shots"]))),
        # what `ctxscale prepare --config` reads for a miniature dataset (rerun trigger)
        settings=lambda wildcards: prepare_settings(wildcards.dataset),
    log:
        "logs/prompts/{dataset}.log",
    wildcard_constraints:
        dataset=one_of(MINI["datasets"]),
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale prepare --config \"$CTXSCALE_CONFIG\" --dataset {wildcards.dataset}"
        " --n-shots {params.n_shots} --out-dir results/prompts/{wildcards.dataset} > {log} 2>&1"


for _family in MINI_TRAINED:

    rule:
        name:
            f"mini_train_{_family.replace('-', '_').replace('.', '_')}"
        output:
            [f for ck in MINI_LADDERS[_family] for f in mini_checkpoint_files(ck)],
        params:
            family=_family,
            settings=mini_settings(_family),
        log:
            f"logs/miniworld/train_{_family}.log",
        benchmark:
            f"logs/miniworld/train_{_family}.benchmark.tsv"
        threads: MINI["threads"]
        priority: 20  # the longest chain (train -> extend -> evaluate) starts first
        conda:
            "../../envs/inference.yaml"
        shell:
            "ctxscale mini train --config \"$CTXSCALE_CONFIG\" --family {params.family}"
            " --threads {threads} > {log} 2>&1"


# The extensions of one ladder checkpoint (one method) are seconds of work each beside a
# process start: one job fine-tunes them all, one after the other.
for _group, _models in world.extension_groups(MINI).items() if MINI_ON else []:

    rule:
        name:
            f"mini_extend_{_group}"
        input:
            sorted({f for m in _models for f in mini_checkpoint_files(MINI_BASE[m])}),
        output:
            [f for m in _models for f in mini_checkpoint_files(m)],
        params:
            models=" ".join(_models),
            settings=[mini_settings(m) for m in _models],
        log:
            f"logs/miniworld/extend_{_group}.log",
        benchmark:
            f"logs/miniworld/extend_{_group}.benchmark.tsv"
        threads: MINI["threads"]
        priority: 10
        conda:
            "../../envs/inference.yaml"
        shell:
            "ctxscale mini extend --config \"$CTXSCALE_CONFIG\" --model {params.models}"
            " --threads {threads} > {log} 2>&1"
