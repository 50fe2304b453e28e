"""Synthetic-image generators behind one interface: a backend maps planned items to uint8 images.

A backend is any callable `generate(items: list[SynthItem]) -> np.ndarray` returning
(len(items), H, W, 3) uint8 images at the dataset's resolution, one per item, in order.
"""
