"""Sphinx configuration of the sb3_elmur documentation (MyST Markdown, as Stable-Baselines3 uses)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import sb3_elmur

project = "sb3_elmur"
author = "sb3_elmur developers"
copyright = "2026, sb3_elmur developers"
version = release = sb3_elmur.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
exclude_patterns = ["_build", "figures", "results"]
html_theme = "furo"
html_static_path = ["_static"]
html_title = f"sb3_elmur {release}"
