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
    enabled: bool = Field(default=False, description="poll IMAP mailboxes (in `casework serve`)")
    accounts: list[ImapAccount] = Field(default_factory=list,
        description="JSON list of accounts: name, host, port, tls, username, password, folders, after "
        "(move|flag|delete), move_to, team (README: Connectors)")
    backoff_initial_s: float = Field(default=1.0, description="first reconnect delay; doubles each failure")
    backoff_max_s: float = Field(default=300.0, description="longest reconnect delay")


class SmtpSettings(BaseModel):
    enabled: bool = Field(default=False, description="receive mail over SMTP (aiosmtpd, in `casework serve`)")
    host: str = Field(default="127.0.0.1", description="address the SMTP receiver listens on")
    port: int = Field(default=2525, description="its port")
    domains: list[str] = Field(default_factory=list, description="accept mail for any address at these domains")
    recipients: list[str] = Field(default_factory=list, description="or only these exact addresses")
    max_message_bytes: int = Field(default=25 * 1024 * 1024, description="larger mail is refused with 552")
    hostname: str = Field(default="", description="name in the greeting; empty: the machine's FQDN")
    team: str = Field(default="", description="team of the cases this mail opens; empty: none")


class TwilioSettings(BaseModel):
    enabled: bool = Field(default=False, description="take SMS and MMS from Twilio's webhook")
    account_sid: str = Field(default="", description="the Twilio account (AC...)")
    auth_token: str = Field(default="", description="validates X-Twilio-Signature and fetches MMS media")
    path: str = Field(default="/webhooks/twilio/sms", description="where Twilio posts incoming messages")
    public_url: str = Field(default="", description="the exact URL configured at Twilio; empty: the request URL")
    reply: str = Field(default="", description="TwiML <Message> sent back to the sender; empty: no reply")
    from_number: str = Field(default="", description="sender number for outbound SMS")
    api_base_url: str = Field(default="", description="override https://api.twilio.com (tests, proxies)")
    max_media_bytes: int = Field(default=10 * 1024 * 1024, description="largest MMS media file fetched")
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
    enabled: bool = Field(default=False, description="take faxes from a signed webhook or a spool folder")
    path: str = Field(default="/webhooks/fax", description="where the fax provider posts")
    secret: str = Field(default="", description="HMAC-SHA256 key; the webhook refuses every request while empty")
    signature_header: str = Field(default="X-Casework-Signature",
        description="header carrying the HMAC-SHA256 of the body")
    media_username: str = Field(default="", description="basic auth for media URLs, if the provider needs it")
    media_password: str = Field(default="", description="with media_username")
    media_url_prefixes: list[str] = Field(
        default_factory=list, description="media URLs must also start with one of these (empty: no prefix rule)")
    media_hosts: list[str] = Field(
        default_factory=list, description="hosts media_url and its redirects may name (exact, or *.suffix); "
        "empty: any public host. The basic auth goes to these (empty: to media_url's own host) only")
    media_allow_private: bool = Field(
        default=False, description="allow media on private, loopback and link-local addresses and over plain "
        "http (tests and on-premises stand-ins only)")
    media_timeout_s: float = Field(default=30, description="longest one media fetch may take")
    max_bytes: int = Field(default=50 * 1024 * 1024, description="largest fax accepted")
    spool_dir: str = Field(default="", description="HylaFAX recvq (or gateway attachment) folder; empty: none")
    poll_s: float = Field(default=2.0, description="how often spool_dir is scanned")
    team: str = Field(default="", description="team of the cases faxes open; empty: none")


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
    enabled: bool = Field(default=False, description="watch the folders below (scanners, mailroom shares)")
    folders: list[WatchedFolder] = Field(default_factory=list,
        description="JSON list of watched folders: path, channel, team, doc_type, split, completion... (README: "
        "Connectors)")


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
    enabled: bool = Field(default=False, description="take files other systems drop in landing folders")
    integrations: list[DropIntegration] = Field(default_factory=list,
        description="JSON list of landing folders: name, path, extensions, filename_pattern, fields (README: "
        "Connectors)")


class CallSettings(BaseModel):
    enabled: bool = Field(default=False, description="take call-record exports (CSV, JSON, JSONL)")
    path: str = Field(default="", description="landing folder for CSV/JSON/JSONL call record exports")
    columns: dict[str, str] = Field(
        default_factory=dict, description="our field -> the export's column, when it is not a known alias")
    team: str = Field(default="", description="team of the cases calls open; empty: none")
    poll_s: float = Field(default=1.0, description="how often the folder is scanned")


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
    enabled: bool = Field(default=False, description="serve the public web forms at /forms/ID")
    forms: list[FormDefinition] = Field(default_factory=list,
        description="JSON list of forms: id, title, fields, case_type, team (README: Connectors)")
    secret: str = Field(default="", description="signs CSRF tokens; empty: a random key per process")
    token_ttl_s: int = Field(default=3600, description="a rendered form can be sent within this long")
    rate_limit: int = Field(default=10, description="submissions per client per rate_window_s")
    rate_window_s: float = Field(default=60, description="the window of rate_limit (per process)")
    max_body_bytes: int = Field(default=20 * 1024 * 1024, description="largest submission")
    max_file_bytes: int = Field(default=10 * 1024 * 1024, description="largest attached file")
    honeypot_field: str = Field(default="website",
        description="hidden field a person leaves empty; filled: a bot, dropped")


class ConnectorSettings(BaseModel):
    imap: ImapSettings = ImapSettings()
    smtp: SmtpSettings = SmtpSettings()
    twilio: TwilioSettings = TwilioSettings()
    fax: FaxSettings = FaxSettings()
    folders: FolderSettings = FolderSettings()
    drops: DropSettings = DropSettings()
    calls: CallSettings = CallSettings()
    webform: WebformSettings = WebformSettings()
