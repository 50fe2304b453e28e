"""The generators: the class-conditional DDPM and GAN this pipeline trains (with their training loop), SDXL-Turbo +
ControlNet through diffusers, and the backend interface that maps planned items to uint8 images.

A backend is any callable `generate(items: list[SynthItem]) -> np.ndarray` returning (len(items), H, W, 3) uint8
images, one per item, in order.
"""
