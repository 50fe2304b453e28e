"""FID/KID/precision-recall against closed forms and references; pytorch-fid's InceptionV3 code path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from synthaug.core.errors import FeatureWeightsMissing
from synthaug.data.pixels import InputFormat
from synthaug.metrics.features import (
    INCEPTION_FILE,
    classifier_features,
    hub_weights_path,
    inception_features,
    inception_weights_path,
    load_fid_inception,
)
from synthaug.metrics.fid import (
    feature_statistics,
    frechet_distance,
    full_rank,
    kernel_inception_distance,
    polynomial_mmd,
    precision_recall,
)
from synthaug.metrics.generated import generation_scores, matched_real_indices, mean_pairwise_distance
from synthaug.models.classifiers import ClassifierSpec, build_classifier

from ..planted import write_random_fid_inception


def with_exact_moments(samples: int, mean: np.ndarray, covariance: np.ndarray, seed: int) -> np.ndarray:
    """Samples whose sample mean and (ddof=1) covariance are exactly `mean` and `covariance`."""
    z = np.random.default_rng(seed).normal(size=(samples, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: sample covariance = I
    return mean + z @ np.linalg.cholesky(covariance).T


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_the_closed_form_for_two_gaussians():
    # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mean_a, mean_b = np.zeros(4), np.array([1.0, -2.0, 0.5, 0.0])
    var_a, var_b = np.array([1.0, 2.0, 0.5, 4.0]), np.array([4.0, 2.0, 2.0, 1.0])
    a = with_exact_moments(500, mean_a, np.diag(var_a), seed=1)
    b = with_exact_moments(700, mean_b, np.diag(var_b), seed=2)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))
    assert expected == pytest.approx(7.75)  # 5.25 from the means + 2.5 from the variances
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_pytorch_fid_distance_agrees_with_a_scipy_reference():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(3)
    for _ in range(3):
        m1, m2 = rng.normal(size=6), rng.normal(size=6)
        x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
        s1, s2 = x @ x.T + 0.1 * np.eye(6), y @ y.T + 0.1 * np.eye(6)
        root = scipy.linalg.sqrtm(s1).real
        reference = (
            np.sum((m1 - m2) ** 2)
            + np.trace(s1)
            + np.trace(s2)
            - 2 * np.trace(scipy.linalg.sqrtm(root @ s2 @ root).real)
        )
        assert calculate_frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-6)


def brute_force_mmd(x: np.ndarray, y: np.ndarray) -> float:
    def k(a, b):
        return (a @ b / len(a) + 1) ** 3

    n = len(x)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / n**2
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_polynomial_mmd_over_subsets():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    assert polynomial_mmd(x, y) == pytest.approx(brute_force_mmd(x, y), rel=1e-9)
    mean, std = kernel_inception_distance(x, y, subsets=4, subset_size=100, seed=1)
    # subsets are capped at half the smaller set (6 here), drawn with the same seeded generator
    draw = np.random.default_rng(1)
    expected = [
        brute_force_mmd(x[draw.choice(12, 6, replace=False)], y[draw.choice(12, 6, replace=False)]) for _ in range(4)
    ]
    assert mean == pytest.approx(np.mean(expected), rel=1e-9) and std == pytest.approx(np.std(expected), rel=1e-9)
    assert std > 0


def test_kid_separates_same_from_shifted_distributions():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(400, 8))
    same, _ = kernel_inception_distance(real, rng.normal(size=(400, 8)), subsets=20, subset_size=100)
    shifted, _ = kernel_inception_distance(real, rng.normal(1.0, 1.0, size=(400, 8)), subsets=20, subset_size=100)
    assert abs(same) < 0.02 and shifted > 0.2


def test_precision_recall_of_identical_and_disjoint_sets():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 4))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)
    # A generator that covers half the real modes: full precision, about half the recall.
    modes = np.concatenate([rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 50.0])
    precision, recall = precision_recall(modes, modes[:100] + rng.normal(0, 0.01, size=(100, 4)), k=3)
    assert precision == 1.0 and 0.45 <= recall <= 0.55


def test_real_set_is_matched_to_the_generated_class_distribution():
    real_labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    chosen = matched_real_indices(real_labels, np.array([0, 0, 2, 1, 0]))
    assert chosen.tolist() == [0, 1, 2, 3, 6] and np.bincount(real_labels[chosen]).tolist() == [3, 1, 1]
    with pytest.raises(ValueError, match="class 2: 4 generated images but only 3 real"):
        matched_real_indices(real_labels, np.array([2, 2, 2, 2]))


def test_mean_pairwise_distance_by_hand():
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])) == pytest.approx(4.0)  # 5, 3, 4
    assert np.isnan(mean_pairwise_distance(np.zeros((1, 2))))


def class_clusters(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(scale=4.0, size=(3, 16))
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.normal(size=(len(labels), 16)), labels


def test_a_generator_that_ignores_its_latent_is_collapsed():
    rng = np.random.default_rng(3)
    real, labels = class_clusters(rng, 200)
    # one image per class, whatever the latent: the demo GAN's failure; class c still looks like class c
    fake = real[[np.flatnonzero(labels == c)[0] for c in labels]] + rng.normal(scale=1e-3, size=real.shape)
    fake[labels == 2] = real[labels == 2][::-1]  # class 2 generated well
    scores = generation_scores(real, fake, labels, labels, ("a", "b", "c"), 4, 50, 0, 0.5, 0.1)
    assert scores["collapsed_classes"] == ["a", "b"]
    a, c = scores["per_class"]["a"], scores["per_class"]["c"]
    assert a["diversity_ratio"] < 0.01 and a["near_duplicate_fraction"] == 1.0 and a["collapsed"]
    assert c["diversity_ratio"] == pytest.approx(1.0) and c["near_duplicate_fraction"] == 0.0 and not c["collapsed"]
    assert scores["diversity_ratio"] == pytest.approx(
        (a["diversity_ratio"] + scores["per_class"]["b"]["diversity_ratio"] + 1) / 3
    )


def test_two_halves_of_real_images_are_not_collapsed():
    real, labels = class_clusters(np.random.default_rng(4), 400)
    first, second = np.arange(len(real)) % 2 == 0, np.arange(len(real)) % 2 == 1
    scores = generation_scores(
        real[first], real[second], labels[first], labels[second], ("a", "b", "c"), 4, 50, 0, 0.5, 0.1
    )
    assert scores["collapsed_classes"] == []
    for entry in scores["per_class"].values():
        assert 0.9 < entry["diversity_ratio"] < 1.1 and entry["near_duplicate_fraction"] < 0.01


def test_missing_inception_weights_name_the_param(tmp_path):
    with pytest.raises(FeatureWeightsMissing, match="fid.inception_weights: .*nothing.pth not found"):
        inception_weights_path(str(tmp_path / "nothing.pth"))


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """pytorch-fid's FID Inception architecture with random weights, saved like the real .pth file."""
    return write_random_fid_inception(tmp_path_factory.mktemp("weights") / "pt_inception-random.pth")


