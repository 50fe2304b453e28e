"""FID, KID and k-NN precision/recall of a generated set against real images.

Features are pytorch-fid's InceptionV3 features (64, 192, 768 or 2048-d, as `pytorch_fid --dims`) when its
weights are available, fetched through torch.hub like pytorch-fid does; otherwise the penultimate features of a
classifier the pipeline trained on the full real data. The two are different metrics: results carry the name
`fid` or `fid_classifier_features`, never one standing in for the other.

A Fréchet distance is comparable to published FID only when each side has more images than feature
dimensions (full-rank covariances) and the dims match; results say both. KID is unbiased at any size.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from synthaug.core.errors import FeatureWeightsMissing
from synthaug.data.pixels import InputFormat
from synthaug.metrics.verdicts import class_recognition, recognized

log = logging.getLogger("synthaug.fid")

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL file name
FID_DIMS = (64, 192, 768, 2048)  # pytorch-fid's InceptionV3.BLOCK_INDEX_BY_DIM: the blocks `--dims` may pick


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; rounding's tiny negative eigenvalues count as 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_from_statistics(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """d^2 = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^1/2 S_b S_a^1/2)^1/2).

    The quantity pytorch-fid's calculate_frechet_distance computes (Tr sqrt(S_a S_b) equals the symmetric
    form's trace), taken from symmetric eigendecompositions: real and finite for rank-deficient covariances
    too, where scipy's sqrtm of the non-symmetric product can return a complex matrix (pytorch-fid's
    "Imaginary component" error).
    """
    root_a = _psd_sqrt(sigma_a)
    cross = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
    trace_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    distance = float(np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_cross)
    return max(distance, 0.0)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (NaN with fewer than 2 of either)."""
    if len(real) < 2 or len(fake) < 2:
        return float("nan")
    return frechet_from_statistics(*feature_statistics(real), *feature_statistics(fake))


def full_rank(samples: int, dims: int) -> bool:
    """A covariance of `samples` points in `dims` dimensions has full rank only when samples > dims."""
    return samples > dims


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
        polynomial_mmd(
            real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)]
        )
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
    inside = [
        (_distances(points[s : s + chunk], centres) <= radii[None, :]).any(axis=1) for s in range(0, len(points), chunk)
    ]
    return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """k-NN manifold precision/recall (Kynkaanniemi et al. 2019): fake inside real balls, real inside fake balls."""
    if min(len(real), len(fake)) <= k:
        return float("nan"), float("nan")
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k))
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k))
    return precision, recall


def hub_weights_path() -> Path:
    """Where torch.hub (and so pytorch-fid) caches the FID Inception weights: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torch.hub's download has no timeout of its own: a silent network must fail, not hang the stage."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def inception_weights_path(weights: str | None, url: str | None = None, timeout: float = 60.0) -> Path:
    """The FID Inception weights: the given path; else torch hub's cached file, downloaded from `url` first
    when missing (as pytorch-fid does). FeatureWeightsMissing, naming the param, when none can be had."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FeatureWeightsMissing(f"fid.inception_weights: {path} not found")
        return path
    path = hub_weights_path()
    if path.is_file():
        return path
    if not url:
        raise FeatureWeightsMissing(f"fid.inception_url: not set and {path} is not cached")
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching the FID Inception weights from %s into %s", url, path)
    try:
        with _socket_timeout(timeout):  # writes a temporary file beside `path` and moves it in when complete
            torch.hub.download_url_to_file(url, str(path), progress=sys.stderr.isatty())
    except (OSError, ValueError, RuntimeError) as exc:  # URLError and HTTPError are OSErrors
        raise FeatureWeightsMissing(
            f"fid.inception_url: cannot fetch {url} ({type(exc).__name__}: {exc}); put {INCEPTION_FILE} at {path} "
            "or set fid.inception_weights to its path"
        ) from None
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


def load_fid_inception(weights: str | Path, dims: int = 2048) -> nn.Module:
    """pytorch-fid's InceptionV3 (FID variant) returning the block `dims` picks, weights read without unpickling."""
    from pytorch_fid.inception import InceptionV3

    if dims not in FID_DIMS:
        raise ValueError(f"fid.dims: {dims} is not one of pytorch-fid's {FID_DIMS}")
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    with _weights_from(state_dict):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    return model.eval()


