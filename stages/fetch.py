"""DVC stage `fetch`: CIFAR-10 (download or local archive) -> one compact .npz per split + meta.json."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from synthaug.core.io import atomic_path, ensure_free_space, write_json
from synthaug.core.params import FetchParams, load_section
from synthaug.core.runner import run_stage
from synthaug.core.tracking import run_name, stage_run
from synthaug.data.storage import save_image_set
from synthaug.pipeline.fetch import download_cifar10, read_archive

log = logging.getLogger("synthaug.fetch")


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="output folder (train.npz, test.npz, meta.json)")
    args = parser.parse_args()
    params = load_section("fetch", FetchParams)

    with stage_run(run_name("fetch"), {"fetch": params.model_dump()}) as tracker:
        start = time.perf_counter()
        source = Path(params.archive).expanduser() if params.archive else download_cifar10(Path(params.download_dir))
        dataset = read_archive(source, params.image_size)
        decode_seconds = time.perf_counter() - start
        # The decoded arrays are written once here and once more into the DVC cache.
        ensure_free_space(
            args.out.parent, 2 * sum(s.images.nbytes + s.labels.nbytes for s in dataset.splits.values()), "fetch"
        )
        with atomic_path(args.out, directory=True) as tmp:
            for split, images in dataset.splits.items():
                save_image_set(tmp / f"{split}.npz", images)
            write_json(
                tmp / "meta.json",
                {
                    "source": str(source),
                    "source_format": dataset.source_format,
                    "sha256": dataset.sha256,
                    "image_size": params.image_size,
                    "class_names": list(dataset.splits["train"].class_names),
                    "counts": {split: len(images) for split, images in dataset.splits.items()},
                    "conversions": dataset.conversions,
                    "encodings": dataset.encodings,
                    "lossy_images": dataset.lossy_images,
                },
            )
        if dataset.conversions:
            log.info("converted while decoding (images): %s", dataset.conversions)
        counts = {f"{split}_images": len(images) for split, images in dataset.splits.items()}
        tracker.log_metrics({**counts, "decode_seconds": decode_seconds})
    return f"{counts} from {source} ({dataset.source_format}), decoded in {decode_seconds:.1f}s"


if __name__ == "__main__":
    run_stage("fetch", main, exit_process=True)
