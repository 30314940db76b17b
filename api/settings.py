"""All settings in one pydantic-settings model: ``CASEWORK_`` prefix, nested with ``__``.

Examples::

    CASEWORK_DATA_DIR=/srv/casework
    CASEWORK_BUS__URL=kafka://broker:9092
    CASEWORK_DB__URL=postgresql+psycopg://casework@db/casework
    CASEWORK_BLOBS__URL=s3://casework-blobs/prod   (with CASEWORK_BLOBS__ENDPOINT_URL, ...)
    CASEWORK_MATCH__AUTO_ATTACH_MIN_SCORE=0.8

Choosing the production parts is configuration only. Build settings with ``get_settings()``,
never at import time.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from classify.case_refs import DEFAULT_LEGACY_PATTERN
from classify.entities import DEFAULT_ACCOUNT_PATTERNS, DEFAULT_POSTCODE_PATTERN
from classify.match_types import MatchConfig
from connectors.settings import ConnectorSettings
from ingest.blobs import S3Options
from ingest.extract.limits import ExtractLimits

if TYPE_CHECKING:
    from casestore.search.factory import ServerAccess


class BusSettings(BaseModel):
    url: str = Field(
        default="sqlite:",
        description="sqlite: (DATA_DIR/bus.db), sqlite:///abs/path.db, or kafka://host:9092[,host2:9092]",
    )
    partitions: int = Field(default=4, ge=1, description="partitions per topic when the bus creates it")
    retention_hours: float | None = Field(
        default=168.0, gt=0, description="embedded SQLite bus: delete records every consumer group has committed "
        "once they are this old (default a week); empty keeps everything. Kafka: set the topics' retention.ms",
    )
    session_timeout_ms: int = Field(default=10000, description="consumer group session timeout: how long a crashed "
                                    "member's partitions wait for it (Kafka; and the embedded bus, whose members "
                                    "heartbeat from a thread of their own and are dropped at once on a restart)")
    heartbeat_interval_ms: int = Field(default=3000, description="Kafka consumer heartbeat interval")
    max_poll_interval_ms: int = Field(
        default=300000,
        description="longest a stage may take over one polled batch before its partitions go to another member "
        "(Kafka max.poll.interval.ms; the embedded bus stops a member's heartbeat after this long without a poll)",
    )


    @field_validator("retention_hours", mode="before")
    @classmethod
    def _none_keeps_everything(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none", "forever") else value


class BlobSettings(BaseModel):
    """Where documents' bytes are kept: files in the data directory (embedded default, or a shared
    volume) or an S3-compatible object store shared by every machine."""

    url: str = Field(
        default="", description="empty or file: (DATA_DIR/blobs), file:///abs/path, or s3://bucket[/prefix] "
        "(AWS S3, MinIO, Ceph, Garage; the bucket must exist)",
    )
    endpoint_url: str = Field(default="", description="S3 endpoint, e.g. http://minio:9000; empty means AWS")
    region: str = Field(default="", description="S3 region; empty means boto3's default (AWS_REGION, profile)")
    access_key_id: str = Field(default="", description="S3 access key; empty means boto3's chain "
                               "(AWS_ACCESS_KEY_ID, a profile, the instance's role)")
    secret_access_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key (see access_key_id)")
    addressing_style: Literal["", "auto", "path", "virtual"] = Field(
        default="", description="S3 bucket addressing; empty: path-style with an endpoint_url, else boto3's choice",
    )
    multipart_chunk_mb: int = Field(default=8, ge=5, description="S3 upload part size (MiB): blobs larger than "
                                    "one part go up in parts, so memory stays bounded whatever the size")
    max_concurrency: int = Field(default=4, ge=1, description="S3 parts (and put_many blobs) uploaded at once")

    def s3_options(self) -> S3Options:
        return S3Options(endpoint_url=self.endpoint_url, region=self.region, access_key_id=self.access_key_id,
                         secret_access_key=self.secret_access_key.get_secret_value(),
                         addressing_style=self.addressing_style, multipart_chunk_bytes=self.multipart_chunk_mb << 20,
                         max_concurrency=self.max_concurrency)


class DbSettings(BaseModel):
    url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means sqlite:///DATA_DIR/casework.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    pool_size: int = Field(default=40, ge=1, le=500, description="PostgreSQL: connections each process may keep open, "
                           "opened as needed (casework serve answers up to 40 requests at once: a smaller pool makes "
                           "every request beyond it open and close a connection of its own, a new PostgreSQL "
                           "backend each time)")
    max_overflow: int = Field(default=10, ge=0, le=500, description="PostgreSQL: connections opened beyond "
                              "pool_size for one use when every pooled one is busy (the background threads)")


class WorkerSettings(BaseModel):
    batch_size: int = Field(default=100, ge=1, description="records a stage polls and handles at once")
    extract_batch_size: int = Field(
        default=32, ge=1, description="records the extract stage polls at once (OCR can take seconds per page: "
        "the batch must finish within bus.max_poll_interval_ms)"
    )
    file_batch_size: int = Field(
        default=500, ge=1, description="records the file stage files in one store transaction and one search-index "
        "commit (an index commit costs tens of ms, so fewer, larger batches file faster)"
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
    stage_nice: int = Field(default=5, ge=0, le=19, description="stage processes run this much nicer than the "
                            "process that started them, so on a busy machine the API of `casework serve` "
                            "answers first and the pipeline takes the CPU it leaves (0: same priority)")


class MatchSettings(BaseModel):
    """The matcher's patterns and thresholds (see classify/match_types.py MatchConfig for each)."""

    own_ref_prefix: str = Field(default="CW", description="prefix of the project's own case references")
    legacy_ref_pattern: str = Field(
        default=DEFAULT_LEGACY_PATTERN,
        description="regex for legacy references kept from imported cases (e.g. CM-2025-004817)",
    )
    phone_region: str = Field(default="GB", description="region for phone numbers written without +country")
    account_patterns: tuple[str, ...] = Field(
        default=DEFAULT_ACCOUNT_PATTERNS, description="regexes for account/policy numbers (group 'num')"
    )
    postcode_pattern: str = Field(default=DEFAULT_POSTCODE_PATTERN, description="regex for postcodes")
    day_first: bool = Field(default=True, description="read 03/04/2026 as 3 April")
    max_ref_edits: int = Field(default=2, description="OCR misreads repaired in a reference (0: none)")
    min_ref_confidence: float = Field(default=0.3, description="references read less surely are ignored")
    identify_threshold: float = Field(default=0.75, description="customer score to act on without a reference")
    candidate_threshold: float = Field(default=0.3, description="weaker customers are not triage candidates")
    customer_margin: float = Field(default=0.15, description="the best customer must lead the next by this")
    doc_type_model_min: float = Field(default=0.5, description="model confidence needed to overrule the rules")
    new_case_type: str = Field(default="general_enquiry", description="case type for a new case without a type")
    attach_to_closed: bool = Field(
        default=True,
        description="a closed case quoted by its customer: attach (the case reopens within its type's "
        "reopen_window, after that a new case linked to it opens) or, false, send it to triage")
    max_triage_candidates: int = Field(default=5, description="candidate cases kept for a triaged item")
    doc_type_model: str = Field(
        default="",
        description="path of a trained document-type model (`casework train doctype`); empty means "
        "DATA_DIR/models/doctype.joblib when it exists, else rules only. Load only files you trust (pickle)",
    )

    def to_config(self) -> MatchConfig:
        values = self.model_dump(exclude={"doc_type_model"})
        return MatchConfig(**values)


