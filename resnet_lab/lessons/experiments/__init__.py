"""The lessons' key experiments, one function per claim, and the verdict of each: one module per
lesson (vanishing, residual, architectures, resnext, beyond) and one for the notes' closing
point (backbone), all of it importable from here.

An experiment function runs what a lesson shows (seeded: `seed` fixes the weights and the
batches) and returns what the lesson plots; the claim function beside it turns that into a
`lessons.Verdict` whose margin states the paper's claim, measured. The lessons call these,
and `benchmarks/bench_verdicts.py` calls the very same functions over seeds, datasets and CPU
kernels, so a verdict that shows in a lesson shows everywhere, with a margin. Each verdict
that compares two runs or nets has its "changed / the same" line: `between(runs[a], runs[b])`
for trained ones, a `*_pair` function for measured ones (`identity_pair`, `gradient_pair`).
"""

from ...training.comparison import Compared, between
from .architectures import (
    SIMILAR,
    block_type_nets,
    block_type_runs,
    block_types_match,
    bottleneck_saves,
    resnet50_matches,
)
from .backbone import (
    DEEPER,
    SEEN,
    backbone_probes,
    deep_backbones_need_skips,
    features_transfer,
    linear_probe,
    pooled_features,
    probe,
    probe_errors,
    split_classes,
)
from .beyond import (
    HIGH_LR,
    basin_rises,
    deletion_damage,
    deletion_errors,
    ensemble_survives_deletion,
    equal_steps_plain,
    landscape_slices,
    matched_resnet,
    preact_nets,
    preact_runs,
    preact_start,
    preact_trains_better,
)
from .residual import (
    IDENTITY_BRANCH,
    IDENTITY_PAIR,
    IDENTITY_STACKS,
    block_gradients,
    branch_sizes,
    fit_identity,
    gradient_nets,
    gradient_pair,
    identity_fits,
    identity_is_easier,
    identity_pair,
    identity_stacks,
    layer_response_stds,
    responses_are_smaller,
    set_identity_weights,
    shallow_identity_fits,
    signal_through,
    skips_carry_the_gradient,
)
from .resnext import (
    LAB_PAIR,
    Reference,
    against_reference,
    budget_variants,
    cardinality_runs,
    forms_agree,
    grouped_is_faster,
    lab_budget,
    lab_pair,
    load_reference,
    median_ms,
    resnext_keeps_up,
    same_budget,
    seed_by_seed,
    three_forms,
    time_forms,
    write_reference,
)
from .vanishing import (
    LARGE,
    LEVEL,
    SLOWER,
    WATCHED_SIGMOIDS,
    WORSE,
    MLPTraining,
    bias_control,
    by_thirds,
    deep_plain_early_layers_slow,
    deeper_plain_trains_worse,
    early_layers_freeze,
    explode_ratios,
    large_weight_mlps,
    layer_learning,
    mlp_profiles,
    plain_explodes_with_bn,
    plain_vanishes_without_bn,
    ratio_in_training,
    regime_nets,
    regime_pairs,
    regime_table,
    residual_stays_healthy,
    scale_blind,
    sigmoid_vanishes,
    skips_reduce_degradation,
    train_sigmoid_mlp,
)

__all__ = [
    "Compared", "between",
    "DEEPER", "SEEN", "backbone_probes", "deep_backbones_need_skips", "features_transfer",
    "linear_probe", "pooled_features", "probe", "probe_errors", "split_classes",
    "SIMILAR", "block_type_nets", "block_type_runs", "block_types_match", "bottleneck_saves",
    "resnet50_matches", "HIGH_LR", "basin_rises", "deletion_damage", "deletion_errors",
    "ensemble_survives_deletion", "equal_steps_plain", "landscape_slices", "matched_resnet",
    "preact_nets", "preact_runs", "preact_start", "preact_trains_better",
    "IDENTITY_BRANCH", "IDENTITY_PAIR", "IDENTITY_STACKS", "block_gradients", "branch_sizes",
    "fit_identity", "gradient_nets", "gradient_pair", "identity_fits", "identity_is_easier",
    "identity_pair", "identity_stacks",
    "signal_through", "layer_response_stds", "responses_are_smaller",
    "set_identity_weights", "shallow_identity_fits", "skips_carry_the_gradient", "LAB_PAIR",
    "Reference",
    "against_reference", "budget_variants",
    "resnext_keeps_up", "cardinality_runs", "forms_agree", "grouped_is_faster",
    "lab_budget", "lab_pair", "load_reference", "median_ms", "same_budget", "seed_by_seed",
    "three_forms", "time_forms", "write_reference",
    "WATCHED_SIGMOIDS", "WORSE", "MLPTraining", "LARGE", "LEVEL", "SLOWER", "by_thirds",
    "bias_control", "explode_ratios", "large_weight_mlps", "scale_blind",
    "deep_plain_early_layers_slow", "deeper_plain_trains_worse", "early_layers_freeze",
    "layer_learning", "ratio_in_training", "mlp_profiles", "plain_explodes_with_bn",
    "plain_vanishes_without_bn", "regime_nets", "regime_pairs", "regime_table",
    "residual_stays_healthy", "sigmoid_vanishes",
    "skips_reduce_degradation", "train_sigmoid_mlp",
]
