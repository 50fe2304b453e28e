"""FID, KID, k-NN precision/recall and CAS of a generated set against real images.

Features are pytorch-fid's InceptionV3 2048-d pool features when its weights are available; otherwise the
penultimate features of a classifier the pipeline trained on the full real data. The two are different
metrics: results carry the name `fid` or `fid_classifier_features`, never one standing in for the other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from synthaug.errors import FeatureWeightsMissing

log = logging.getLogger("synthaug.fid")

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL file name


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance on the two feature sets' Gaussian statistics."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    if len(real) < 2 or len(fake) < 2:
        return float("nan")
    mu_real, sigma_real = feature_statistics(real)
    mu_fake, sigma_fake = feature_statistics(fake)
    return float(max(calculate_frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake), 0.0))


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size sets with the cubic polynomial kernel (x.y / d + 1)^3."""
    size = len(x)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int = 0
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std of the unbiased polynomial MMD^2 over random subsets.

    Subsets are at most half the smaller set, so they differ and the std says how much the estimate moves.
    """
    size = min(subset_size, len(real) // 2, len(fake) // 2)
    if size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    values = [
        polynomial_mmd(real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _kth_neighbour_radii(features: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk):
        distances = _distances(features[start : start + chunk], features)
        radii[start : start + chunk] = np.partition(distances, k, axis=1)[:, k]  # index 0 is the point itself
    return radii


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1024) -> float:
    inside = [(_distances(points[s : s + chunk], centres) <= radii[None, :]).any(axis=1) for s in range(0, len(points), chunk)]
    return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """k-NN manifold precision/recall (Kynkaanniemi et al. 2019): fake inside real balls, real inside fake balls."""
    if min(len(real), len(fake)) <= k:
        return float("nan"), float("nan")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k))
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def inception_weights_path(weights: str | None) -> Path:
    """The given path, else pytorch-fid's file in the torch hub cache; FeatureWeightsMissing if neither exists."""
    path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise FeatureWeightsMissing(
            f"fid.inception_weights: {path} not found. Download {INCEPTION_FILE} from pytorch-fid's releases "
            f"where the internet is reachable and set fid.inception_weights to its path"
        )
    return path


@contextmanager
def _weights_from(state_dict: dict) -> Iterator[None]:
    """pytorch-fid fetches its weights by URL inside the constructor; hand it the loaded ones instead."""
    from pytorch_fid import inception

    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        inception.load_state_dict_from_url = original


def load_fid_inception(weights: str | Path) -> nn.Module:
    """pytorch-fid's InceptionV3 (FID variant, 2048-d pool output), weights read without unpickling."""
    from pytorch_fid.inception import InceptionV3

    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    with _weights_from(state_dict):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval()


@torch.inference_mode()
def inception_features(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """2048-d features of uint8 (N, H, W, 3) images; pytorch-fid resizes to 299 and scales to [-1, 1] itself."""
    model = model.to(device)
    outputs = []
    for start in tqdm(range(0, len(images), batch_size), desc="inception features", unit="batch", leave=False, disable=None):
        batch = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).float().div_(255.0)
        pooled = model(batch.to(device))[0]
        outputs.append(pooled.squeeze(3).squeeze(2).float().cpu().numpy())
    return np.concatenate(outputs)


def _head(model: nn.Module, num_classes: int) -> nn.Linear:
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise ValueError(f"no linear layer with {num_classes} outputs: cannot find the classifier's head")
    return heads[-1]


@torch.inference_mode()
def classifier_features(
    model: nn.Module, images: np.ndarray, image_size: int, num_classes: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (the input of the classification head) and logits, batch by batch."""
    from synthaug.train.classifier import predict_logits

    captured: list[torch.Tensor] = []
    hook = _head(model, num_classes).register_forward_pre_hook(
        lambda module, inputs: captured.append(inputs[0].detach().float().flatten(1).cpu())
    )
    try:
        logits = predict_logits(model, images, image_size, batch_size, "classifier features")
    finally:
        hook.remove()
    return torch.cat(captured).numpy(), logits


def matched_real_indices(real_labels: np.ndarray, fake_labels: np.ndarray) -> np.ndarray:
    """Per class, the first n real images where the generated set has n: the same class distribution."""
    chosen = []
    for cls, count in enumerate(np.bincount(fake_labels, minlength=int(real_labels.max()) + 1)):
        members = np.flatnonzero(real_labels == cls)
        if count > len(members):
            raise ValueError(f"class {cls}: {count} generated images but only {len(members)} real test images")
        chosen.append(members[:count])
    return np.sort(np.concatenate(chosen))


def generation_scores(
    real: np.ndarray, fake: np.ndarray, real_labels: np.ndarray, fake_labels: np.ndarray, class_names: tuple[str, ...],
    kid_subsets: int, kid_subset_size: int, precision_recall_k: int,
) -> dict:
    """FID and KID overall and per class, and precision/recall overall, from features of matched sets."""
    kid_mean, kid_std = kernel_inception_distance(real, fake, kid_subsets, kid_subset_size)
    scores: dict = {"fid": frechet_distance(real, fake), "kid_mean": kid_mean, "kid_std": kid_std}
    if precision_recall_k > 0:
        scores["precision"], scores["recall"] = precision_recall(real, fake, precision_recall_k)
    per_class = {}
    for cls, name in enumerate(class_names):
        real_c, fake_c = real[real_labels == cls], fake[fake_labels == cls]
        class_kid, class_kid_std = kernel_inception_distance(real_c, fake_c, kid_subsets, kid_subset_size, seed=cls)
        per_class[name] = {"fid": frechet_distance(real_c, fake_c), "kid_mean": class_kid, "kid_std": class_kid_std, "images": len(fake_c)}
    scores["per_class"] = per_class
    return scores


def labelled(scores: dict, suffix: str) -> dict:
    """Append the feature label to every distance key (fid -> fid_classifier_features), per class too."""
    distance_keys = {"fid", "kid_mean", "kid_std", "precision", "recall"}
    renamed = {}
    for key, value in scores.items():
        if key == "per_class":
            value = {name: labelled(entry, suffix) for name, entry in value.items()}
        renamed[f"{key}{suffix}" if key in distance_keys and suffix else key] = value
    return renamed
