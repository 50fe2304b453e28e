from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest

from synthaug.core.plots import save_figure
from synthaug.data.imbalance import minority_classes
from synthaug.metrics.calibration import calibration
from synthaug.metrics.generated import usability
from synthaug.metrics.readings import GeneratorReading
from synthaug.metrics.verdicts import difference_interval
from synthaug.report.document import Section, embedded_image, image, markdown_to_html_table, to_html
from synthaug.report.document import table as table_block
from synthaug.report.figures import (
    class_counts_figure,
    confusions_figure,
    curves_figure,
    recall_vs_count_figure,
    reliability_figure,
)
from synthaug.report.records import EntryResult
from synthaug.report.summaries import comparison_rows
from synthaug.report.tables import comparison_markdown, weighted_equals_macro

CLASSES = ["a", "b", "c", "d"]
T_975_1 = 12.706204736  # Student's t, 97.5 % quantile, 1 degree of freedom
TRAIN_COUNTS = {"a": 10, "b": 40, "c": 20, "d": 80}


def entry(variant: str, seed: int, accuracy: float, macro_f1: float, recalls: list[float]) -> EntryResult:
    per_class = {c: {"precision": 0.5, "recall": r, "f1": 0.5, "support": 10} for c, r in zip(CLASSES, recalls)}
    history = [
        {"epoch": "1", "train_loss": "1.5", "val_macro_f1": "0.2"},
        {"epoch": "2", "train_loss": "1.1", "val_macro_f1": "0.3"},
    ]
    # weighted F1 set apart from the other scores (accuracy - 0.02), so a swapped column shows
    scores = {"accuracy": accuracy, "macro_f1": macro_f1, "weighted_f1": accuracy - 0.02, "per_class": per_class}
    scores["ece"] = round(accuracy / 10, 6)  # apart from the other columns too
    scores["reliability"] = calibration(np.array([0.9, 0.9, 0.5, 0.3]), np.array([seed, 1, 0, seed]))[1]
    return EntryResult("vit", variant, seed, scores, np.eye(4), history)


RESULTS = [
    entry("baseline", 0, 0.50, 0.40, [0.0, 0.5, 0.2, 0.9]),
    entry("baseline", 1, 0.54, 0.44, [0.2, 0.5, 0.4, 0.9]),
    entry("oversampled", 0, 0.60, 0.55, [0.4, 0.6, 0.6, 0.8]),
    entry("oversampled", 1, 0.62, 0.57, [0.6, 0.6, 0.8, 0.8]),
]


def test_minority_is_the_smaller_half():
    assert minority_classes(TRAIN_COUNTS) == ["a", "c"]
    assert minority_classes({"x": 5}) == ["x"]


def test_rows_average_over_seeds_with_sample_std_and_delta():
    rows = comparison_rows(RESULTS, ["a", "c"])
    assert [(r["variant"], r["seeds"]) for r in rows] == [("baseline", 2), ("oversampled", 2)]
    baseline, oversampled = rows
    std = np.std([0.50, 0.54], ddof=1)
    half = T_975_1 * std / np.sqrt(2)  # 95 % t interval over 2 seeds
    assert baseline["accuracy"] == pytest.approx((0.52, std, 0.52 - half, 0.52 + half))
    assert baseline["minority_recall"][0] == pytest.approx(np.mean([0.1, 0.3]))  # (0+.2)/2, (.2+.4)/2
    assert oversampled["minority_recall"][0] == pytest.approx(0.6)
    assert baseline["delta_macro_f1"] == 0.0
    assert oversampled["delta_macro_f1"] == pytest.approx(0.56 - 0.42)


