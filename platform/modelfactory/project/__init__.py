"""The project contract: model.yaml's spec, the loader (the one door to a project's
functions), segments and scaffolding."""