class SpamSettings(BaseModel):
    """A content spam check by SpamAssassin's spamd for mail that would open a case for a stranger
    (see ingest/spam.py).  Verdicts a mail filter already wrote into the headers count without it."""

    spamd: str = Field(default="", description="spamd's host:port (e.g. 127.0.0.1:783); empty: no content check")
    timeout_s: float = Field(default=10.0, gt=0, description="seconds to wait for spamd per message; after "
                             "that the mail keeps its decision (fail open) and the evidence says so")
    min_score: float | None = Field(default=None, description="score that makes spam; unset: spamd's own "
                                    "required score (5.0 by default)")
    max_bytes: int = Field(default=512 * 1024, gt=0, description="larger mail is not scored (spamc's default)")
    concurrency: int = Field(default=4, ge=1, description="checks of one batch in flight at once")


class SearchSettings(BaseModel):
    url: str = Field(
        default="tantivy:",
        description="tantivy: (DATA_DIR/index), tantivy:///abs/path, opensearch://host:9200[/index] or "
        "elasticsearch://host:9200 (+https and user:pass@ accepted)",
    )
    outbox_in_serve: bool = Field(default=True, description="`casework serve` drains the search outbox (index "
                                  "updates the file stage or a request could not write: the index was down)")
    outbox_poll_s: float = Field(default=1.0, gt=0, description="how often serve looks for outbox rows to index")
    outbox_grace_s: float = Field(default=5.0, ge=0, description="serve leaves rows younger than this to the "
                                  "stage that wrote them (it indexes them right after its commit)")
    outbox_backoff_max_s: float = Field(default=60.0, gt=0, description="longest wait between attempts while "
                                        "the index is down (the wait doubles from 1 s up to this)")
    username: str = Field(default="", description="user for a secured OpenSearch or Elasticsearch (HTTP basic "
                          "auth); a user written in the URL wins")
    password: SecretStr = Field(default=SecretStr(""), description="that user's password")
    ca_certs: str = Field(default="", description="PEM file of the CA that signed the search server's TLS "
                          "certificate (a private CA, OpenSearch's demo certificates); empty: the system's CAs")
    verify_certs: bool = Field(default=True, description="check the search server's TLS certificate and name; "
                               "turn off only on a private network for a test")

    def access(self) -> ServerAccess:
        from casestore.search.factory import ServerAccess  # the search package, only where search is opened

        return ServerAccess(username=self.username, password=self.password.get_secret_value(),
                            ca_certs=self.ca_certs, verify_certs=self.verify_certs)


class ServeSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="address `casework serve` listens on")
    port: int = Field(default=8000, description="its port")
    drop_dir: str = Field(default="", description="watched drop folder; empty means DATA_DIR/drop")
    drop_poll_s: float = Field(default=1.0, description="how often the drop folder is scanned")
    run_pipeline: bool = Field(
        default=True, description="run every pipeline stage inside `casework serve` (embedded default)"
    )
    upload_slots: int = Field(
        default=4, ge=1, description="uploads (POST /api/v1/items) read and stored at once by the API; the rest "
        "wait unread for a slot, so searches and pages never queue behind a crowd of uploads",
    )
    access_log: bool = Field(
        default=True, description="log one line per HTTP request (logger casework.access: client, method, path "
        "with the query's parameter names but not their values, status, duration), written in batches a few "
        "times a second off the request's path; turn it off when a proxy in front logs requests",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDR networks of the reverse proxies in front of casework; only a request "
        "from one of them has its X-Forwarded-For / X-Forwarded-Proto believed (the client address for rate "
        "limits and logs). Empty: forwarded headers are ignored",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"serve.trusted_proxies: {entry!r} is not an IP address or CIDR network "
                                 "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
        return [entry.strip() for entry in value]


class QueueSettings(BaseModel):
    """Work queues and get-next (CASEWORK_QUEUES__...)."""

    max_active_per_agent: int = Field(
        default=5, ge=1, description="tasks an agent may hold at once; get-next and claim refuse past this")


class ClockSettings(BaseModel):
    """The SLA clock loop (CASEWORK_CLOCK__...): in `casework serve` on the embedded default, else
    `casework worker clock`."""

    interval_s: float = Field(default=5.0, gt=0, le=50, description="seconds between sweeps; escalations fire "
                              "within this (plus a sweep's time) of their moment")
    batch: int = Field(default=5000, ge=1, description="clocks fired, or leases reaped, per committed batch "
                       "(10,000 breaches with escalations: 12 s in batches of 5,000 against 18 s in batches of "
                       "1,000 on a loaded 2-core machine; get-next skips the tasks a batch holds)")
    in_serve: bool = Field(default=True, description="run the clock loop inside `casework serve` on the embedded "
                           "default (turn off when a `casework worker clock` runs instead)")


class MetricsSettings(BaseModel):
    """Prometheus: ``/metrics`` on the API port needs a token; a scrape listener needs none."""

    port: int = Field(default=0, ge=0, le=65535, description="a scrape listener for Prometheus on this port "
                      "(http://HOST:PORT/metrics, no token): `serve` shows the same as /metrics, `casework worker "
                      "STAGE` its stage's series. 0: none")
    host: str = Field(default="127.0.0.1", description="address of the scrape listener (0.0.0.0 in a container; "
                      "keep it on a private network)")


class LogSettings(BaseModel):
    """How every casework process writes its log (api/log_setup.py)."""

    format: Literal["text", "json"] = Field(
        default="text", description="text: lines for a person at a terminal; json: one JSON object per line "
        "(time, level, logger, message, stage, item_id, case_ref, exc_info) for a log collector")


class WorkSettings(BaseModel):
    """Case work: where the case-type definitions and the business calendars are read from."""

    case_types_dir: str = Field(
        default="", description="folder of case-type definitions (<name>.yaml per type, plus mapping.yaml); "
        "empty means the definitions shipped with casework (casestore/work/shipped/case_types)",
    )
    calendars_dir: str = Field(
        default="", description="folder of business calendars (<name>.yaml per calendar); empty means the "
        "calendars shipped with casework (casestore/work/shipped/calendars)",
    )
    reload_check_s: float = Field(default=5.0, ge=0, le=3600, description="how often a running `casework serve` "
                                  "or file stage looks for changed calendars or case types (files in the two folders, "
                                  "versions in the store) and loads them without a restart; 0: never")
    triage_team: str = Field(default="triage", min_length=1, max_length=100, description="the team that works "
                             "the triage queue (get-next for triage items; supervisors and admins may too)")
    triage_lease_minutes: int = Field(default=30, ge=1, le=24 * 60, description="how long a triage item claimed "
                                      "by get-next stays with its holder unless resolved or released")


class OutboundSettings(BaseModel):
    """Outbound correspondence: the SMTP relay, From addresses, limits and the sender loop.

    SMS use the Twilio account of ``connectors.twilio`` (account_sid, auth_token, from_number,
    api_base_url)."""

    smtp_host: str = Field(default="", description="SMTP relay for outbound email; empty: email waits in the outbox")
    smtp_port: int = Field(default=587, description="relay port (587 submission with STARTTLS, 465 TLS, 25 plain)")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls: upgrade the connection (587); tls: TLS from the start (465); "
        "none: plain (a relay on the same host or a test server only)")
    smtp_user: str = Field(default="", description="relay login; empty: no AUTH")
    smtp_password: str = Field(default="", description="relay password")
    smtp_timeout_s: float = Field(default=30.0, gt=0, description="longest wait for one answer from the relay")
    from_address: str = Field(default="", description='From: of outbound email, e.g. "Casework <cases@example.com>"')
    team_from: dict[str, str] = Field(
        default_factory=dict, description='From: per team, as JSON: {"complaints": "Complaints <complaints@x.com>"}; '
        "a case of another team (or none) uses from_address")
    signature: str = Field(default="", description="the organisation's name, under every template's text")
    team_signature: dict[str, str] = Field(default_factory=dict, description="signature per team, as JSON")
    message_id_domain: str = Field(default="", description="domain of our Message-IDs; empty: the From domain")
    rate_limit_per_day: int = Field(
        default=20, ge=0, description="messages to one recipient (address, number, postal customer) within 24 "
        "hours; more are refused (a person) or held (automatic): a guard against mail loops. 0: no limit")
    max_sms_segments: int = Field(default=10, ge=1, description="longer SMS are refused at preview")
    templates_dir: str = Field(
        default="", description="folder of your own templates (<case_type>/<name>.<channel>.j2 or "
        "default/<name>.<channel>.j2); they override the shipped ones of the same name")
    letter_return_address: str = Field(default="", description="one line above the address in the window")
    letter_font: str = Field(default="", description="TrueType font for letters; empty: DejaVu Sans if installed")
    sms_status_callback_url: str = Field(
        default="", description="public URL of /webhooks/twilio/status as Twilio reaches it (signed callbacks "
        "update each SMS's delivery state); empty: no callbacks asked for")
    run_sender: bool = Field(default=True, description="run the sender inside `casework serve` (embedded default); "
                             "production runs `casework worker sender` instead")
    batch_size: int = Field(default=20, ge=1, description="messages a sender claims at once")
    claim_lease_s: float = Field(
        default=300.0, gt=0, description="how long a claimed message is a sender's: after this a stopped sender's "
        "messages are taken back (sent again if they never reached the relay, else unconfirmed)")
    max_attempts: int = Field(default=8, ge=1, description="tries before a message is failed")
    backoff_initial_s: float = Field(default=30.0, ge=0, description="first retry delay; doubles each try")
    backoff_max_s: float = Field(default=3600.0, ge=0, description="longest retry delay")
    poll_s: float = Field(default=1.0, gt=0, description="how often an idle sender looks for due messages")