def test_markdown_and_html_tables():
    table = comparison_markdown(comparison_rows(RESULTS, ["a", "c"]), ["a", "c"])
    lines = table.splitlines()
    assert lines[0].startswith(
        "| classifier | variant | seeds | accuracy | macro-F1 | weighted F1 | minority recall (a, c)"
    )
    # std / sqrt(2) is 0.01 (accuracy, F1), 0.1 (recall) and 0.001 (ECE)
    half, recall_half, ece_half = T_975_1 * 0.01, T_975_1 * 0.1, T_975_1 * 0.001
    assert lines[3] == (
        f"| vit | oversampled | 2 | 0.6100 ± 0.0141 [{0.61 - half:.4f}, {0.61 + half:.4f}] | "
        f"0.5600 ± 0.0141 [{0.56 - half:.4f}, {0.56 + half:.4f}] | "
        f"0.5900 ± 0.0141 [{0.59 - half:.4f}, {0.59 + half:.4f}] | "
        f"0.6000 ± 0.1414 [{0.6 - recall_half:.4f}, {0.6 + recall_half:.4f}] | "
        f"0.0610 ± 0.0014 [{0.061 - ece_half:.4f}, {0.061 + ece_half:.4f}] | +0.1400 |"
    )
    rendered = markdown_to_html_table(table)
    assert rendered.count("<tr>") == 3 and "<td>+0.1400</td>" in rendered
    # an interval sits under its value, each on one unbroken line (the style keeps them from wrapping)
    assert (
        f'<td><span class="value">0.5600 ± 0.0141</span><span class="interval">[{0.56 - half:.4f}, '
        f"{0.56 + half:.4f}]</span></td>"
    ) in rendered
    assert ".value,.interval{display:block;white-space:nowrap}" in to_html("t", [])
    single = comparison_markdown(comparison_rows(RESULTS[:1], ["a"]), ["a"])
    assert "| vit | baseline | 1 | 0.5000 | 0.4000 | 0.4800 | 0.0000 | 0.0500 | +0.0000 |" in single
    older = EntryResult(
        "vit", "baseline", 0, {k: v for k, v in RESULTS[0].metrics.items() if k != "ece"}, np.eye(4), []
    )
    assert "| 0.0000 | n/a | +0.0000 |" in comparison_markdown(comparison_rows([older], ["a"]), ["a"])
    # on a balanced test split weighted F1 repeats macro-F1: the column is left out
    balanced = [EntryResult(r.classifier, r.variant, r.seed, {**r.metrics}, r.confusion, r.history) for r in RESULTS]
    for result in balanced:
        result.metrics["weighted_f1"] = result.metrics["macro_f1"]
    rows = comparison_rows(balanced, ["a"])
    assert weighted_equals_macro(rows) and not weighted_equals_macro(comparison_rows(RESULTS, ["a"]))
    header = comparison_markdown(rows, ["a"]).splitlines()[0]
    assert header.startswith("| classifier | variant | seeds | accuracy | macro-F1 | minority")


# Runs in the page after layout: how many value or interval lines broke (taller than one line of their type), and
# whether anything pushes the page wider than the window.
LAYOUT_PROBE = """<script>addEventListener("load", () => {
  const parts = [...document.querySelectorAll(".value, .interval")];
  const broken = parts.filter(e => e.getBoundingClientRect().height > 1.8 * parseFloat(getComputedStyle(e).fontSize));
  document.body.dataset.layout = JSON.stringify({parts: parts.length, broken: broken.length,
    overflow: document.documentElement.scrollWidth > window.innerWidth});
});</script>"""


def test_interval_cells_stay_on_one_line_each_in_a_1400_px_browser(tmp_path):
    import html
    import json

    from ..browser import render

    # as wide as the generator table: twelve columns of values with intervals, far more than 1,400 px unbroken
    cell = "0.3071 ± 0.0145 [0.2711, 0.3432] (1000 images)"
    wide = "\n".join(
        ["| generator | " + " | ".join(f"reading {k}" for k in range(12)) + " |", "|---" * 13 + "|"]
        + [f"| g{row} | " + " | ".join([cell] * 12) + " |" for row in range(3)]
    )
    narrow = comparison_markdown(comparison_rows(RESULTS, list(CLASSES)), list(CLASSES))
    page = to_html("layout", [Section("Tables", (table_block(wide), table_block(narrow)))])
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = render(path.as_uri(), tmp_path / "report.png", window="1400,1000")
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]+)"', dom)[1]))
    assert layout == {"parts": layout["parts"], "broken": 0, "overflow": False} and layout["parts"] >= 2 * 36


