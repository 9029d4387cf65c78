"""MQTT ingest: topics and payloads in, validated readings durably stored as Parquet."""
