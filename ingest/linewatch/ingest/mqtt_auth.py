"""Credentials and TLS for every paho client linewatch creates (ingest, simulate/replay, alert publishing)."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from linewatch.core.config import TlsConfig


def apply_credentials(client: mqtt.Client, username: str | None, password: str | None, tls: TlsConfig | None) -> None:
    """Set user/password and TLS (CA, client certificate) on a client before it connects."""
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None and tls.enabled:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(tls.insecure_skip_verify)
