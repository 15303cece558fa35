"""Real telemetry services (Gnocchi, Ceilometer) for tests and demos."""
