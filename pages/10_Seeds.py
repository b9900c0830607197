"""Seeds side by side: one preset over 4-8 seeds at once, each seed's newest samples, step and modes covered in a
grid that updates live, so a class sees how much a GAN's outcome depends on luck. The widgets are ui.seeds'; the
seed group (K ordinary runs, a 2D one trained as one batched model) is ganlab.registry's."""
from __future__ import annotations

import streamlit as st

from ui import seeds
from ui.common import run_picker, setup

reg = setup()
run_picker(reg)
st.title("Seeds side by side")
st.caption("The same recipe, several random seeds: the seed picks the first weights and every batch and noise draw. "
           "Some seeds cover every mode, some miss a few: that spread is how much a GAN's outcome is luck.")
seeds.start_form(reg)
group = seeds.group_picker(reg)
if group is None:
    st.info("No seed group yet: pick a preset and press **Start the seeds**.")
    st.stop()
seeds.group_grid(group)
