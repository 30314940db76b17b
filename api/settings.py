"""All settings in one pydantic-settings model: ``CASEWORK_`` prefix, nested with ``__``.

Examples::

    CASEWORK_DATA_DIR=/srv/casework
    CASEWORK_BUS__URL=kafka://broker:9092
    CASEWORK_DB__URL=postgresql+psycopg://casework@db/casework
    CASEWORK_MATCH__AUTO_ATTACH_MIN_SCORE=0.8

Choosing the production parts is configuration only. Build settings with ``get_settings()``,
never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.extract.limits import ExtractLimits


class BusSettings(BaseModel):
    url: str = Field(
        default="sqlite:",
        description="sqlite: (DATA_DIR/bus.db), sqlite:///abs/path.db, or kafka://host:9092[,host2:9092]",
    )
    partitions: int = Field(default=4, ge=1, description="partitions per topic when the bus creates it")
    session_timeout_ms: int = Field(default=10000, description="Kafka consumer group session timeout")
    heartbeat_interval_ms: int = Field(default=3000, description="Kafka consumer heartbeat interval")
    max_poll_interval_ms: int = Field(
        default=300000,
        description="longest a stage may take over one polled batch before its partitions go to another member "
        "(Kafka max.poll.interval.ms; on the SQLite bus the members' session timeout, so a crashed stage "
        "process's partitions move after this long — a stage that stops cleanly hands them over at once)",
    )


class DbSettings(BaseModel):
    url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means sqlite:///DATA_DIR/casework.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )


class WorkerSettings(BaseModel):
    batch_size: int = Field(default=100, ge=1, description="records a stage polls and handles at once")
    extract_batch_size: int = Field(
        default=8, ge=1, description="records the extract stage polls at once (OCR can take seconds per page)"
    )
    max_attempts: int = Field(default=5, ge=1, description="tries for a retryable error before dead-lettering")
    backoff_initial_s: float = Field(default=0.5, description="first retry delay; doubles each try")
    backoff_max_s: float = Field(default=30.0, description="longest retry delay")
    stage_processes: Literal["auto", "threads", "processes"] = Field(
        default="auto",
        description="embedded default: run the stages as threads of one process or as one child process each "
        "(uses every core). auto: processes for `serve` and for ingests of at least "
        "`process_threshold` files, threads otherwise (no start-up cost for a few files)",
    )
    process_threshold: int = Field(default=200, ge=0, description="see stage_processes")


class MatchSettings(BaseModel):
    own_ref_prefix: str = Field(default="CW", description="prefix of the project's own case references")
    legacy_ref_pattern: str = Field(
        default=r"\b[A-Z]{2,4}-\d{4}-\d{4,8}\b",
        description="regex for legacy references kept from imported cases (e.g. CM-2025-004817)",
    )
    new_case_type: str = Field(default="general_enquiry", description="case type for a new case without a doc type")


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    drop_dir: str = Field(default="", description="watched drop folder; empty means DATA_DIR/drop")
    drop_poll_s: float = Field(default=1.0, description="how often the drop folder is scanned")
    run_pipeline: bool = Field(
        default=True, description="run every pipeline stage inside `casework serve` (embedded default)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default=Path("./casework-data"), description="where blobs, SQLite files and the index live")
    bus: BusSettings = BusSettings()
    db: DbSettings = DbSettings()
    worker: WorkerSettings = WorkerSettings()
    extract: ExtractLimits = ExtractLimits()
    match: MatchSettings = MatchSettings()
    serve: ServeSettings = ServeSettings()

    @property
    def db_url(self) -> str:
        return self.db.url or f"sqlite:///{(self.data_dir / 'casework.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def drop_dir(self) -> Path:
        return Path(self.serve.drop_dir) if self.serve.drop_dir else self.data_dir / "drop"

    @property
    def is_embedded_bus(self) -> bool:
        return self.bus.url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
