"""The `synthaug` command and what only it uses: grids of experiments, Optuna HPO, image generation outside the DAG,
and tiny random SDXL components for offline checks."""
