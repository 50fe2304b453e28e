"""synthaug: does synthetic data fix class imbalance? A DVC + MLflow pipeline on CIFAR-10."""

from synthaug.core.threads import yield_when_waiting

# Every entry point (stage, worker, CLI) imports synthaug before torch, so libgomp reads this when it loads.
yield_when_waiting()
