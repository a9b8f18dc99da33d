# Fits of the law on the fit-role models (their settings: artifacts.fit_settings, from the
# config's fit block, which `ctxscale fit --config` reads):
#   main              context-aware law, the configured penalty
#   no_penalty        the penalty ablation
#   penalty_variant   the other penalty form (centre fitted or fixed at n_ctx)
#   loss_variant      the other loss (absolute if the main fit's is squared)
#   floor_variant     the main fit's law with a fitted floor: floor + (1 - floor) P
#   coupling_variant  the main fit's law with B scaled by compute: B (C / C_c)^gamma
#   extrapolation     fit on n_pmt < fit.holdout_npmt, MAE on the rest
#   context_agnostic  compute term only (Figure 1's baseline)
# Flags kept on the command line: --variant and --where (which fit of the workflow, on which
# points: the job's identity, not config values) and --jobs {threads} (Snakemake schedules
# the threads, so the rule must pass what it reserved).


rule fit:
    input:
        FIT_INPUTS,
    output:
        "results/fits/{fit}.json",
    params:
        settings=lambda wildcards: artifacts.fit_settings(config, wildcards.fit),  # rerun trigger
    log:
        "logs/fit/{fit}.log",
    # only the main fit bootstraps (worker processes); the point fits run side by side
    threads: lambda wildcards: config["fit"]["threads"] if wildcards.fit == "main" else 1
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale fit {input} --config \"$CTXSCALE_CONFIG\" --variant {wildcards.fit}"
        " --where role=fit --out {output} --jobs {threads} > {log} 2>&1"