class AuthSettings(BaseModel):
    last_used_flush_s: float = Field(
        default=60.0, ge=0, description="tokens' last-use times are kept in memory and written at most this often "
        "(seconds), after a response, in a short transaction that skips when the store is busy",
    )


class OidcSettings(BaseModel):
    """Signing in to the workbench through an OpenID Connect provider (Keycloak, Entra ID, Okta,
    Google Workspace...).  Off while ``issuer`` is empty.  The provider only proves who someone is:
    the casework user (role, teams) must already exist, with the name the provider sends in
    ``user_claim``; a disabled user cannot sign in this way either."""

    issuer: str = Field(default="", description="the provider's issuer URL; its /.well-known/openid-configuration "
                        "is read on first use. Empty: OpenID Connect sign-in is off")
    client_id: str = Field(default="", description="casework's client id at the provider")
    client_secret: SecretStr = Field(default=SecretStr(""), description="casework's client secret at the provider")
    scopes: str = Field(default="openid profile email", description="scopes asked for (must include openid)")
    user_claim: str = Field(default="preferred_username", description="the ID-token claim holding the casework "
                            "user name (preferred_username, email, upn, sub...)")
    label: str = Field(default="Sign in with your organisation's account", description="the sign-in page's button")
    redirect_url: str = Field(default="", description="the callback URL registered at the provider "
                              "(https://HOST/login/oidc/callback); empty: built from the request, which is right "
                              "unless a proxy rewrites the host or scheme")
    state_secret: SecretStr = Field(default=SecretStr(""), description="signs the short-lived cookie that carries "
                                    "the sign-in state, nonce and PKCE verifier between the two redirects; empty: "
                                    "a random key per process (set one when several API processes share a balancer)")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id)


