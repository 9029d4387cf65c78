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
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
            )
        except OSError as exc:  # ssl says "No such file or directory" or "PEM lib" without naming the file
            raise OSError(exc.errno, f"mqtt.tls: cannot load {_tls_files(tls)}: {exc.strerror or exc}") from exc
        client.tls_insecure_set(tls.insecure_skip_verify)


def _tls_files(tls: TlsConfig) -> str:
    """The configured TLS files, the first unreadable one alone if any (the likely culprit)."""
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    given = {key: path for key, path in files.items() if path is not None}
    for key, path in given.items():
        if not path.is_file():
            return f"{key} {path}"
    return ", ".join(f"{key} {path}" for key, path in given.items()) or "the system CA certificates"