@torch.inference_mode()
def inception_features(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Features of uint8 (N, H, W, 3) images, as pytorch-fid's get_activations makes them: the model resizes to
    299 and scales to [-1, 1]; the 64/192/768-d blocks are spatial maps, averaged to one vector per image."""
    model = model.to(device)
    outputs = []
    for start in tqdm(
        range(0, len(images), batch_size), desc="inception features", unit="batch", leave=False, disable=None
    ):
        batch = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).float().div_(255.0)
        block = model(batch.to(device))[0]
        if block.shape[2:] != (1, 1):
            block = torch.nn.functional.adaptive_avg_pool2d(block, (1, 1))
        outputs.append(block.squeeze(3).squeeze(2).float().cpu().numpy())
    return np.concatenate(outputs)


def _head(model: nn.Module, num_classes: int) -> nn.Linear:
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise ValueError(f"no linear layer with {num_classes} outputs: cannot find the classifier's head")
    return heads[-1]


@torch.inference_mode()
def classifier_features(
    model: nn.Module, images: np.ndarray, input_format: InputFormat, num_classes: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (the input of the classification head) and logits, batch by batch."""
    from synthaug.models.inference import predict_logits

    captured: list[torch.Tensor] = []
    hook = _head(model, num_classes).register_forward_pre_hook(
        lambda module, inputs: captured.append(inputs[0].detach().float().flatten(1).cpu())
    )
    try:
        logits = predict_logits(model, images, input_format, batch_size, "classifier features")
    finally:
        hook.remove()
    return torch.cat(captured).numpy(), logits


def mean_pairwise_distance(features: np.ndarray, chunk: int = 1024) -> float:
    """The mean Euclidean distance over all pairs of distinct rows (nan for fewer than two)."""
    count = len(features)
    if count < 2:
        return float("nan")
    features = np.asarray(features, np.float64)
    total = sum(_distances(features[s : s + chunk], features).sum() for s in range(0, count, chunk))
    return float(total / (count * (count - 1)))  # the diagonal adds zeros


def _nearest_other(features: np.ndarray) -> np.ndarray:
    return _kth_neighbour_radii(np.asarray(features, np.float64), 1)


def class_diversity(real: np.ndarray, fake: np.ndarray, near_duplicate_distance: float) -> dict[str, float]:
    """One class's generated images against its real ones, in the same features: `diversity_ratio`, the generated
    images' mean pairwise distance over the real images'; `near_duplicate_fraction`, the share of generated images
    whose nearest generated neighbour is closer than `near_duplicate_distance` times the real images' median
    nearest-neighbour distance. A generator that ignores its latent reads 0 and 1; an independent real sample of
    the class about 1 and 0."""
    if min(len(real), len(fake)) < 2:
        return {"diversity_ratio": float("nan"), "near_duplicate_fraction": float("nan")}
    ratio = mean_pairwise_distance(fake) / max(mean_pairwise_distance(real), 1e-12)
    threshold = near_duplicate_distance * float(np.median(_nearest_other(real)))
    return {"diversity_ratio": ratio, "near_duplicate_fraction": float((_nearest_other(fake) < threshold).mean())}


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
    real: np.ndarray,
    fake: np.ndarray,
    real_labels: np.ndarray,
    fake_labels: np.ndarray,
    class_names: tuple[str, ...],
    kid_subsets: int,
    kid_subset_size: int,
    precision_recall_k: int,
    collapse_ratio: float,
    near_duplicate_distance: float,
) -> dict:
    """FID, KID and precision/recall overall; KID and diversity per class, with the classes whose diversity ratio
    is below `collapse_ratio` named as collapsed.

    Per class the sets are small (at most the test set's 1,000 images per class): a Fréchet distance there would
    be rank-deficient and biased by N, so classes are compared with KID, which is unbiased at any size.
    """
    kid_mean, kid_std = kernel_inception_distance(real, fake, kid_subsets, kid_subset_size)
    dims = real.shape[1]
    scores: dict = {
        "fid": frechet_distance(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "fid_dims": dims,
        "fid_images": min(len(real), len(fake)),
        "fid_full_rank": full_rank(min(len(real), len(fake)), dims),
    }
    if precision_recall_k > 0:
        scores["precision"], scores["recall"] = precision_recall(real, fake, precision_recall_k)
    per_class = {}
    for cls, name in enumerate(class_names):
        real_c, fake_c = real[real_labels == cls], fake[fake_labels == cls]
        class_kid, class_kid_std = kernel_inception_distance(real_c, fake_c, kid_subsets, kid_subset_size, seed=cls)
        diversity = class_diversity(real_c, fake_c, near_duplicate_distance)
        per_class[name] = {"kid_mean": class_kid, "kid_std": class_kid_std, "images": len(fake_c), **diversity}
        per_class[name]["collapsed"] = bool(diversity["diversity_ratio"] < collapse_ratio)
    scores["per_class"] = per_class
    measured = [e for e in per_class.values() if np.isfinite(e["diversity_ratio"])]
    scores["diversity_ratio"] = float(np.mean([e["diversity_ratio"] for e in measured])) if measured else float("nan")
    scores["near_duplicate_fraction"] = (
        float(sum(e["near_duplicate_fraction"] * e["images"] for e in measured) / sum(e["images"] for e in measured))
        if measured
        else float("nan")
    )
    scores["collapse_ratio"] = collapse_ratio
    scores["collapsed_classes"] = [name for name, e in per_class.items() if e["collapsed"]]
    return scores


def judge_confusion(fake_labels: np.ndarray, judge_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[i, j]: generated images of class i that the judge (a classifier trained on real data) labels j."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(fake_labels), np.asarray(judge_labels)), 1)
    return confusion


def usability(
    scores: dict, confusion: np.ndarray, class_names: tuple[str, ...], min_margin: float, level: float
) -> dict:
    """`scores` with, per class, how the judge tells its generated images from the other classes' (own, others,
    the margin with its 95 % interval, the Fisher p-value), whether it does (`recognized`), and `usable`:
    recognized and not collapsed. Also the classes that are not usable, and the confusion itself."""
    per_class = {}
    for cls, name in enumerate(class_names):
        reading = class_recognition(confusion, cls)
        entry = dict(scores["per_class"][name])
        entry.update(
            recognition=reading.own,
            false_recognition=reading.others,
            recognition_margin=reading.margin,
            recognition_margin_low=reading.low,
            recognition_margin_high=reading.high,
            recognition_p_value=reading.p_value,
            recognized=recognized(reading, min_margin, level),
        )
        entry["usable"] = bool(entry["recognized"] and not entry.get("collapsed", False))
        per_class[name] = entry
    return {
        **scores,
        "per_class": per_class,
        "judge_confusion": confusion.tolist(),
        "usable_margin": min_margin,
        "usable_level": level,
        "unusable_classes": [name for name, entry in per_class.items() if not entry["usable"]],
    }
