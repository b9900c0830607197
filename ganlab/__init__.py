"""ganlab: an interactive lab for teaching and exploring GANs.

The engine (config, data, models, losses, trainer, runs, store, metrics) never imports streamlit;
the pages in `pages/` and helpers in `ui/` draw what it publishes.
"""
import os

# Several runs, the web server and the quality worker share a few cores. OpenMP's default spin-waiting then
# collapses throughput (measured on 2 busy cores, MLP GAN with 2 threads: 34 img/s spinning vs 265 passive).
# It must be set before torch starts its thread pool, so it lives here, ahead of any torch import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