def test_reliability_figure_pools_the_seeds_bins_per_entry():
    figure = reliability_figure(RESULTS)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines) == ["calibrated", "vit-baseline", "vit-oversampled"]
    # seeds 0 and 1 pooled: confidence 0.3 (correct 0, 1), 0.5 (0, 0), 0.9 (1 of 2, 2 of 2)
    assert list(lines["vit-baseline"].get_xdata()) == pytest.approx([0.3, 0.5, 0.9])
    assert list(lines["vit-baseline"].get_ydata()) == pytest.approx([0.5, 0.0, 0.75])
    plt.close(figure)


def test_recall_figure_has_one_bar_per_generator_on_the_real_counts():
    synthetic = {"ddpm": {"a": 70, "b": 40, "c": 60, "d": 0}, "gan": {"a": 30, "b": 0, "c": 0, "d": 0}}
    figure = recall_vs_count_figure(RESULTS, TRAIN_COUNTS, synthetic)
    bars = figure.axes[0].patches
    assert len(bars) == 2 * 2 * len(CLASSES)  # per generator: a real bar and a synthetic bar per class
    # classes fewest first: a (10), c (20), b (40), d (80); the gan bars sit on the real counts, not on the ddpm ones
    tops = sorted((round(b.get_x(), 2), b.get_y() + b.get_height()) for b in bars if b.get_y() > 0)
    assert [top for _, top in tops] == [80, 40, 80, 20, 80, 40, 80, 80]
    plt.close(figure)


