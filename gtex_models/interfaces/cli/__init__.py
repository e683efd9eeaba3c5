"""``python -m gtex_models`` / ``gtex-models``: the command line, one module per command group."""
