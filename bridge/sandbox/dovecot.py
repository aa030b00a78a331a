"""Runs a private, throw-away Dovecot IMAP server on loopback for the tests, the demo and the benches."""

from __future__ import annotations

import argparse
import atexit
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import imapclient

MAIL_USER = "bridgemail"
"""System user that owns the mail files when we run as root (Dovecot refuses uid 0 for mail)."""

DEFAULT_USERS = {"support": "support-pw"}

_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
# Unix socket paths are capped at 107 bytes; Dovecot's socket names add up to ~35 under base_dir.
_MAX_BASE_DIR = 70
_PORT_ATTEMPTS = 5

# Dovecot daemonizes, so it would outlive an owner that is SIGKILLed (crash tests, timeouts) and keep
# its port and processes forever. This tiny process, in its own session, kills the instance's process
# group (as master.pid names it, so restarts are covered) and removes its temporary folders once the
# owner is gone.
_WATCHDOG = """
import os, shutil, signal, sys, time
owner, pid_file, *trash = sys.argv[1:]
def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
while alive(owner):
    time.sleep(1)
try:
    os.killpg(int(open(pid_file).read().split()[0]), signal.SIGKILL)
except (OSError, ValueError, IndexError):
    pass
for path in trash:
    shutil.rmtree(path, ignore_errors=True)
"""


