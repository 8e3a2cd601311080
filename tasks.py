"""Command layer: `invoke --list`. Thin wiring only; every task calls one function of `pipeline/`."""