def test_figures_render_and_html_is_self_contained(tmp_path):
    figures = {
        "recall.png": recall_vs_count_figure(
            RESULTS, TRAIN_COUNTS, {"sdxl_turbo": {"a": 70, "b": 40, "c": 60, "d": 0}}
        ),
        "confusion.png": confusions_figure(RESULTS, CLASSES),
        "curves.png": curves_figure(RESULTS),
        "reliability.png": reliability_figure(RESULTS),
        "counts.png": class_counts_figure({"full": TRAIN_COUNTS, "train": TRAIN_COUNTS}, {}),
    }
    for name, figure in figures.items():
        save_figure(figure, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    page = to_html("t <report>", [Section("Figures", tuple(image(tmp_path / n, n) for n in figures))])
    assert embedded_image(tmp_path / "curves.png", "x").startswith('<figure><img alt="x" src="data:image/png;base64,')
    assert "<title>t &lt;report&gt;</title>" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(figures)
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere


# How the judge labels 10 generated images of each class: 5 as their own class, the others spread.
JUDGED = [[5, 2, 2, 1], [1, 5, 2, 2], [2, 1, 5, 2], [2, 2, 1, 5]]


def fid_result(
    features: str, fid: float, dims: int, images: int, unavailable: str | None = None, judged=JUDGED
) -> dict:
    sfx = "" if features == "inception" else "_classifier_features"  # as the fid stage names them
    scores = {
        "features": features,
        "inception_sha256": None,
        "images": sum(map(sum, judged)),
        "real_images": sum(map(sum, judged)),
        "image_size": 32,
        "real_image_size": 32,
        "real_classifier_macro_f1_on_generated": 0.7,
        f"fid{sfx}": fid,
        f"kid_mean{sfx}": 0.01,
        f"kid_std{sfx}": 0.002,
        f"precision{sfx}": 0.5,
        f"recall{sfx}": 0.25,
        "fid_dims": dims,
        "fid_images": images,
        "fid_full_rank": images > dims,
        "inception_unavailable": unavailable,
        "real_images_lossy": True,
        "real_image_encodings": {"JPEG": 60000},
        "real_classifier_accuracy_on_generated": 0.75,
        "diversity_ratio": 0.8,
        "near_duplicate_fraction": 0.05,
        "collapse_ratio": 0.5,
        "collapsed_classes": [],
        "per_class": {
            c: {
                f"kid_mean{sfx}": 0.02,
                f"kid_std{sfx}": 0.001,
                "images": sum(judged[i]),
                "real_classifier_recall_on_generated": 0.5,
                "diversity_ratio": 0.8,
                "near_duplicate_fraction": 0.05,
                "collapsed": False,
            }
            for i, c in enumerate(CLASSES)
        },
    }
    return usability(scores, np.array(judged), tuple(CLASSES), min_margin=0.1, level=0.05)


def as_readings(records: dict[str, dict]) -> dict[str, GeneratorReading]:
    """The records as the report reads them back (run_readings does the same per run)."""
    return {label: GeneratorReading.from_record(record) for label, record in records.items()}


def test_generator_table_says_n_dims_rank_and_puts_cas_beside_real_accuracy_at_equal_size():
    from synthaug.report.notes import generator_notes
    from synthaug.report.records import entries_by_generator
    from synthaug.report.tables import generator_markdown, per_class_generator_markdown

    scores = {
        "ddpm": fid_result("inception", 12.5, 2048, 1000),
        "gan": fid_result("classifier:vit-full-seed0", 3.0, 128, 1000, "fid.inception_url: cannot fetch x"),
    }
    scores["gan"]["collapsed_classes"] = ["a"]
    scores["gan"]["per_class"]["a"].update(diversity_ratio=0.2, collapsed=True, usable=False)
    cas_entries = [entry("synthetic_only_ddpm", s, a, 0.3, [0.1, 0.2, 0.3, 0.4]) for s, a in ((0, 0.30), (1, 0.34))]
    for result in cas_entries:
        result.summary["train_images"] = 40
    equal_entries = [entry("real_equal_ddpm", s, a, 0.3, [0.4] * 4) for s, a in ((0, 0.38), (1, 0.42))]
    for result in equal_entries:
        result.summary["train_images"] = 40
    full = [entry("full", 0, 0.80, 0.7, [0.8] * 4)]
    full[0].summary["train_images"] = 5000
    cas = entries_by_generator(cas_entries + equal_entries, "synthetic_only_")
    equal = entries_by_generator(cas_entries + equal_entries, "real_equal_")
    assert list(cas) == list(equal) == ["ddpm"] and [m.variant for m in equal["ddpm"]] == ["real_equal_ddpm"] * 2
    table = generator_markdown(as_readings(scores), {"ddpm": {"steps": 300}}, cas, full, equal)
    half = T_975_1 * 0.02  # over 2 seeds: std / sqrt(2) = 0.02
    assert (
        "| ddpm | Inception 2048-d | 1000 | 12.500 (rank-deficient) | 0.0100 ± 0.0020 | 0.500 | 0.250 | 0.800 | "
        f"0.050 | 0.3200 ± 0.0283 [{0.32 - half:.4f}, {0.32 + half:.4f}] (40 images) | "
        f"0.4000 ± 0.0283 [{0.40 - half:.4f}, {0.40 + half:.4f}] (40 images) | 0.800 | 0.8000 (5000 images) | "
        "0.7500 | 300 |"
    ) in table
    assert "| gan | classifier:vit-full-seed0 128-d (not FID) | 1000 | 3.000 | " in table
    assert "| n/a | n/a | n/a | 0.8000" in table
    notes = generator_notes(as_readings(scores))
    assert notes.pop(0) == (
        "**Collapsed classes from gan**: a (0.20). Their generated images' mean pairwise feature distance is below "
        "0.5 of the real test images' (fid.collapse_ratio): the generator draws nearly the same image whatever its "
        "latent."
    )
    assert notes[0] == (
        "**Not Inception FID** for gan: fid.inception_url: cannot fetch x. Their distances use a "
        "classifier's features and cannot be compared with published FID."
    )
    assert notes[1].startswith("**Rank-deficient FID** for ddpm: 1000 images per side on 2048-d features")
    assert notes[2].startswith("The real images were decoded from a lossy format (60000 JPEG)")
    readings = as_readings(scores)
    low, high = difference_interval(5, 10, 5, 30)  # a: 5 of its 10 images called a, 5 of the other 30
    one = per_class_generator_markdown({"ddpm": readings["ddpm"]}, CLASSES, cas)
    assert f"| a | 0.0200 | 10 | 0.80 | 0.1000 | 0.50 − 0.17 = +0.33 [{low:+.2f}, {high:+.2f}] | yes |" in one
    # several runs share a table: each cell lists them in the header's order, equal image counts once
    both = per_class_generator_markdown(readings, CLASSES, cas)
    assert both.startswith("| class | KID (ddpm / gan) | images (ddpm / gan) |")
    margin = f"+0.33 [{low:+.2f}, {high:+.2f}]"
    assert (
        f"| a | 0.0200 / 0.0200 | 10 | 0.80 / 0.20 (collapsed) | 0.1000 / n/a | {margin} / {margin} | "
        "yes / no: collapsed |" in both
    )  # CAS recall: mean of seeds; Fisher's p for 5/10 against 5/30 is 0.04


def test_filter_note_names_the_judge_and_what_it_kept():
    from synthaug.report.notes import filter_note

    synthetic = entry("synthetic_gan", 0, 0.5, 0.4, [0.1] * 4)
    assert filter_note([synthetic], "oversampled") == (
        "Synthetic filter: off (every generated image is used; train.synthetic_filter.judge is oversampled)."
    )
    synthetic.summary.update(synthetic_filter_judge="oversampled", synthetic_kept_fraction={"a": 0.9, "c": 0.25})
    assert filter_note([synthetic], "oversampled") == (
        "Synthetic filter (seed 0; fraction of generated images kept per class): "
        "vit-synthetic_gan: judge vit-oversampled, kept a 0.90, c 0.25."
    )


def test_distillation_note_names_each_students_teacher():
    from synthaug.report.notes import distillation_note

    assert distillation_note(RESULTS) == ""
    student = entry("distilled", 0, 0.5, 0.4, [0.1] * 4)
    student.summary.update(teacher="vit-oversampled")
    assert distillation_note([*RESULTS, student]) == (
        " Distilled (same seed's teacher; its compute is the student's loop only): vit-distilled from vit-oversampled."
    )


def test_a_generator_most_of_whose_added_images_are_not_usable_is_flagged_with_its_variants():
    from synthaug.report.summaries import UnusableRun, unusable_generators, unusable_variants, verdict_rows
    from synthaug.report.tables import verdicts_markdown

    def scores_with(judged: list[list[int]]) -> dict:
        return fid_result("inception", 12.5, 64, 400, judged=judged)

    at_chance = [25, 25, 25, 25]
    # A judge that calls everything "a" tells no class apart, a included, although it "recognizes" every a.
    everything_a = scores_with([[100, 0, 0, 0]] * 4)
    assert everything_a["per_class"]["a"]["recognition"] == 1.0
    assert everything_a["unusable_classes"] == CLASSES
    # The generators add 60 images to a, 40 to b, none to c and d: a class counts by the images it adds.
    added = {"a": 60, "b": 40, "c": 0, "d": 0}
    # ddpm: a's images are called a as often as the others' (margin 0): 60 % of what it adds.
    ddpm = scores_with([at_chance, [25, 65, 5, 5], [25, 5, 65, 5], [25, 5, 5, 65]])
    # gan: b's images are called b 25 % of the time, the others' 18 % (margin 0.07): 40 %; c, d add nothing.
    gan = scores_with([[90, 5, 5, 0], at_chance, [0, 25, 75, 0], [0, 25, 0, 75]])
    assert ddpm["unusable_classes"] == ["a"] and gan["unusable_classes"] == ["b"]
    unusable = unusable_generators(as_readings({"ddpm": ddpm, "gan": gan}), {"ddpm": added, "gan": added})
    assert unusable == {"ddpm": [UnusableRun("shared", 100, 0.6, ("a",))]}
    flagged = unusable_variants(unusable, [])
    assert flagged == {"synthetic_ddpm", "synthetic_only_ddpm", "weighted_ddpm", "finetuned_ddpm"}
    results = RESULTS + [entry("synthetic_ddpm", s, 0.9, 0.9, [0.9] * 4) for s in (0, 1)]
    table = comparison_markdown(comparison_rows(results, ["a"]), ["a"], flagged)
    assert "| vit | synthetic_ddpm (unusable images) | 2 |" in table and "| vit | oversampled | 2 |" in table
    assert "| vit | synthetic_ddpm (unusable images) |" in verdicts_markdown(verdict_rows(results), flagged=flagged)


def test_compute_comes_from_stage_records_and_is_priced_only_for_an_established_gain():
    from synthaug.report.summaries import variant_compute, verdict_rows
    from synthaug.report.tables import verdicts_markdown

    def timed(variant, seed, macro_f1, seconds):
        result = entry(variant, seed, 0.5, macro_f1, [0.5] * 4)
        result.summary.update(seconds=seconds, device="cpu")
        return result

    results = [
        timed("baseline", 0, 0.40, 10.0),
        timed("baseline", 1, 0.44, 14.0),
        timed("oversampled", 0, 0.59, 20.0),
        timed("oversampled", 1, 0.63, 22.0),  # +0.19 on both seeds for +9 s
        timed("synthetic_gan", 0, 0.41, 16.0),
        timed("synthetic_gan", 1, 0.47, 18.0),
    ]  # +0.02, within noise
    trainings = {"gan": {"seconds": 100.0, "device": "cpu"}}
    syntheses = {"gan": {"seconds": 30.0, "device": "cuda"}}
    costs = variant_compute(results, trainings, syntheses)
    assert costs[("vit", "baseline")].total == 12.0 and costs[("vit", "oversampled")].total == 21.0
    gan = costs[("vit", "synthetic_gan")]
    assert (gan.classifier_seconds, gan.generator_seconds, gan.devices) == (17.0, 130.0, ("cpu", "cuda"))
    table = verdicts_markdown(verdict_rows(results), costs=costs)
    # oversampled beats baseline by 0.19 on both seeds: 9 extra seconds / 19 points
    assert (
        "| vit | oversampled | — | — | +0.1900 [+0.1900, +0.1900], ±0.0000; Holm ±0.0000 | beats baseline (Holm p "
        "0.000) | 21 s (cpu) | 0.5 s |"
    ) in table
    assert "| 17 + 130 = 147 s (cpu+cuda) | no established gain: within noise (2 seeds) |" in table
    # an entry trained before stages recorded their time is not guessed
    old = entry("baseline", 0, 0.5, 0.4, [0.5] * 4)
    assert variant_compute([old], {}, {}) == {}


def test_per_class_recall_table_gives_mean_and_sample_std_over_seeds_fewest_images_first():
    from synthaug.report.tables import per_class_recall_markdown

    table = per_class_recall_markdown(RESULTS, TRAIN_COUNTS)
    lines = table.splitlines()
    assert lines[0] == "| class | imbalanced training images | vit-baseline | vit-oversampled |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| a", "| c", "| b", "| d"]  # 10, 20, 40, 80 images
    # class a: baseline recalls 0.0 and 0.2 (mean 0.1, sample std 0.1414); oversampled 0.4 and 0.6
    assert lines[2] == "| a | 10 | 0.1000 ± 0.1414 | 0.5000 ± 0.1414 |"
    assert "| d | 80 | 0.9000 ± 0.0000 | 0.8000 ± 0.0000 |" in table
    single = per_class_recall_markdown(RESULTS[:1], TRAIN_COUNTS)
    assert "| a | 10 | 0.0000 |" in single


