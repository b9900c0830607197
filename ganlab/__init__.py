"""ganlab: an interactive lab for teaching and exploring GANs.

The engine (config, data, models, losses, trainer, runs, store, metrics) never imports streamlit;
the pages in `pages/` and helpers in `ui/` draw what it publishes.
"""
__version__ = "0.1.0"
