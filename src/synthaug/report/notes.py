"""The report's prose: what a reader must know beside a table (flags, caveats, what a seed varies)."""

from __future__ import annotations

from collections.abc import Sequence

from synthaug.core.variants import DISTILLED_VARIANT, added_generator
from synthaug.metrics.readings import GeneratorReading
from synthaug.report.records import EntryResult, generator_of


def unusable_note(margin: float, level: float) -> str:
    """What the flag 'unusable images' means, with the fid params that set it."""
    return (
        "A generator run is flagged 'unusable images' when at least half of the images it adds are of classes whose "
        "generated images are collapsed, or that the full-data classifier does not tell from the other classes' "
        f"(own − others below fid.usable_margin {margin:g}, or not significant at fid.usable_level {level:g}). "
        "Its synthetic variants then measure images a classifier cannot recognise, whatever their score."
    )


def collapse_notes(scores: dict[str, GeneratorReading]) -> list[str]:
    """One line per generator with collapsed classes: their names and diversity ratios."""
    return [
        f"**Collapsed classes from {g}**: "
        + ", ".join(f"{c} ({result.per_class[c].diversity_ratio:.2f})" for c in result.collapsed_classes)
        + f". Their generated images' mean pairwise feature distance is below {result.collapse_ratio:g} of the "
        "real test images' (fid.collapse_ratio): the generator draws nearly the same image whatever its latent."
        for g, result in scores.items()
        if result.collapsed_classes
    ]


def generator_notes(scores: dict[str, GeneratorReading]) -> list[str]:
    """The caveats a reader must see above the generator table, from what the fid stage recorded."""
    notes = collapse_notes(scores)
    fallback = {g: r.inception_unavailable for g, r in scores.items() if r.suffix and r.inception_unavailable}
    if fallback:
        reason = next(iter(fallback.values()))
        names = ", ".join(dict.fromkeys(map(generator_of, fallback)))
        notes.append(
            f"**Not Inception FID** for {names}: {reason}. Their distances use a classifier's "
            "features and cannot be compared with published FID."
        )
    deficient = [g for g, r in scores.items() if not r.fid_full_rank]
    if deficient:
        names = ", ".join(dict.fromkeys(map(generator_of, deficient)))
        notes.append(
            f"**Rank-deficient FID** for {names}: {scores[deficient[0]].fid_images} images per side "
            f"on {scores[deficient[0]].fid_dims}-d features (FID needs more images than dimensions); "
            "read KID, which is unbiased at any size, or lower fid.dims."
        )
    sharper = [g for g, r in scores.items() if r.image_size > r.real_image_size]
    if sharper:
        reading = scores[sharper[0]]
        names = ", ".join(dict.fromkeys(map(generator_of, sharper)))
        notes.append(
            f"**Generated images sharper than the real ones** from {names}: stored at {reading.image_size} px "
            f"beside real images of {reading.real_image_size} px, both resized per batch to the classifier's "
            "input. A classifier can tell them apart by sharpness alone, and FID reads the resolution gap too; "
            "synthesize.sdxl_turbo.image_size=null stores them at the real images' size."
        )
    lossy = {g: r for g, r in scores.items() if r.real_images_lossy}
    if lossy:
        encodings = ", ".join(f"{n} {name}" for name, n in next(iter(lossy.values())).real_image_encodings.items())
        notes.append(
            f"The real images were decoded from a lossy format ({encodings}): compression artefacts alone move "
            "FID, so compare these values only with FIDs computed on the same decoded set."
        )
    return notes


def distillation_note(results: list[EntryResult]) -> str:
    """Which teacher each distilled entry learnt from (its compute counts the student's loop only), or nothing."""
    taught = {
        f"{r.classifier}-{r.variant}": r.summary["teacher"]
        for r in results
        if r.variant == DISTILLED_VARIANT and "teacher" in r.summary
    }
    if not taught:
        return ""
    pairs = "; ".join(f"{student} from {teacher}" for student, teacher in taught.items())
    return f" Distilled (same seed's teacher; its compute is the student's loop only): {pairs}."


