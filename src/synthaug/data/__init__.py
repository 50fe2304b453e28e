"""Datasets as uint8 arrays: fetch/decode, storage, imbalance, augmentation."""
