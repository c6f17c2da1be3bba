"""One module per experiment; each exposes ``STUDY`` and is registered in pyproject.toml."""
