"""A private Dovecot IMAP server on 127.0.0.1 for the tests (Debian: dovecot-imapd).

``start_dovecot(tls)`` writes its own config (random ports, a passwd-file user, Maildir
storage, its own base_dir) into a fresh folder and runs ``dovecot -F -c CONFIG``; the system
Dovecot, if any, is not touched. Dovecot refuses to keep mail as root, so when the tests run
as root the mail belongs to "nobody" and the folder lives in /tmp (pytest's own tmp folders
are closed to other users); otherwise everything runs as the current user.
"""

from __future__ import annotations

import contextlib
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

USER, PASSWORD = "bounces@example.com", "imap-secret"
START_SECONDS = 15.0


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


@dataclass
class Dovecot:
    root: Path
    imap_port: int
    imaps_port: int

    def url(self, tls: bool = True, mailbox: str = "INBOX") -> str:
        scheme, port = ("imaps", self.imaps_port) if tls else ("imap", self.imap_port)
        return f"{scheme}://bounces%40example.com@127.0.0.1:{port}/{mailbox}"

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _config(root: Path, user: pwd.struct_passwd, imap: int, imaps: int, tls: TlsFiles) -> str:
    me = pwd.getpwuid(os.getuid()).pw_name
    unprivileged = (
        ""
        if os.getuid() == 0
        else f"default_login_user = {me}\ndefault_internal_user = {me}\n"
        "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
    )
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{tls.cert}
ssl_key = <{tls.key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%n
first_valid_uid = 1
auth_failure_delay = 0
{unprivileged}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user.pw_uid} gid={user.pw_gid} home={root}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
  }}
}}
"""


@contextlib.contextmanager
def start_dovecot(tls: TlsFiles) -> Iterator[Dovecot]:
    """Run a private Dovecot until the block ends. Raises RuntimeError if it will not start."""
    binary = dovecot_binary()
    assert binary is not None
    root = Path(tempfile.mkdtemp(prefix="nl-dovecot-"))
    os.chmod(root, 0o755)
    user = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    (root / "mail").mkdir()
    os.chown(root / "mail", user.pw_uid, user.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    proc: subprocess.Popen | None = None
    try:
        for _attempt in range(3):  # a free port may be taken before Dovecot binds it
            server = Dovecot(root, _free_port(), _free_port())
            conf = root / "dovecot.conf"
            conf.write_text(_config(root, user, server.imap_port, server.imaps_port, tls))
            with open(root / "stderr.log", "ab") as errors:
                proc = subprocess.Popen(
                    [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=errors
                )
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline and proc.poll() is None:
                if _greets(server.imap_port):  # both listeners open together
                    break
                time.sleep(0.05)  # polling for the listener, bounded by the deadline
            if proc.poll() is None and _greets(server.imap_port):
                break
            _stop(proc)
            proc = None
        if proc is None:
            raise RuntimeError(
                "dovecot did not start: "
                + (root / "stderr.log").read_text(errors="replace")[-2000:]
                + server.log()[-2000:]
            )
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
