"""A throwaway PKI for TLS tests, made with openssl: a CA, a broker certificate, client ones.

    pki = make_pki(folder, clients=("coordinator", "inventory"))
    pki.env(bootstrap, "coordinator")    # the KAFKA_* variables of that client

Also a certificate from another CA (``stranger``), which a broker must refuse.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from sagas.kafka.kafka_settings import KafkaSettings


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    def env(self, bootstrap: str, name: str) -> dict[str, str]:
        """Everything a process needs to reach the TLS broker as ``name``."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(self.ca),
            "KAFKA_SSL_CERTFILE": str(self.cert(name)),
            "KAFKA_SSL_KEYFILE": str(self.key(name)),
        }


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"


def make_ca(folder: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    return folder / f"{name}.pem"


def make_leaf(folder: Path, ca: str, name: str, usage: str) -> None:
    ext = folder / f"{name}.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", ext.name,
        cwd=folder,
    )  # fmt: skip


async def can_list_topics(settings: KafkaSettings) -> bool:
    """Whether a client with ``settings`` gets through to the broker (TLS and all)."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return True
    except Exception:  # noqa: BLE001 - any failure to talk is the answer
        return False
    finally:
        await admin.close()


def make_pki(folder: Path, clients: Iterable[str]) -> Pki:
    """Everything under ``folder``; skips (fails under CI) when openssl is missing."""
    if not shutil.which("openssl"):
        if os.environ.get("CI"):
            pytest.fail("openssl is not installed and CI is set: install the Debian package")
        pytest.skip("openssl is not installed (apt-get install openssl)")
    ca = make_ca(folder, "test-ca")
    make_leaf(folder, "test-ca", "broker", "serverAuth")
    for name in (*clients, "test-client"):
        make_leaf(folder, "test-ca", name, "clientAuth")
    make_ca(folder, "other-ca")
    make_leaf(folder, "other-ca", "stranger", "clientAuth")
    return Pki(folder, ca)
