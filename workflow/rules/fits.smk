# Fits of the law on the fit-role models:
#   main              context-aware law, the configured penalty
#   no_penalty        the penalty ablation
#   penalty_variant   the other penalty form (centre fitted or fixed at n_ctx)
#   loss_variant      the other loss (absolute if the main fit's is squared)
#   extrapolation     fit on n_pmt < fit.holdout_npmt, MAE on the rest
#   context_agnostic  compute term only (Figure 1's baseline)


rule fit:
    input:
        FIT_INPUTS,
    output:
        "results/fits/{fit}.json",
    params:
        options=fit_options,
    log:
        "logs/fit/{fit}.log",
    # only the main fit bootstraps (worker processes); the point fits run side by side
    threads: lambda wildcards: config["fit"]["threads"] if wildcards.fit == "main" else 1
    conda:
        "../../envs/analysis.yaml"
    shell:
        "ctxscale fit {input} --out {output} {params.options} --jobs {threads} > {log} 2>&1"
