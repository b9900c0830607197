"""Streamlit-only helpers shared by the pages (see ui/common.py). The engine (ganlab/) never imports this."""
