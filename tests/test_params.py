from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from synthaug.core.errors import ParamsError
from synthaug.core.generator_params import SynthesizeParams, TrainGeneratorParams
from synthaug.core.param_rules import SECTIONS, load_section, parse_section, validate_all
from synthaug.core.params import ExperimentParams, FetchParams, FidParams, HpoParams, ImbalanceParams, TrainParams
from synthaug.core.variants import GENERATORS
from synthaug.data.imbalance import keep_fractions, make_splits
from synthaug.models.classifiers import BUILDERS
from synthaug.tools.compose import compose_params, write_local_settings

from .conftest import ROOT

CLASSIFIERS = tuple(BUILDERS)


def test_params_yaml_is_the_composed_demo_preset(project_params):
    # params.yaml is what `dvc exp run` writes from conf/; a hand edit that drifts is caught here.
    assert compose_params(ROOT / "conf") == project_params


def test_every_section_validates(project_params):
    sections = validate_all(project_params)
    assert set(sections) == set(SECTIONS)
    assert sections["experiment"].preset == "demo"
    assert sections["train"].vit.patch_size == 8 and sections["train"].image_size == 32


def test_full_preset_is_the_reference_study():
    sections = validate_all(compose_params(ROOT / "conf", ["preset=full"]))
    train = sections["train"]
    assert sections["experiment"].preset == "full"
    assert (train.image_size, train.vit.patch_size, train.vit.hidden_size) == (224, 16, 128)
    assert (train.vit.num_hidden_layers, train.vit.num_attention_heads, train.vit.intermediate_size) == (4, 2, 256)
    assert (train.epochs, train.lr, train.weight_decay, train.schedule, train.batch_size) == (
        10,
        1e-5,
        1e-4,
        "torch_linearlr",
        32,
    )
    assert train.select == "last" and train.early_stopping_patience == 0
    assert sections["imbalance"].subset_per_class is None


@pytest.mark.parametrize("preset", ["full", "reference"])
def test_reference_presets_train_the_reference_class_counts(preset):
    imbalance = validate_all(compose_params(ROOT / "conf", [f"preset={preset}"]))["imbalance"]
    labels = np.repeat(np.arange(10), 5000)  # CIFAR-10's train split
    fractions = keep_fractions(
        imbalance.shape, 10, min_fraction=imbalance.min_fraction, imbalance_factor=1.0, fractions=None
    )
    splits = make_splits(
        labels,
        tuple("abcdefghij"),
        fractions,
        val_per_class=imbalance.val_per_class,
        subset_per_class=imbalance.subset_per_class,
        seed=imbalance.seed,
        val_from=imbalance.val_from,
    )
    # 500 ... 5,000 a class as the reference cut them, but the class kept whole gives its validation images
    assert np.bincount(labels[splits.train]).tolist() == [500 * k for k in range(1, 10)] + [4500]
    assert np.bincount(labels[splits.val]).tolist() == [500] * 10


def test_reference_preset_is_the_reference_study_alone():
    sections = validate_all(compose_params(ROOT / "conf", ["preset=reference"]))
    full = validate_all(compose_params(ROOT / "conf", ["preset=full"]))
    experiment = sections["experiment"]
    assert experiment.generators == ["sdxl_turbo"] and experiment.variants == ["baseline", "full"]
    assert experiment.distilled == [] and experiment.seeds == [0, 1, 2]
    assert sections["train"] == full["train"].model_copy(
        update={"synthetic_filter": full["train"].synthetic_filter.model_copy(update={"judge": "baseline"})}
    )
    assert sections["imbalance"] == full["imbalance"] and sections["synthesize"] == full["synthesize"]


def test_study_preset_trains_both_generators_and_stops_the_classifiers_on_validation():
    sections = validate_all(compose_params(ROOT / "conf", ["preset=study"]))
    experiment, generator, train = sections["experiment"], sections["train_generator"], sections["train"]
    assert experiment.preset == "study" and experiment.generators == ["ddpm", "gan"]
    assert experiment.classifiers == ["cnn"] and experiment.seeds == [0, 1, 2]
    demo = validate_all(compose_params(ROOT / "conf", []))["train_generator"]
    # both generators train longer than the demo's, and the classifiers stop on validation, not on a count
    assert generator.gan.steps > demo.gan.steps and generator.ddpm.steps > demo.ddpm.steps
    assert generator.gan.mode_seeking_weight > 0
    assert train.early_stopping_patience > 0 and train.epochs > 3 * train.early_stopping_patience


