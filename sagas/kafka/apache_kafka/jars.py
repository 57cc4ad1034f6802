"""Apache Kafka's jars, fetched once with Maven into a cache outside the repository.

    classpath = ensure_jars()            # ~/.cache/sagastream/kafka-4.4.0/libs/*
    java -cp <classpath> kafka.Kafka server.properties

The first call runs ``mvn dependency:copy-dependencies`` on the ``pom.xml`` beside
this file (the broker and its log4j2 binding, nothing built) and prints one line
per file Maven downloads; later calls find the cache complete and return at
once. A cache is complete when its ``COMPLETE`` stamp names the same pom: an
interrupted fetch leaves no stamp and is fetched again. Missing ``java`` or
``mvn`` is one line that says what to install.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from events.errors import EventsError

__all__ = [
    "KAFKA_VERSION",
    "ApacheKafkaError",
    "KafkaToolMissingError",
    "KafkaJarsError",
    "cache_dir",
    "ensure_jars",
    "require_java",
]

KAFKA_VERSION = "4.4.0"
_HERE = Path(__file__).parent
POM = _HERE / "pom.xml"
_DOWNLOADED = re.compile(r"Downloaded from \S+: \S+/([^/\s]+) \(([^)]*)\)")
_JAVA_VERSION = re.compile(r'version "(\d+)')
MIN_JAVA = 17


class ApacheKafkaError(EventsError):
    """The local Apache Kafka could not be fetched or started, or one of its nodes died."""


class KafkaJarsError(ApacheKafkaError):
    """Apache Kafka's jars could not be fetched."""


class KafkaToolMissingError(ApacheKafkaError):
    """``java`` or ``mvn`` is not installed (or too old)."""


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """``$SAGAS_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/sagastream/kafka-<version>``."""
    configured = os.environ.get("SAGAS_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser() / f"kafka-{version}"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sagastream" / f"kafka-{version}"


def require_java() -> str:
    """Path of ``java`` (17 or newer); a one-line error otherwise."""
    java = _java_binary()
    if java is None:
        raise KafkaToolMissingError(
            f"Apache Kafka needs Java {MIN_JAVA} or newer and `java` is not on PATH: install a "
            f"JDK or JRE {MIN_JAVA}+ (Debian: apt-get install openjdk-17-jre-headless) or set "
            "JAVA_HOME"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = _JAVA_VERSION.search(out.stderr + out.stdout)
    if found is not None and int(found.group(1)) < MIN_JAVA:
        raise KafkaToolMissingError(
            f"Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer; {java} is Java "
            f"{found.group(1)}: install Java {MIN_JAVA}+ or point JAVA_HOME at it"
        )
    return java


def ensure_jars(
    version: str = KAFKA_VERSION,
    *,
    progress: Callable[[str], None] | None = None,
) -> str:
    """The broker's Java classpath (``<cache>/libs/*``), fetching the jars on first use."""
    say = progress or _stderr
    target = cache_dir(version)
    libs = target / "libs"
    stamp = target / "COMPLETE"
    wanted = _stamp_text(version)
    if stamp.is_file() and stamp.read_text() == wanted and any(libs.glob("kafka_2.13-*.jar")):
        return f"{libs}/*"
    require_java()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaToolMissingError(
            f"fetching Apache Kafka {version} needs Maven and `mvn` is not on PATH: install "
            "Maven 3 (Debian: apt-get install maven), or set KAFKA_BOOTSTRAP_SERVERS to a "
            "running cluster"
        )
    staging = target / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    say(f"Fetching Apache Kafka {version} with Maven into {target} (first run only)")
    cmd = [
        mvn, "-B", "-f", str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    lines: list[str] = []
    downloaded = 0
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=target
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            match = _DOWNLOADED.search(line)
            if match is not None and match.group(1).endswith(".jar"):
                downloaded += 1
                say(f"  downloaded {match.group(1)} ({match.group(2)})")
    if proc.returncode != 0:
        tail = "\n".join(line for line in lines if "ERROR" in line)[-2000:]
        raise KafkaJarsError(
            f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} (exit "
            f"{proc.returncode}); is Maven Central reachable? Its errors:\n{tail or lines[-5:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    stamp.write_text(wanted)
    count = sum(1 for _ in libs.glob("*.jar"))
    say(f"Apache Kafka {version}: {count} jars ready ({downloaded} downloaded now)")
    return f"{libs}/*"


def _stamp_text(version: str) -> str:
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    return f"kafka {version} pom {digest}\n"


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("java")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