def test_one_list_of_sections_renders_as_markdown_and_as_html(tmp_path):
    from synthaug.report.document import code, note, subheading, table, text, to_markdown, warning

    picture = tmp_path / "report" / "fig.png"
    picture.parent.mkdir()
    picture.write_bytes(b"\x89PNG fake")
    sections = [
        Section(
            "Comparison", (table("| a | b |\n|---|---|\n| 1 | 2 |"), note("Made by `abc`."), warning("**Flag**: x"))
        ),
        Section(
            "More",
            (
                subheading("Per class"),
                text("see `y` & z"),
                image(picture, "fig", "A figure"),
                code("k: 1\n", "The `params`."),
            ),
        ),
    ]
    markdown = to_markdown("Title", sections, tmp_path, "Made by `run`.")
    assert markdown == (
        "# Title\n\n_Made by `run`._\n\n## Comparison\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n_Made by `abc`._\n\n"
        "**Flag**: x\n\n## More\n\n### Per class\n\nsee `y` & z\n\n![fig](report/fig.png)\n\nThe `params`.\n"
    )  # the listing is folded in HTML and only named in Markdown
    page = to_html("Title", sections, "Made by `run`.")
    assert "<h1>Title</h1><p><em>Made by <code>run</code>.</em></p><h2>Comparison</h2>" in page
    assert '<h2>Comparison</h2><div class="table"><table><thead><tr><th>a</th><th>b</th></tr></thead>' in page
    assert "<p><em>Made by <code>abc</code>.</em></p>" in page
    assert '<p class="warning"><strong>Flag</strong>: x</p>' in page
    assert '<h3>Per class</h3><p>see <code>y</code> &amp; z</p><figure><img alt="A figure"' in page
    assert "<details><summary>The <code>params</code>.</summary><pre>k: 1\n</pre></details>" in page


