"""Benchmarks reuse the integration fixtures (private Mosquitto brokers)."""

from tests.integration.conftest import mosquitto_broker, mosquitto_factory

__all__ = ["mosquitto_broker", "mosquitto_factory"]
