"""Settings of every connector, nested into the app's settings as ``connectors``.

Environment variables follow the app's convention (``CASEWORK_`` prefix, ``__`` nesting);
lists are given as JSON, e.g.::

    CASEWORK_CONNECTORS__SMTP__ENABLED=true
    CASEWORK_CONNECTORS__SMTP__DOMAINS='["cases.example.com"]'
    CASEWORK_CONNECTORS__IMAP__ACCOUNTS='[{"name": "cases", "host": "imap.example.com",
        "username": "cases@example.com", "password": "...", "folders": ["INBOX"]}]'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ingest.messages import Channel

AfterAction = Literal["none", "seen", "flag", "move", "delete"]
SplitMode = Literal["none", "blank", "barcode"]
Completion = Literal["stable", "marker"]
WatchMode = Literal["auto", "events", "poll"]


class ImapAccount(BaseModel):
    name: str = Field(description="short name, used in logs, metrics and the state file")
    host: str
    port: int = 993
    ssl: bool = True
    starttls: bool = False
    username: str
    password: str = ""
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], description="one watcher (connection) each")
    idle: bool = Field(default=True, description="use IDLE when the server offers it; else poll")
    idle_timeout_s: float = Field(default=300, description="re-issue IDLE (and re-check) after this long")
    poll_s: float = Field(default=60, description="polling interval when IDLE is off or not offered")
    after: AfterAction = Field(default="seen", description="what to do to a message once it is published")
    move_to: str = Field(default="Processed", description="target folder for after=move (created if missing)")
    flag: str = Field(default="\\Flagged", description="flag or keyword set by after=flag")
    team: str = ""
    timeout_s: float = 30


class ImapSettings(BaseModel):
    enabled: bool = False
    accounts: list[ImapAccount] = Field(default_factory=list)
    backoff_initial_s: float = Field(default=1.0, description="first reconnect delay; doubles each failure")
    backoff_max_s: float = 300.0


class SmtpSettings(BaseModel):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 2525
    domains: list[str] = Field(default_factory=list, description="accept mail for any address at these domains")
    recipients: list[str] = Field(default_factory=list, description="or only these exact addresses")
    max_message_bytes: int = Field(default=25 * 1024 * 1024, description="larger mail is refused with 552")
    hostname: str = Field(default="", description="name in the greeting; empty: the machine's FQDN")
    team: str = ""


class TwilioSettings(BaseModel):
    enabled: bool = False
    account_sid: str = ""
    auth_token: str = Field(default="", description="validates X-Twilio-Signature and fetches MMS media")
    path: str = "/webhooks/twilio/sms"
    public_url: str = Field(default="", description="the exact URL configured at Twilio; empty: the request URL")
    reply: str = Field(default="", description="TwiML <Message> sent back to the sender; empty: no reply")
    from_number: str = Field(default="", description="sender number for outbound SMS")
    api_base_url: str = Field(default="", description="override https://api.twilio.com (tests, proxies)")
    max_media_bytes: int = 10 * 1024 * 1024
    media_timeout_s: float = Field(default=20, description="longest one media fetch may take, redirects included")
    media_hosts: list[str] = Field(
        default_factory=lambda: ["api.twilio.com"],
        description="hosts a MediaUrl may name (exact, or *.suffix); only these get the account credentials")
    media_redirect_hosts: list[str] = Field(
        default_factory=lambda: ["*.twiliocdn.com"],
        description="further hosts Twilio's media redirects may lead to; fetched without credentials")
    media_allow_private: bool = Field(
        default=False, description="allow media on private, loopback and link-local addresses and over plain "
        "http (tests and on-premises stand-ins only)")


class FaxSettings(BaseModel):
    enabled: bool = False
    path: str = "/webhooks/fax"
    secret: str = Field(default="", description="HMAC-SHA256 key; the webhook refuses every request while empty")
    signature_header: str = "X-Casework-Signature"
    media_username: str = Field(default="", description="basic auth for media URLs, if the provider needs it")
    media_password: str = ""
    media_url_prefixes: list[str] = Field(
        default_factory=list, description="media URLs must also start with one of these (empty: no prefix rule)")
    media_hosts: list[str] = Field(
        default_factory=list, description="hosts media_url and its redirects may name (exact, or *.suffix); "
        "empty: any public host. The basic auth goes to these (empty: to media_url's own host) only")
    media_allow_private: bool = Field(
        default=False, description="allow media on private, loopback and link-local addresses and over plain "
        "http (tests and on-premises stand-ins only)")
    media_timeout_s: float = 30
    max_bytes: int = 50 * 1024 * 1024
    spool_dir: str = Field(default="", description="HylaFAX recvq (or gateway attachment) folder; empty: none")
    poll_s: float = 2.0
    team: str = ""


class WatchedFolder(BaseModel):
    name: str = Field(default="", description="metrics/log name; empty: the folder's last path part")
    path: str
    channel: Channel | Literal["auto"] = Field(
        default="auto", description="scan, fax, file, ...; auto: by extension (.eml email, images/PDF scan, else file)")
    team: str = ""
    doc_type: str = ""
    metadata: dict[str, str] = Field(default_factory=dict, description="extra metadata set on every item")
    subfolder_key: str = Field(default="", description="metadata key that takes the first subfolder's name")
    split: SplitMode = Field(default="none", description="split a multi-page PDF/TIFF batch at separator pages")
    separator_barcode: str = Field(default="PATCHT", description="barcode text that marks a separator page")
    blank_ink_ratio: float = Field(default=0.003, description="a page with less dark ink than this is blank")
    completion: Completion = "stable"
    marker_suffix: str = Field(default=".ready", description="with completion=marker: FILE+suffix says FILE is done")
    stable_s: float = Field(default=1.0, description="with completion=stable: unchanged for this long")
    extensions: list[str] = Field(default_factory=list, description="only these (e.g. ['.pdf']); empty: any")
    watch: WatchMode = "auto"
    poll_s: float = 1.0


class FolderSettings(BaseModel):
    enabled: bool = False
    folders: list[WatchedFolder] = Field(default_factory=list)


class DropIntegration(BaseModel):
    """A landing folder for one third-party system; its fields say which customer and case."""

    name: str
    path: str
    extensions: list[str] = Field(default_factory=lambda: [".pdf", ".xml", ".html", ".htm", ".csv", ".json"])
    filename_pattern: str = Field(
        default="", description=r"regex with named groups, e.g. (?P<customer_id>C-\d+)_(?P<case_ref>[A-Z]+-\d+)")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="metadata key -> where in the file: JSON dotted path, XML element path, CSV column")
    metadata: dict[str, str] = Field(default_factory=dict)
    team: str = ""
    doc_type: str = ""
    poll_s: float = 1.0


class DropSettings(BaseModel):
    enabled: bool = False
    integrations: list[DropIntegration] = Field(default_factory=list)


class CallSettings(BaseModel):
    enabled: bool = False
    path: str = Field(default="", description="landing folder for CSV/JSON/JSONL call record exports")
    columns: dict[str, str] = Field(
        default_factory=dict, description="our field -> the export's column, when it is not a known alias")
    team: str = ""
    poll_s: float = 1.0


class FormField(BaseModel):
    name: str
    label: str = ""
    type: Literal["text", "email", "tel", "textarea", "select", "date", "number", "file", "checkbox"] = "text"
    required: bool = False
    options: list[str] = Field(default_factory=list, description="choices of a select")
    max_length: int = 5000
    metadata_key: str = Field(default="", description="also copy the value to this metadata key (sender_email)")


class FormDefinition(BaseModel):
    id: str
    title: str
    description: str = ""
    case_type: str = Field(default="", description="target case type, set as doc_type on the item")
    team: str = ""
    fields: list[FormField]
    submit_label: str = "Send"
    thanks: str = "Thank you. We have received your message."


class WebformSettings(BaseModel):
    enabled: bool = False
    forms: list[FormDefinition] = Field(default_factory=list)
    secret: str = Field(default="", description="signs CSRF tokens; empty: a random key per process")
    token_ttl_s: int = Field(default=3600, description="a rendered form can be sent within this long")
    rate_limit: int = Field(default=10, description="submissions per client per rate_window_s")
    rate_window_s: float = 60
    max_body_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    honeypot_field: str = "website"


class ConnectorSettings(BaseModel):
    imap: ImapSettings = ImapSettings()
    smtp: SmtpSettings = SmtpSettings()
    twilio: TwilioSettings = TwilioSettings()
    fax: FaxSettings = FaxSettings()
    folders: FolderSettings = FolderSettings()
    drops: DropSettings = DropSettings()
    calls: CallSettings = CallSettings()
    webform: WebformSettings = WebformSettings()