class Dovecot:
    """One Dovecot instance with its own config, sockets, log, passwd-file and maildirs under `root`.

    Several instances may run at once: each has its own instance_name, base_dir and port.
    """

    def __init__(
        self,
        root: Path | None = None,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        oauth2_introspection_url: str | None = None,
        max_connections_per_user: int = 1000,
    ) -> None:
        """With `oauth2_introspection_url` the users may also log in with XOAUTH2 and OAUTHBEARER,
        their tokens checked by RFC 7662 introspection at that URL (e.g. an OAuthServer's).
        `max_connections_per_user` is Dovecot's per user+IP limit: beyond it a login gets
        `NO [LIMIT]`, as a provider's connection limit answers."""
        self.users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        for name, password in self.users.items():
            _check_credentials(name, password)
        self.host = host
        self.port = port
        self.max_connections_per_user = max_connections_per_user
        self.oauth2_introspection_url = oauth2_introspection_url
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-")) if root is None else Path(root).resolve()
        if any(ch.isspace() or ch == '"' for ch in str(self.root)):
            raise ValueError(f"Dovecot root must not contain spaces or quotes: {self.root}")
        self.log_path = self.root / "dovecot.log"
        self._conf = self.root / "dovecot.conf"
        self._passwd = self.root / "passwd"
        self._oauth2_conf = self.root / "dovecot-oauth2.conf.ext"
        self._mail = self.root / "mail"
        self._state_dir = self.root / "state"
        self._base_dir, self._owns_base_dir = self._pick_base_dir()
        self._instance = f"bridge-sandbox-{uuid.uuid4().hex[:10]}"
        self._pid: int | None = None
        self._clients: dict[str, imapclient.IMAPClient] = {}
        self._lock = threading.Lock()
        self._watchdog: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        """Path of the dovecot executable, or None when it is not installed (/usr/sbin is often off PATH)."""
        found = shutil.which("dovecot")
        if found:
            return found
        return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None

    def start(self, timeout: float = 10.0) -> Dovecot:
        """Write the config, launch the daemon and return once it answers an IMAP greeting."""
        binary = self.binary()
        if binary is None:
            raise RuntimeError("Dovecot is missing: run scripts/install-dovecot.sh")
        uid, gid = self._prepare_files()
        deadline = time.monotonic() + timeout
        fixed_port = self.port != 0
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self.port if fixed_port else _free_port(self.host)
            self._write_config(port, uid, gid)
            status, output = self._launch(binary)
            if status == 0:
                break
            # A free port picked by us can be taken by someone else before Dovecot binds it: pick again.
            if fixed_port or "Address already in use" not in output or attempt == _PORT_ATTEMPTS:
                raise RuntimeError(
                    f"Dovecot failed to start (exit {status}): {output.strip()}\n{self._log_tail()}"
                )
        self.port = port
        atexit.register(self.stop)
        if not self._wait_for_greeting(deadline):
            log = self._log_tail()
            self._shutdown()
            raise RuntimeError(
                f"Dovecot exited or did not greet on {self.host}:{self.port} within {timeout}s\n{log}"
            )
        self._start_watchdog()
        return self

    def stop(self) -> None:
        """Stop the daemon and delete the files we created; safe to call twice."""
        self._shutdown()
        atexit.unregister(self.stop)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self._owns_base_dir:
            shutil.rmtree(self._base_dir, ignore_errors=True)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port with the same mail, so clients see a dropped connection."""
        self._shutdown()
        self.start()

    def add_user(self, name: str, password: str) -> None:
        """Add a login; Dovecot re-reads the changed passwd-file by itself, so no restart is needed."""
        _check_credentials(name, password)
        self.users[name] = password
        if self._passwd.exists():
            with self._passwd.open("a") as passwd:
                passwd.write(_passwd_line(name, password))
            # Dovecot checks the file at most once per wall-clock second: wait for the next one.
            time.sleep(1.02 - time.time() % 1)

    def client(self, user: str = "support") -> imapclient.IMAPClient:
        """A fresh logged-in plain-text client; the caller logs it out."""
        client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        try:
            client.login(user, self.users[user])
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self, raw: bytes, folder: str = "INBOX", user: str = "support", flags: Iterable[str | bytes] = ()
    ) -> int:
        """APPEND a message and return its UID (from UIDPLUS APPENDUID), creating the folder if missing.

        One cached connection per user keeps bulk loading fast (benches append thousands of mails).
        """
        with self._lock:
            try:
                response = self._append_once(raw, folder, user, tuple(flags))
            except (OSError, imaplib.IMAP4.abort):
                # The cached connection went stale (idle logout, server restarted by someone): retry once.
                self._drop_client(user)
                response = self._append_once(raw, folder, user, tuple(flags))
        match = _APPENDUID.search(response)
        if match is None:
            raise RuntimeError(f"APPEND answer has no APPENDUID: {response!r}")
        return int(match.group(1))

    def __enter__(self) -> Dovecot:
        try:
            return self.start()
        except BaseException:
            self.stop()  # __exit__ will not run, so clean up the temporary files here
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _append_once(self, raw: bytes, folder: str, user: str, flags: tuple[str | bytes, ...]) -> bytes:
        client = self._clients.get(user)
        if client is None:
            client = self._clients[user] = self.client(user)
        try:
            return client.append(folder, raw, flags=flags)
        except imaplib.IMAP4.error as exc:
            if "TRYCREATE" not in str(exc):
                raise
        client.create_folder(folder)
        return client.append(folder, raw, flags=flags)

    def _drop_client(self, user: str) -> None:
        client = self._clients.pop(user, None)
        if client is not None:
            try:
                client.shutdown()
            except OSError:
                pass

    def _pick_base_dir(self) -> tuple[Path, bool]:
        """base_dir lives under root unless its socket paths would be too long for AF_UNIX."""
        base_dir = self.root / "run"
        if len(str(base_dir)) <= _MAX_BASE_DIR:
            return base_dir, False
        return Path(tempfile.mkdtemp(prefix="dovecot-run-")), True

    def _prepare_files(self) -> tuple[int, int]:
        """Create the folders and passwd-file with owners and modes Dovecot's processes can use."""
        uid, gid = _mail_identity()
        self._mail.mkdir(parents=True, exist_ok=True)
        self._state_dir.mkdir(exist_ok=True)
        self._passwd.write_text("".join(_passwd_line(n, p) for n, p in self.users.items()))
        if os.geteuid() == 0:
            # Dovecot's own processes (user dovecot) and the mail process (bridgemail) must reach these.
            self.root.chmod(0o755)
            if self._owns_base_dir:
                self._base_dir.chmod(0o755)
            _require_traversable(self.root)
            os.chown(self._mail, uid, gid)
        return uid, gid

    def _write_config(self, port: int, uid: int, gid: int) -> None:
        # Without root, Dovecot can neither switch users nor chroot: everything runs as ourselves.
        rootless = os.geteuid() != 0
        no_chroot = "  chroot =\n" if rootless else ""
        identity = ""
        if rootless:
            user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
            identity = (
                f"default_internal_user = {user}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {user}\n"
            )
        tokens = " xoauth2 oauthbearer" if self.oauth2_introspection_url is not None else ""
        self._conf.write_text(
            f"""# Written by bridge.sandbox.dovecot for one throw-away instance.
instance_name = {self._instance}
base_dir = {self._base_dir}
state_dir = {self._state_dir}
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {self.host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{tokens}
auth_verbose = yes
# Wrong passwords are tested on purpose: answer at once instead of after 2 s.
auth_failure_delay = 0
first_valid_uid = {uid}
first_valid_gid = {gid}
{identity}mail_location = maildir:~/Maildir
{self._passdbs()}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self._mail}/%u
}}
protocol imap {{
  # Tests, the bridge and benches open many connections as the same user from 127.0.0.1
  # (a test of a provider's connection limit sets a small one).
  mail_max_userip_connections = {self.max_connections_per_user}
}}
# No auth penalty: otherwise one wrong-password test slows every later login from 127.0.0.1
# by seconds. Dovecot skips the penalty when auth cannot open this socket.
service anvil {{
{no_chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{no_chroot}  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )

    def _passdbs(self) -> str:
        """Passwords from the passwd-file; with introspection also bearer tokens, for their own mechanisms only."""
        if self.oauth2_introspection_url is None:
            return f"""passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self._passwd}
}}
"""
        self._oauth2_conf.write_text(
            f"""introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""
        )
        # Without `mechanisms` (honoured by 2.3.19) the oauth2 passdb would also be asked about a PLAIN
        # password and the passwd-file one about a token. The third passdb runs only after a token was
        # accepted and, as the oauth2 one ends with `continue`, just looks the user up without a password
        # check: a valid token for someone without a passwd-file line is refused as a login failure
        # (AUTHENTICATIONFAILED), not the "internal error" a missing userdb entry would give.
        return f"""passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self._passwd}
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  args = {self._oauth2_conf}
  mechanisms = xoauth2 oauthbearer
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self._passwd}
  mechanisms = xoauth2 oauthbearer
  skip = unauthenticated
}}
"""

    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            trash = [str(self.root)] if self._owns_root else []
            if self._owns_base_dir:
                trash.append(str(self._base_dir))
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self._base_dir / "master.pid"), *trash],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives a kill of the owner's process group
            )

    def _launch(self, binary: str) -> tuple[int, str]:
        """Run `dovecot -c conf`, which daemonizes; output goes to a file as the daemon may keep pipes open."""
        startup = self.root / "startup.out"
        with startup.open("w+") as out:
            status = subprocess.run(
                [binary, "-c", str(self._conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            ).returncode
            out.seek(0)
            return status, out.read()

    def _read_pid(self) -> int | None:
        try:
            return int((self._base_dir / "master.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _wait_for_greeting(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as conn:
                    if conn.recv(256).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            # The daemon writes master.pid shortly after `dovecot -c` returns.
            self._pid = self._pid or self._read_pid()
            if self._pid is not None and not _alive(self._pid):
                return False
            time.sleep(0.05)
        return False

    def _shutdown(self, timeout: float = 10.0) -> None:
        """SIGTERM the instance's whole process group, wait for the children, then finish the master.

        Signalling only the master is not enough: its imap processes outlive it and keep serving
        connected clients, which would defeat restart(). The master leads its own session, so its
        process group is exactly this instance. Once its children are gone the master has nothing
        left to do but sleep in 1-second steps waiting to reap them, so it is killed outright; the
        files it may leave behind are removed, or the next start would wait 10 s for the stale lock.
        """
        for user in list(self._clients):
            self._drop_client(user)
        master, self._pid = self._pid or self._read_pid(), None
        if master is None:
            return
        try:
            os.killpg(master, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while members := _group_members(master):
            if members == [master]:
                os.kill(master, signal.SIGKILL)
            elif time.monotonic() > deadline:
                os.killpg(master, signal.SIGKILL)
            time.sleep(0.01)
        (self._base_dir / "master.pid").unlink(missing_ok=True)
        (self._state_dir / "instances.lock").unlink(missing_ok=True)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(tail)


def _check_credentials(name: str, password: str) -> None:
    """passwd-file fields are ':'-separated lines, so these characters would corrupt it."""
    for value in (name, password):
        if not value or any(ch in value for ch in ":\n\r"):
            raise ValueError(f"user names and passwords must be non-empty without ':' or newlines: {value!r}")


def _passwd_line(name: str, password: str) -> str:
    return f"{name}:{{PLAIN}}{password}\n"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _proc_stat(pid: str | int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie counts as gone (our PID 1 may never reap the daemon)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(entry.name)
            if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def _mail_identity() -> tuple[int, int]:
    """uid/gid for the mail files: ourselves, or as root the dedicated system user (created if missing)."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", MAIL_USER], capture_output=True, text=True
        )
        # Another instance may be creating it at the same moment: only fail if it still does not exist.
        for _ in range(20):
            try:
                entry = pwd.getpwnam(MAIL_USER)
                break
            except KeyError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot create system user {MAIL_USER}: {result.stderr.strip()}") from None
    return entry.pw_uid, entry.pw_gid


def _require_traversable(path: Path) -> None:
    """As root the mail process runs as bridgemail, which needs execute permission on every parent."""
    for folder in [path, *path.parents]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise RuntimeError(f"{folder} is not traversable by {MAIL_USER}; use a root under /tmp")


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT so the demo and benches can use a real IMAP server."""
    parser = argparse.ArgumentParser(description="Run a throw-away Dovecot IMAP server on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with Dovecot(host=args.host, port=args.port) as server:
        user, password = next(iter(server.users.items()))
        print(f"ready imap://{server.host}:{server.port} user={user} password={password}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
