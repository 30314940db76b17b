"""A real dovecot IMAP server in a temp directory, as TESTING.md describes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "cases@example.com"
PASSWORD = "secret"


@dataclass
class Dovecot:
    conf: Path
    port: int
    home: Path

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30, check=False)
        shutil.rmtree(self.conf.parent, ignore_errors=True)


def start_dovecot(port: int) -> Dovecot:
    """Start dovecot in a fresh directory under the system temp dir (dovecot's unprivileged
    processes need to reach it, which pytest's 0700 ``tmp_path`` parents would not allow)."""
    if shutil.which("dovecot") is None:
        raise RuntimeError("dovecot is not installed: apt-get install -y --no-install-recommends dovecot-imapd")
    base = Path(tempfile.mkdtemp(prefix="casework-dovecot-"))
    home = base / "home"
    (home / USER / "Maildir").mkdir(parents=True)
    for sub in ("run", "state"):
        (base / sub).mkdir()
    (base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf = base / "dovecot.conf"
    conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={home}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
    os.chmod(base, 0o755)
    subprocess.run(["chown", "-R", "65534:65534", str(home)], check=True)
    subprocess.run(["dovecot", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=30)
    server = Dovecot(conf, port, home)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"dovecot did not answer on port {port}; see {base}/dovecot.log")