def test_override_reaches_composed_params():
    composed = compose_params(ROOT / "conf", ["train.lr=0.01", "fetch.archive=/data/cifar10-jpg.tar.gz"])
    assert composed["train"]["lr"] == 0.01
    assert composed["fetch"]["archive"] == "/data/cifar10-jpg.tar.gz"


def test_unknown_key_names_key_and_allowed(project_params):
    raw = dict(project_params["fetch"], archiv="x")
    with pytest.raises(ParamsError, match=r"fetch\.archiv: unknown key \(allowed: archive, download_dir, image_size\)"):
        parse_section("fetch", raw, FetchParams)


def test_nested_unknown_key(project_params):
    raw = dict(project_params["train"])
    raw["vit"] = dict(raw["vit"], heads=3)
    with pytest.raises(ParamsError, match=r"train\.vit\.heads: unknown key \(allowed: patch_size, hidden_size"):
        parse_section("train", raw, TrainParams)


@pytest.mark.parametrize(
    ("section", "model", "key", "value", "message"),
    [
        ("train", TrainParams, "epochs", 0, r"train\.epochs: Input should be greater than or equal to 1 \(got 0\)"),
        ("train", TrainParams, "epochs", "3", r"train\.epochs: Input should be a valid integer"),
        (
            "train",
            TrainParams,
            "schedule",
            "step",
            r"train\.schedule: Input should be 'linear', 'cosine', 'constant' or 'torch_linearlr'",
        ),
        (
            "imbalance",
            ImbalanceParams,
            "min_fraction",
            1.5,
            r"imbalance\.min_fraction: Input should be less than or equal to 1",
        ),
        ("fetch", FetchParams, "image_size", -2, r"fetch\.image_size: Input should be greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_key(project_params, section, model, key, value, message):
    raw = dict(project_params[section], **{key: value})
    with pytest.raises(ParamsError, match=message):
        parse_section(section, raw, model)


def test_missing_key_is_reported(project_params):
    raw = {k: v for k, v in project_params["fetch"].items() if k != "image_size"}
    with pytest.raises(ParamsError, match=r"fetch\.image_size: missing"):
        parse_section("fetch", raw, FetchParams)


def test_float_written_as_string_by_yaml_is_accepted(project_params):
    raw = dict(project_params["train"], lr="1e-5")  # PyYAML reads `1e-5` (no dot) as a string
    assert parse_section("train", raw, TrainParams).lr == 1e-5


def test_unknown_variant_is_rejected(project_params):
    raw = dict(project_params["experiment"], variants=["baseline", "smote"])
    with pytest.raises(
        ParamsError,
        match=r"experiment\.variants\.1: Input should be 'baseline', 'oversampled', 'full', "
        r"'class_weighted', 'logit_adjusted' or 'label_smoothed' \(got 'smote'\)",
    ):
        validate_all(dict(project_params, experiment=raw))


def test_load_section_errors(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_section("fetch", FetchParams, tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: {}\n")
    with pytest.raises(ParamsError, match="missing section 'fetch'"):
        load_section("fetch", FetchParams, tmp_path / "params.yaml")


def test_dvc_yaml_params_exist(project_params):
    # Every params entry a stage declares (and every ${...} it interpolates) must be in params.yaml.
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        declared = stage.get("do", stage).get("params", [])
        # `- params.yaml:` tracks the whole file (the report); other entries name keys of params.yaml
        assert all(k == {"params.yaml": None} for k in declared if isinstance(k, dict)), f"stage {name}: {declared}"
        keys = [k for k in declared if isinstance(k, str)]
        expanded = [k.replace("${item}", g) for k in keys for g in GENERATORS] if "foreach" in stage else keys
        expanded = [k.replace("${item.classifier}", c) for k in expanded for c in CLASSIFIERS]
        for key in expanded:
            node = project_params
            for part in key.split("."):
                assert part in node, f"stage {name} declares param {key} missing from params.yaml"
                node = node[part]
        for axis, ref in stage.get("matrix", {}).items():
            if isinstance(ref, list):  # a literal axis (train_synthetic's mix)
                continue
            section, _, key = ref.strip("${}").partition(".")
            assert key in project_params[section], f"stage {name} matrix axis {axis} uses missing {ref}"


GENERATOR_RUN_KEYS = ("experiment.seeds", "experiment.generator_runs")
SEED_KEYS = ("experiment.seeds",)


@pytest.mark.parametrize(
    "stage, section, own, entries, unused, also",
    [
        # one generator run per seed, or one shared
        (
            "train_generator",
            TrainGeneratorParams,
            "train_generator.${item}",
            GENERATORS,
            (),
            GENERATOR_RUN_KEYS,
        ),
        ("synthesize", SynthesizeParams, "synthesize.${item}", GENERATORS, (), GENERATOR_RUN_KEYS),
        # a train entry trains every seed in one process
        ("train_classifier", TrainParams, "train.${item.classifier}", CLASSIFIERS, ("distill", "careful"), SEED_KEYS),
        ("train_synthetic", TrainParams, "train.${item.classifier}", CLASSIFIERS, ("distill", "careful"), SEED_KEYS),
        ("train_composed", TrainParams, "train.${item.classifier}", CLASSIFIERS, ("distill", "careful"), SEED_KEYS),
        ("train_careful", TrainParams, "train.${item.classifier}", CLASSIFIERS, ("distill",), SEED_KEYS),
        # the teacher's own keys reach it through its checkpoint, a dependency
        (
            "train_distilled",
            TrainParams,
            "train.${item.classifier}",
            CLASSIFIERS,
            ("synthetic_filter", "loss_baselines", "careful"),
            SEED_KEYS,
        ),
    ],
)
def test_each_entry_depends_on_the_common_keys_and_its_own_subsection(stage, section, own, entries, unused, also):
    # A missing common key would let DVC reuse a stale output; the whole section would rerun every entry.
    definition = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    declared = definition.get("do", definition)["params"]
    prefix = own.split(".")[0]
    common = [f"{prefix}.{field}" for field in section.model_fields if field not in entries and field not in unused]
    assert declared == [*also, *common, own]
    assert set(entries) <= set(section.model_fields)


def test_tiny_sdxl_override_selects_the_generator_and_local_models():
    sections = validate_all(compose_params(ROOT / "conf", ["sdxl=tiny"]))
    assert sections["experiment"].generators == ["sdxl_turbo", "ddpm", "gan"]
    backend = sections["synthesize"].sdxl_turbo
    assert (backend.model, backend.controlnet, backend.device) == (
        "models/tiny-sdxl/pipeline",
        "models/tiny-sdxl/controlnet",
        "cpu",
    )
    assert sections["train"].image_size == 32  # still the demo preset


def test_default_generator_is_real_sdxl_turbo_with_canny_controlnet(project_params):
    backend = validate_all(project_params)["synthesize"].sdxl_turbo
    assert backend.model == "stabilityai/sdxl-turbo" and "canny" in backend.controlnet
    assert (backend.steps, backend.guidance_scale) == (1, 0.0)


def test_demo_trains_the_gan_and_full_preset_trains_both_and_adds_sdxl(project_params):
    demo = validate_all(project_params)["experiment"]
    assert demo.generators == ["gan"] and demo.seeds == [0, 1, 2]
    assert validate_all(compose_params(ROOT / "conf", ["preset=full"]))["experiment"].generators == [
        "sdxl_turbo",
        "ddpm",
        "gan",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generators": []}, r"experiment.generators: List should have at least 1 item"),
        ({"generators": ["gan", "gan"]}, r"experiment.generators: duplicate entries"),
        ({"generators": ["vae"]}, r"experiment.generators.0: Input should be 'sdxl_turbo', 'ddpm' or 'gan'"),
        (
            {"variants": ["baseline"]},
            r"experiment.variants: must include 'full' when experiment.generators is not empty",
        ),
    ],
)
def test_experiment_generator_rules(project_params, change, message):
    with pytest.raises(ParamsError, match=message):
        parse_section("experiment", {**project_params["experiment"], **change}, ExperimentParams)


def test_generator_sections_reject_bad_values(project_params):
    raw = dict(project_params["train_generator"])
    raw["gan"] = dict(raw["gan"], generator_block="resnet")
    with pytest.raises(
        ParamsError, match=r"train_generator.gan.generator_block: Input should be 'transposed', 'upsample' or 'csp'"
    ):
        parse_section("train_generator", raw, TrainGeneratorParams)
    fid = dict(project_params["fid"], feature_extractor="clip")
    with pytest.raises(
        ParamsError, match=r"fid.feature_extractor: Input should be 'auto', 'inception' or 'classifier'"
    ):
        parse_section("fid", fid, FidParams)


def test_a_database_password_never_reaches_params_or_their_errors(project_params):
    raw = dict(project_params["hpo"], storage="postgresql://team:hunter2@db.example:5432/optuna")
    with pytest.raises(ParamsError, match=r"hpo\.storage: remove the password from the URL") as caught:
        parse_section("hpo", raw, HpoParams)
    assert "hunter2" not in str(caught.value) and "postgresql://team:***@db.example:5432/optuna" in str(caught.value)
    with pytest.raises(ParamsError, match=r"hpo\.storage: expected a database URL"):
        parse_section("hpo", dict(raw, storage="models/hpo/optuna.db"), HpoParams)
    assert parse_section("hpo", dict(raw, storage="postgresql://team@db:5432/optuna"), HpoParams).storage


def run_cache_blind_keys(node: object, path: str = "") -> list[str]:
    """Every key, at any depth, that DVC drops before hashing a stage run: its file-metadata names."""
    from dvc_data.hashfile.meta import Meta

    if not isinstance(node, dict):
        return []
    found = []
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if key in (Meta.PARAM_SIZE, Meta.PARAM_NFILES):
            found.append(where)
        found += run_cache_blind_keys(value, where)
    return found


@pytest.mark.parametrize("preset", ["demo", "study", "full", "reference"])
def test_no_param_is_named_as_dvc_file_metadata(preset):
    # DVC's run-cache hashes a stage run with every key named `size` or `nfiles` removed, at any depth (its
    # file-metadata fields; DVC issue #10296), so a change to such a param restores the old outputs instead of
    # rerunning the stage. No param may carry one of those names.
    composed = compose_params(ROOT / "conf", [f"preset={preset}"])
    assert run_cache_blind_keys(composed) == []
    planted = {**composed, "train": {**composed["train"], "vit": {**composed["train"]["vit"], "size": 3}}}
    assert run_cache_blind_keys(planted) == ["train.vit.size"]


def test_local_settings_are_composed_after_the_preset_and_kept(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    path, settings = write_local_settings(conf, ["fetch.archive=/data/cifar10-jpg.tar.gz"])
    assert path == conf / "local/settings.yaml" and settings == {"fetch": {"archive": "/data/cifar10-jpg.tar.gz"}}
    assert compose_params(conf)["fetch"]["archive"] == "/data/cifar10-jpg.tar.gz"
    assert compose_params(conf, ["preset=full"])["fetch"]["archive"] == "/data/cifar10-jpg.tar.gz"
    assert compose_params(conf, ["fetch.archive=/other.tar.gz"])["fetch"]["archive"] == "/other.tar.gz"  # -S wins
    _, settings = write_local_settings(conf, ["train.epochs=5"])
    assert settings == {"fetch": {"archive": "/data/cifar10-jpg.tar.gz"}, "train": {"epochs": 5}}
    before = path.read_text()
    with pytest.raises(ParamsError, match=r"Could not override 'fetch\.archiv'"):
        write_local_settings(conf, ["fetch.archiv=/x"])
    with pytest.raises(ParamsError, match=r"train\.epochs: Input should be greater than or equal to 1"):
        write_local_settings(conf, ["train.epochs=0"])
    assert path.read_text() == before


def test_class_groups_need_few_below_many(project_params):
    train = dict(project_params["train"], class_groups={"many_from": 0.3, "few_upto": 0.5})
    with pytest.raises(ParamsError, match=r"train.class_groups: few_upto 0.5 must be below many_from 0.3"):
        validate_all(dict(project_params, train=train))


def test_the_real_phase_must_end_a_longer_run_and_a_use_is_named_once(project_params):
    train = dict(project_params["train"], epochs=1)
    experiment = dict(project_params["experiment"], careful=["finetuned"])
    with pytest.raises(ParamsError, match=r"train.careful.real_epochs: 1 must be below train.epochs 1 while"):
        validate_all(dict(project_params, train=train, experiment=experiment))
    validate_all(dict(project_params, train=train, experiment=dict(experiment, careful=["weighted"])))  # no phase
    experiment = dict(project_params["experiment"], careful=["weighted", "weighted"])
    with pytest.raises(ParamsError, match=r"experiment.careful: \['weighted', 'weighted'\] names a use twice"):
        validate_all(dict(project_params, experiment=experiment))


def test_careful_variants_name_their_use_and_generator():
    from synthaug.core.variants import added_generator, careful_use_of, careful_variant

    assert careful_variant("finetuned", "sdxl_turbo") == "finetuned_sdxl_turbo"
    assert (
        careful_use_of("finetuned_sdxl_turbo") == "finetuned"
        and added_generator("finetuned_sdxl_turbo") == "sdxl_turbo"
    )
    assert careful_use_of("weighted_gan") == "weighted" and added_generator("weighted_gan") == "gan"
    assert careful_use_of("synthetic_gan") is None and careful_use_of("weighted") is None
    assert added_generator("synthetic_only_gan") is None and added_generator("baseline") is None
