"""The distilled variant: the Hinton loss, the teacher it learns from, and the params that choose the teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthaug.core.errors import MissingInput, ParamsError
from synthaug.core.param_rules import validate_all
from synthaug.core.params import DistillParams
from synthaug.core.seeding import seed_everything
from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet
from synthaug.models.checkpoint import save_classifier
from synthaug.models.classifiers import ClassifierSpec, build_classifier
from synthaug.tools.compose import compose_params
from synthaug.train.classifier import prepare_training, train_classifier
from synthaug.train.entry import with_teacher
from synthaug.train.losses import distillation_loss

from ..conftest import ROOT


def test_distillation_loss_is_the_hinton_mix_computed_by_hand():
    student = [[1.0, 2.0, 0.0], [0.5, -1.0, 2.0]]
    teacher = [[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
    temperature, alpha, hard = 2.0, 0.3, 1.25

    def softmax(row):
        exps = [math.exp(v / temperature) for v in row]
        return [e / sum(exps) for e in exps]

    kl = [
        sum(p * (math.log(p) - math.log(q)) for p, q in zip(softmax(t), softmax(s))) for s, t in zip(student, teacher)
    ]
    expected = (1 - alpha) * hard + alpha * temperature**2 * sum(kl) / len(kl)
    loss = distillation_loss(
        torch.tensor(student), torch.tensor(teacher), torch.tensor(hard), temperature=temperature, alpha=alpha
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # a teacher that agrees with the student adds nothing; alpha 0 is the hard loss exactly
    same = torch.tensor(student)
    assert distillation_loss(same, same, torch.tensor(hard), 2.0, 0.3).item() == pytest.approx(0.7 * hard)
    assert distillation_loss(same, torch.tensor(teacher), torch.tensor(hard), 2.0, 0.0).item() == hard


def constant_images(count: int, size: int, colour=(51, 102, 204)) -> ImageSet:
    images = np.broadcast_to(np.array(colour, np.uint8), (count, size, size, 3)).copy()
    return ImageSet(images, np.arange(count) % 4, tuple("abcd"))


def noisy_images(params, count: int = 24) -> ImageSet:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (count, params.image_size, params.image_size, 3), dtype=np.uint8)
    return ImageSet(images, rng.integers(0, 4, count), tuple("abcd"))


def saved_teacher(folder, spec: ClassifierSpec, seed: int = 7):
    seed_everything(seed)
    save_classifier(folder, spec, build_classifier(spec).state_dict())
    return folder


def distill(alpha: float, temperature: float = 4.0) -> DistillParams:
    return DistillParams(teacher="oversampled", teacher_classifier="cnn", temperature=temperature, alpha=alpha)


def trained(params, data, folder=None, distill_params=None):
    seed_everything(1)
    setup = prepare_training("cnn", "distilled" if folder else "baseline", params, data)
    if folder is not None:
        setup, _ = with_teacher(setup, folder, distill_params)
    return train_classifier(setup, data, data, params, seed=1)


def test_alpha_zero_reproduces_plain_training_and_alpha_above_zero_does_not(tiny_train_params, tmp_path):
    params = tiny_train_params.model_copy(update={"augment_p": 0.5, "epochs": 2})
    data = noisy_images(params)
    teacher = saved_teacher(tmp_path / "teacher", ClassifierSpec("cnn", 4, 8, params.cnn.model_dump()))
    plain = trained(params, data)
    silent = trained(params, data, teacher, distill(alpha=0.0))
    taught = trained(params, data, teacher, distill(alpha=0.5))
    assert [r.to_dict() for r in silent.history] == [r.to_dict() for r in plain.history]
    for name, tensor in plain.best_state.items():
        torch.testing.assert_close(silent.best_state[name], tensor, rtol=0, atol=0)
    assert taught.history[0].train_loss != plain.history[0].train_loss


def test_the_teacher_reads_its_own_input_format_of_the_students_batch(tiny_train_params, tmp_path):
    params = tiny_train_params.model_copy(update={"epochs": 1})
    own = InputFormat(16, mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7))
    spec = ClassifierSpec("cnn", 4, own.size, params.cnn.model_dump(), own.mean, own.std)
    teacher = saved_teacher(tmp_path / "teacher", spec)
    data = constant_images(8, params.image_size)
    seed_everything(1)
    setup, digest = with_teacher(prepare_training("cnn", "distilled", params, data), teacher, distill(0.5))
    seen = {"teacher": [], "student": []}
    setup.loss_spec.teacher.model.register_forward_pre_hook(lambda m, inputs: seen["teacher"].append(inputs[0]))
    setup.model.register_forward_pre_hook(lambda m, inputs: seen["student"].append(inputs[0]))
    train_classifier(setup, data, data, params, seed=1)
    level = torch.tensor([51, 102, 204]) / 255.0
    expected_teacher = ((level - torch.tensor(own.mean)) / torch.tensor(own.std)).view(1, 3, 1, 1)
    assert seen["teacher"] and all(batch.shape[1:] == (3, 16, 16) for batch in seen["teacher"])
    torch.testing.assert_close(seen["teacher"][0], expected_teacher.expand_as(seen["teacher"][0]))
    student = seen["student"][0]
    assert student.shape[1:] == (3, params.image_size, params.image_size)
    torch.testing.assert_close(student, ((level - 0.5) / 0.5).view(1, 3, 1, 1).expand_as(student))
    assert not any(p.requires_grad for p in setup.loss_spec.teacher.model.parameters())
    assert len(digest) == 64


def test_a_missing_or_mismatched_teacher_is_a_clear_error(tiny_train_params, tmp_path):
    data = constant_images(8, tiny_train_params.image_size)
    setup = prepare_training("cnn", "distilled", tiny_train_params, data)
    with pytest.raises(MissingInput, match=r"absent: the teacher of train.distill \(cnn-oversampled\) is missing"):
        with_teacher(setup, tmp_path / "absent", distill(0.5))
    three = saved_teacher(tmp_path / "three", ClassifierSpec("cnn", 3, 8, tiny_train_params.cnn.model_dump()))
    with pytest.raises(ValueError, match="the teacher has 3 classes, the student 4"):
        with_teacher(setup, three, distill(0.5))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["experiment.distilled=[vit]", "train.distill.teacher=full"],
            r"train\.distill\.teacher: 'full' trained on the images the imbalance",
        ),
        (
            ["experiment.distilled=[vit]", "train.distill.teacher=logit_adjusted"],
            r"train\.distill: the teacher vit-logit_adjusted is not trained",
        ),
        (
            ["experiment.distilled=[vit]", "train.distill.teacher_classifier=cnn"],
            r"train\.distill: the teacher cnn-oversampled is not trained",
        ),
        (["experiment.distilled=[cnn]"], r"experiment\.distilled: \['cnn'\] must name each classifier once"),
    ],
)
def test_the_teacher_must_be_a_fair_trained_entry(overrides, message):
    with pytest.raises(ParamsError, match=message):  # the ViT alone, whatever the default preset trains
        validate_all(compose_params(ROOT / "conf", ["experiment.classifiers=[vit]", *overrides]))


def test_without_students_the_teacher_need_not_be_trained():
    sections = validate_all(
        compose_params(ROOT / "conf", ["experiment.distilled=[]", "train.distill.teacher=logit_adjusted"])
    )
    assert sections["experiment"].distilled == []
