"""RetainWise core: settings, database, AWS clients, model registry and the CLI."""
