"""Provider connectors: one module per provider over a shared HTTP layer."""
