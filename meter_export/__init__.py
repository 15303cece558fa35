"""meter-export: telemetry samples from Gnocchi or Ceilometer into SQL."""

__version__ = "0.1.0"