def test_each_generator_run_is_read_on_its_own_and_flags_its_generator():
    from synthaug.report.records import entries_by_generator, generator_of, of_run, run_of, run_readings
    from synthaug.report.summaries import UnusableRun, unusable_generators
    from synthaug.report.tables import unusable_markdown

    usable = fid_result("inception", 12.5, 64, 400, judged=[[90, 5, 5, 0], [5, 90, 5, 0], [0, 5, 95, 0], [0, 0, 5, 95]])
    at_chance = fid_result("inception", 30.0, 64, 400, judged=[[25, 25, 25, 25]] * 4)
    readings = run_readings(
        {"gan": {"runs": {"seed0": usable, "seed1": at_chance}}, "ddpm": {"runs": {"shared": usable}}}
    )
    assert list(readings) == ["gan (seed0)", "gan (seed1)", "ddpm"]
    assert [(generator_of(k), run_of(k)) for k in readings] == [("gan", "seed0"), ("gan", "seed1"), ("ddpm", "shared")]
    # one unusable run flags its generator, and the note names the run
    unusable = unusable_generators(readings, {"gan": {"a": 60, "b": 40}, "ddpm": {"a": 60, "b": 40}})
    assert unusable == {"gan": [UnusableRun("seed1", 100, 1.0, ("a", "b"))]}
    assert unusable_markdown(unusable).splitlines()[2] == "| gan | seed1 | 100 | 100% | a, b |"
    # CAS of a run: the seeds that trained on it (every seed for a shared run)
    cas_entries = [entry("synthetic_only_gan", s, 0.3, 0.3, [0.3] * 4) for s in (0, 1)]
    for seed, result in enumerate(cas_entries):
        result.summary["generator_run"] = f"seed{seed}"
    cas = entries_by_generator(cas_entries, "synthetic_only_")
    assert [m.seed for m in of_run(cas, "gan (seed1)")] == [1]
    assert of_run(cas, "ddpm") == []


