"""synthaug: does synthetic data fix class imbalance? A DVC + MLflow pipeline on CIFAR-10."""