class WebSettings(BaseModel):
    """The workbench (web pages at /) and its sign-in."""

    session_idle_minutes: float = Field(default=30.0, gt=0, description="a web session unused this long ends")
    assets_dir: str = Field(
        default="", description="where `npm ci` put the browser assets (htmx, Swagger UI, ReDoc); "
        "empty means node_modules/ beside the casework sources",
    )
    queue_counts_max_age_s: float = Field(
        default=10.0, ge=0, description="how old the queue counts on the workbench pages may be (my work, a queue, "
        "the supervisor dashboard): older counts are shown while fresh ones are read in the background; 0: "
        "read them for every page (costly with hundreds of thousands of open tasks on SQLite)")
    oidc: OidcSettings = OidcSettings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default=Path("./casework-data"), description="where blobs, SQLite files and the index live")
    bus: BusSettings = BusSettings()
    db: DbSettings = DbSettings()
    blobs: BlobSettings = BlobSettings()
    worker: WorkerSettings = WorkerSettings()
    extract: ExtractLimits = ExtractLimits()
    match: MatchSettings = MatchSettings()
    spam: SpamSettings = SpamSettings()
    serve: ServeSettings = ServeSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    search: SearchSettings = SearchSettings()
    auth: AuthSettings = AuthSettings()
    connectors: ConnectorSettings = ConnectorSettings()
    queues: QueueSettings = QueueSettings()
    clock: ClockSettings = ClockSettings()
    work: WorkSettings = WorkSettings()
    web: WebSettings = WebSettings()
    outbound: OutboundSettings = OutboundSettings()

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
    def doc_type_model_path(self) -> Path:
        if self.match.doc_type_model:
            return Path(self.match.doc_type_model)
        return self.data_dir / "models" / "doctype.joblib"

    @property
    def case_types_dir(self) -> Path:
        if self.work.case_types_dir:
            return Path(self.work.case_types_dir)
        from casestore.work.loader import SHIPPED_DIR

        return SHIPPED_DIR

    @property
    def calendars_dir(self) -> Path:
        if self.work.calendars_dir:
            return Path(self.work.calendars_dir)
        from casestore.work.calendar_config import SHIPPED_CALENDARS

        return SHIPPED_CALENDARS

    @property
    def is_embedded_bus(self) -> bool:
        return self.bus.url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