def test_a_shared_generator_run_says_so_in_the_verdict_rows():
    from synthaug.report.summaries import synthetic_variants, verdict_rows
    from synthaug.report.tables import verdicts_markdown

    results = [entry(v, s, 0.5, 0.4 + 0.01 * s, [0.5] * 4) for v in ("baseline", "synthetic_gan") for s in (0, 1)]
    table = verdicts_markdown(verdict_rows(results), conditional=synthetic_variants(["gan"], []))
    assert "| vit | synthetic_gan (conditional on one generator run) |" in table
    assert table.count("conditional on one generator run") == 1  # the real-data rows are not conditional


def test_a_composed_remedy_is_compared_with_its_loss_fix_alone_and_costs_its_generator():
    from synthaug.metrics.verdicts import holm_adjusted, paired_p_value
    from synthaug.report.summaries import unusable_variants, variant_compute, verdict_rows
    from synthaug.report.tables import verdicts_markdown

    def timed(variant, seed, macro_f1):
        result = entry(variant, seed, 0.5, macro_f1, [0.5] * 4)
        result.summary.update(seconds=10.0, device="cpu")
        return result

    scores = {
        "baseline": (0.40, 0.44, 0.42),
        "logit_adjusted": (0.45, 0.47, 0.46),
        "synthetic_gan": (0.42, 0.45, 0.44),
        "synthetic_gan+logit_adjusted": (0.50, 0.51, 0.53),
    }
    results = [timed(v, s, f1) for v, per_seed in scores.items() for s, f1 in enumerate(per_seed)]
    rows = {row["variant"]: row for row in verdict_rows(results)}
    composed = rows["synthetic_gan+logit_adjusted"]["comparisons"]
    assert set(composed) == {"baseline", "its loss fix alone"}  # no oversampled entry here
    alone = composed["its loss fix alone"]
    assert alone.difference.mean == pytest.approx(np.mean([0.05, 0.04, 0.07]))
    assert "its loss fix alone" not in rows["synthetic_gan"]["comparisons"]
    # Holm counts the extra comparison: 3 against baseline and 1 against the loss fix alone
    against = [
        [b - a for a, b in zip(scores[reference], scores[variant])]
        for variant, reference in (
            ("logit_adjusted", "baseline"),
            ("synthetic_gan", "baseline"),
            ("synthetic_gan+logit_adjusted", "baseline"),
            ("synthetic_gan+logit_adjusted", "logit_adjusted"),
        )
    ]
    assert alone.adjusted_p == pytest.approx(holm_adjusted([paired_p_value(d) for d in against])[3])
    costs = variant_compute(results, {"gan": {"seconds": 100.0}}, {"gan": {"seconds": 30.0}})
    assert costs[("vit", "synthetic_gan+logit_adjusted")].generator_seconds == 130.0
    table = verdicts_markdown(list(rows.values()), costs=costs)
    assert "| vs its loss fix alone (Holm over 4) |" in table
    assert f"| {alone.difference.mean:+.4f} [" in table.split("| vit | synthetic_gan+logit_adjusted |")[1]
    assert "synthetic_gan+logit_adjusted" in unusable_variants({"gan": "why"}, ["logit_adjusted"])


