"""A private Postfix on 127.0.0.1 for the tests (Debian: postfix): STARTTLS with the tests'
own certificate, AUTH through Dovecot's SASL (Debian: dovecot-core), every recipient at
example.com delivered by virtual(8) into one Maildir (each message says whom with its
Delivered-To header), its log in its own file.

``start_postfix(tls)`` writes the configuration into a fresh folder and runs ``postfix -c
DIR start``; the system's Postfix, if any, is not touched. Postfix and Dovecot log a fatal
start-up error only to syslog, so a failed start is reported with whatever they wrote.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.delivery.certs import TlsFiles

USER, PASSWORD = "newsletter", "relay-secret"
START_SECONDS = 20.0


def postfix_binary() -> str | None:
    return shutil.which("postfix") or ("/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix")
                                       else None)  # fmt: skip


@dataclass
class Postfix:
    root: Path
    port: int

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / "all"

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def delivered(self) -> list[Path]:
        new = self.maildir / "new"
        return sorted(new.iterdir()) if new.exists() else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _greets(port: int) -> bool:
    """Whether the server answers, asked politely (QUIT), so its log has no lost
    connection of ours."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            if not sock.recv(512).startswith(b"220"):
                return False
            sock.sendall(b"QUIT\r\n")
            return sock.recv(512).startswith(b"221")
    except OSError:
        return False


def _main_cf(root: Path, tls: TlsFiles, uid: int, gid: int) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.localhost
mydomain = localhost
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
virtual_mailbox_domains = example.com
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:all/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
virtual_destination_concurrency_limit = 20
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = {tls.cert}
smtpd_tls_key_file = {tls.key}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
default_process_limit = 50
notify_classes =
bounce_notice_recipient = postmaster
"""


def _dovecot_conf(root: Path) -> str:
    return f"""\
base_dir = {root}/dovecot/run
state_dir = {root}/dovecot/state
log_path = {root}/dovecot/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/dovecot/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {root}/queue/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


@contextlib.contextmanager
def start_postfix(tls: TlsFiles) -> Iterator[Postfix]:
    """Run a private Postfix (and the Dovecot that checks its passwords) until the block
    ends. Raises RuntimeError if it will not start. Needs root (Postfix's daemons change to
    their own user)."""
    binary = postfix_binary()
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="nl-postfix-"))
    os.chmod(root, 0o755)
    nobody = pwd.getpwnam("nobody")
    for sub in ("conf", "queue", "data", "mail", "dovecot/run", "dovecot/state"):
        (root / sub).mkdir(parents=True)
    os.chown(root / "mail", nobody.pw_uid, nobody.pw_gid)
    os.chown(root / "data", pwd.getpwnam("postfix").pw_uid, grp.getgrnam("postfix").gr_gid)
    (root / "dovecot" / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    (root / "dovecot" / "dovecot.conf").write_text(_dovecot_conf(root))
    for path in (tls.cert, tls.key):
        os.chmod(path, 0o644)  # read by Postfix's smtpd, which runs as "postfix"
    server = Postfix(root, _free_port())
    conf = root / "conf"
    (conf / "main.cf").write_text(_main_cf(root, tls, nobody.pw_uid, nobody.pw_gid))
    master = Path("/etc/postfix/master.cf").read_text().splitlines()
    lines = [f"127.0.0.1:{server.port} inet n - n - - smtpd"]
    for line in master:
        fields = line.split()
        if (
            not fields
            or line.startswith(("#", " "))
            or (fields[0] == "smtp" and fields[1] == "inet")
        ):
            continue
        if len(fields) >= 8:
            fields[4] = "n"  # no chroot: the paths above are outside any jail
        lines.append(" ".join(fields))
    (conf / "master.cf").write_text("\n".join(lines) + "\n")
    started = False
    dovecot: subprocess.Popen | None = None
    try:
        result = subprocess.run([binary, "-c", str(conf), "start"], capture_output=True,
                                text=True, check=False)  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and not (root / "queue" / "private").is_dir():
            time.sleep(0.05)  # Postfix makes its queue folders as it starts
        # Dovecot's SASL socket goes into Postfix's private folder, so it starts second.
        dovecot = subprocess.Popen(
            ["dovecot", "-F", "-c", str(root / "dovecot" / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while time.monotonic() < deadline and not _greets(server.port):
            time.sleep(0.1)  # polling for the listener, bounded by the deadline
        auth = root / "queue" / "private" / "auth"
        while time.monotonic() < deadline and not auth.exists():
            time.sleep(0.05)
        started = _greets(server.port) and auth.exists()
        if not started:
            raise RuntimeError(f"postfix did not start: {result.stdout}{result.stderr}"
                               f"{server.log()[-2000:]}")  # fmt: skip
        yield server
    finally:
        subprocess.run([binary, "-c", str(conf), "abort" if not started else "stop"],
                       capture_output=True, check=False)  # fmt: skip
        if dovecot is not None:
            dovecot.terminate()
            try:
                dovecot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                dovecot.kill()
        shutil.rmtree(root, ignore_errors=True)