@pytest.mark.parametrize("dims", [64, 2048])
def test_pytorch_fid_inception_runs_through_the_real_code_path(random_inception_weights, dims):
    model = load_fid_inception(random_inception_weights, dims)  # strict load: every key of the FID variant is there
    images = np.random.default_rng(8).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    features = inception_features(model, images, batch_size=2, device=torch.device("cpu"))
    assert features.shape == (3, dims) and np.isfinite(features).all() and features.std() > 0
    assert np.allclose(inception_features(model, images[1:2], 1, torch.device("cpu")), features[1:2], atol=1e-4)


def test_dims_must_be_a_pytorch_fid_block(random_inception_weights):
    with pytest.raises(ValueError, match=r"fid.dims: 100 is not one of pytorch-fid's \(64, 192, 768, 2048\)"):
        load_fid_inception(random_inception_weights, 100)


def test_distance_equals_pytorch_fid_at_full_rank_and_stays_finite_below_it():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(400, 32)) ** 2, 1.5 * rng.normal(size=(400, 32)) ** 2 + 0.2
    assert frechet_distance(a, b) == pytest.approx(
        calculate_frechet_distance(*feature_statistics(a), *feature_statistics(b)), rel=1e-9
    )
    # 12 images in 256 dimensions: rank 11 covariances; the symmetric form is still a real, non-negative distance
    small_a, small_b = a[:12] @ rng.normal(size=(32, 256)), b[:12] @ rng.normal(size=(32, 256))
    mu_a, sigma_a = feature_statistics(small_a)
    mu_b, sigma_b = feature_statistics(small_b)
    root = scipy.linalg.sqrtm(sigma_a).real
    reference = (
        np.sum((mu_a - mu_b) ** 2)
        + np.trace(sigma_a)
        + np.trace(sigma_b)
        - 2 * np.trace(scipy.linalg.sqrtm(root @ sigma_b @ root).real)
    )
    distance = frechet_distance(small_a, small_b)
    assert np.isfinite(distance) and distance == pytest.approx(reference, rel=1e-6)
    assert not full_rank(12, 256) and full_rank(257, 256)


class WeightsServer:
    """Serves one file over HTTP on 127.0.0.1 and counts the requests for it."""

    def __init__(self, payload: bytes) -> None:
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests += 1
                if self.path != "/fid_weights/" + INCEPTION_FILE:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fid_weights/{INCEPTION_FILE}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weights_server(random_inception_weights):
    server = WeightsServer(random_inception_weights.read_bytes())
    yield server
    server.close()


def test_missing_weights_are_fetched_into_the_hub_cache_once(
    weights_server, random_inception_weights, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = inception_weights_path(None, weights_server.url)
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE == hub_weights_path()
    assert path.read_bytes() == random_inception_weights.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [INCEPTION_FILE]  # no partial download left beside it
    assert inception_weights_path(None, weights_server.url) == path and weights_server.requests == 1  # cached now
    load_fid_inception(path, 64)


def test_an_unreachable_url_names_the_param_and_leaves_nothing(weights_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(
        FeatureWeightsMissing, match=r"fid.inception_url: cannot fetch http://127.0.0.1:\d+/nothing .*HTTP Error 404"
    ):
        inception_weights_path(None, weights_server.url.replace(f"fid_weights/{INCEPTION_FILE}", "nothing"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []
    with pytest.raises(FeatureWeightsMissing, match="fid.inception_url: not set"):
        inception_weights_path(None, None)


def test_classifier_features_are_the_head_input():
    spec = ClassifierSpec(
        "vit",
        3,
        8,
        {
            "patch_size": 4,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "dropout": 0.0,
        },
    )
    model = build_classifier(spec).eval()
    images = np.random.default_rng(9).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    features, logits = classifier_features(model, images, InputFormat(8), 3, batch_size=2)
    assert features.shape == (5, 16) and logits.shape == (5, 3)
    head = model.vit.classifier
    assert np.allclose(head(torch.from_numpy(features)).detach().numpy(), logits, atol=1e-5)
