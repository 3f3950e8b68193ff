"""The leak rule pack, shipped inside the package as ``sidecar.pack`` (see pyproject.toml)."""
