"""Datasets as uint8 arrays: storage, pixel conversions, imbalance, augmentation and mixed real/generated sets."""