def test_generated_images_stored_sharper_than_the_real_ones_are_named_above_the_generator_table():
    from synthaug.report.notes import generator_notes

    scores = {g: fid_result("inception", 12.5, 64, 1000) for g in ("sdxl_turbo", "gan")}
    for g, size in (("sdxl_turbo", 224), ("gan", 32)):
        scores[g].update(image_size=size, real_image_size=32)
    sharper = [note for note in generator_notes(as_readings(scores)) if note.startswith("**Generated images sharper")]
    assert sharper == [
        "**Generated images sharper than the real ones** from sdxl_turbo: stored at 224 px beside real images of "
        "32 px, both resized per batch to the classifier's input. A classifier can tell them apart by sharpness "
        "alone, and FID reads the resolution gap too; synthesize.sdxl_turbo.image_size=null stores them at the real "
        "images' size."
    ]
    scores["sdxl_turbo"]["image_size"] = 32
    assert not [note for note in generator_notes(as_readings(scores)) if "sharper" in note]


def test_the_report_opens_with_the_preset_its_purpose_and_its_classifier():
    from synthaug.report.notes import setup_note

    why = "The classifier is the CNN because it learns at 32 px."
    assert setup_note("demo", f"  {why}\n", ["cnn"], 3) == f"Preset demo. {why} Classifier cnn, 3 seed(s)."
    assert setup_note("tiny", "", ["vit", "cnn"], 1) == "Preset tiny. Classifiers vit, cnn, 1 seed(s)."