def filter_note(results: list[EntryResult], configured_judge: str) -> str:
    """What the synthetic filter did to each synthetic variant (judge, kept fraction per class), or that it was off."""
    lines = []
    for result in results:
        judge = result.summary.get("synthetic_filter_judge")
        if judge and added_generator(result.variant) and result.seed == results[0].seed:
            kept = ", ".join(f"{c} {f:.2f}" for c, f in result.summary.get("synthetic_kept_fraction", {}).items())
            lines.append(f"{result.classifier}-{result.variant}: judge {result.classifier}-{judge}, kept {kept}")
    if not lines:
        return (
            "Synthetic filter: off (every generated image is used; "
            f"train.synthetic_filter.judge is {configured_judge})."
        )
    return (
        "Synthetic filter (seed "
        + str(results[0].seed)
        + "; fraction of generated images kept per class): "
        + "; ".join(lines)
        + "."
    )


SEED_VARIES = {
    "per_seed": "A seed varies the classifier's initialization, batch order, augmentation and oversampled's copies, "
    "and for a synthetic variant its generator run too (SDXL-Turbo: its sampling seed), so the interval includes "
    "the generator's variance. The imbalanced split stays fixed.",
    "shared": "A seed varies the classifier's initialization, batch order, augmentation and oversampled's copies. "
    "The imbalanced split and the one shared generator run stay fixed (experiment.generator_runs: shared), so a "
    "synthetic verdict is conditional on that run.",
}


def verdict_note(generator_runs: str) -> str:
    return (
        "**Verdicts.** Each variant's test macro-F1 minus the reference's, seed by seed. "
        f"{SEED_VARIES[generator_runs]} "
        "The interval is the 95 % t interval of those differences: a 'within noise' row saw no effect larger than "
        "its half-width. The verdict is the paired t test's, corrected with Holm's step-down over every comparison "
        "in the table, so the chance of any false 'beats' or 'loses' stays at 5 %. Where the uncorrected interval "
        "alone would say more, the cell says so. With one seed there is no interval. 'Holm ±x': the smallest "
        "difference the table could call beats or loses at this comparison's seed-to-seed spread, at Holm's "
        "strictest step; a smaller effect needs more seeds (docs/results.md). The rows per class group (many, "
        "medium, few) compare macro-F1 over the group's classes, in the same family of tests."
    )


def setup_note(preset: str, description: str, classifiers: Sequence[str], seeds: int) -> str:
    """What ran: the preset, what it is for (experiment.description), its classifiers and seeds."""
    what = f"{'Classifiers' if len(classifiers) > 1 else 'Classifier'} {', '.join(classifiers)}, {seeds} seed(s)."
    return " ".join(part for part in (f"Preset {preset}.", description.strip(), what) if part)


def careful_note(synthetic_weight: float, real_epochs: int) -> str:
    return (
        "**Careful use.** weighted_<g> adds the generator's images with each one's loss weighted "
        f"{synthetic_weight:g} (train.careful.synthetic_weight; a real image's is 1). finetuned_<g> adds them, then "
        f"trains its last {real_epochs} epoch(s) on the real images only with a class-balanced loss "
        "(train.careful.real_epochs), and ignores early stopping."
    )


def compute_note() -> str:
    return (
        "**Compute.** Wall seconds the stages recorded on the device named: the classifier's training loop (mean over "
        "seeds), plus, for a synthetic variant, the training of its generator run and the synthesis of its images. "
        "Seeds and generator runs trained at once (train.seed_processes, train_generator.run_processes) share the "
        "cores, so each reads longer than it would alone. Extra compute per macro-F1 point (0.01) is priced only "
        "where the gain over baseline is established."
    )


def selection_note(select: str) -> str:
    """Which weights every test score comes from (train.select)."""
    if select == "last":
        return "Every entry is tested with the weights of its last epoch (train.select: last)."
    return (
        "Every entry is tested with the weights of its epoch with the best validation macro-F1 "
        "(train.select: best_val)."
    )


STALE_SWEEP = "**Not from this run** ({why}): shown for reference; its numbers may not hold for this code and params."


def weights_note(syntheses: dict[str, dict]) -> str | None:
    """Which pretrained weights drew the images: each model's source, Hub commit and variant."""
    parts = [
        f"{generator} {role} {w['source']} (commit {w['commit'] or 'unknown: a local folder'}, {w['variant']})"
        for generator, record in syntheses.items()
        for role, w in record.get("weights", {}).items()
    ]
    return "Pretrained weights: " + "; ".join(parts) + "." if parts else None
