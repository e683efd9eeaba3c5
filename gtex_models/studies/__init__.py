"""The studies layer: what a user opens, and how it is made.

The study folder and its manifest (``study``, ``schemas``), building and extending studies
(``build``), what a study stores so that its pages open at once (``precompute``), experiments from
YAML configs (``experiment``), training at scale (``at_scale``), background jobs (``jobs``) and the demo
study (``demo``). Imports every layer below.
"""
