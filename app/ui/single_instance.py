"""One Crossledger per user and home folder: a second launch brings the first one's window forward.

The first instance holds a lock file and listens on a local socket (a named pipe on Windows) whose
name is derived from the user and the home folder, so two users, or one user with two ``--home``
folders, never collide. A second launch finds the lock taken, sends ``raise`` over the socket and
exits 0. After a crash, the lock names a dead process and is taken over, and the socket file left
behind is removed before listening again.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
from pathlib import Path

from PySide6.QtCore import QDir, QLockFile, QObject, Qt, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QWidget

from app.domain.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("crossledger.ui.instance")

RAISE = "raise"
ALREADY_RUNNING = "Crossledger is already running; its window was brought to the front."
NOT_ANSWERING = ("Crossledger is already running but did not answer. If it is stuck, end it (or restart the "
                 "computer) and start Crossledger again.")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers): the uid still tells users apart
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


def instance_key(home: Path | str | None, user: str | None = None) -> str:
    """The socket and lock name for this user and home folder (short: Unix socket paths are)."""
    where = str(Path(home).expanduser().resolve()) if home else ""
    digest = hashlib.sha256(f"{user or _user()}\0{where}".encode()).hexdigest()[:16]
    return f"crossledger-{digest}"


def bring_to_front(window: QWidget) -> None:
    """Show a hidden or minimised window and ask the desktop to raise and focus it."""
    if window.isMinimized():
        window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()


class SingleInstance(QObject):
    """``acquire()`` once at start: True means carry on (and listen for ``message_received``);
    False means another instance runs and has been told to raise its window (``answered``)."""

    message_received = Signal(str)

    def __init__(self, key: str, parent: QObject | None = None, *, lock_dir: Path | str | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(parent)
        self.key = key
        self.clock = clock  # paces the retries while the running instance is still starting up
        self.lock_path = Path(lock_dir or QDir.tempPath()) / f"{key}.lock"
        self.answered = False
        self._lock: QLockFile | None = None
        self._server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytes] = {}

    @property
    def is_primary(self) -> bool:
        return self._lock is not None

    def acquire(self, message: str = RAISE, timeout_ms: int = 3000) -> bool:
        lock = QLockFile(str(self.lock_path))
        lock.setStaleLockTime(0)  # stale only when its process is gone, never by age
        if lock.tryLock(0):
            self._lock = lock
            self._listen()
            return True
        self.answered = self.send(message, timeout_ms)
        return False

    def send(self, message: str, timeout_ms: int = 3000) -> bool:
        """Deliver one line to the running instance; retries while it is still starting up."""
        deadline = self.clock.monotonic() + timeout_ms / 1000
        while True:
            sock = QLocalSocket()
            sock.connectToServer(self.key)
            if sock.waitForConnected(max(50, min(500, timeout_ms))):
                sock.write((message.strip() + "\n").encode())
                sent = sock.waitForBytesWritten(timeout_ms)
                sock.disconnectFromServer()
                if sock.state() != QLocalSocket.LocalSocketState.UnconnectedState:
                    sock.waitForDisconnected(200)
                return sent
            if self.clock.monotonic() >= deadline:
                log.warning("the running instance did not answer on %s: %s", self.key, sock.errorString())
                return False
            self.clock.sleep(0.1)

    def close(self) -> None:
        """Stop listening and release the lock (at quit; the next launch is then the first)."""
        for sock in list(self._buffers):
            self._forget(sock)
        if self._server is not None:
            self._server.newConnection.disconnect(self._accept)
            self._server.close()
            self._server.deleteLater()
            self._server = None
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None

    # -- the first instance ------------------------------------------------------------------------
    def _listen(self) -> None:
        QLocalServer.removeServer(self.key)  # a socket file left by a crashed instance
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.key):
            log.warning("cannot listen on %s (%s); a second launch will not find this one",
                        self.key, server.errorString())
            return
        server.newConnection.connect(self._accept)
        self._server = server

    @Slot()
    def _accept(self) -> None:
        while self._server is not None and self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            sock.setParent(self)
            self._buffers[sock] = b""
            sock.readyRead.connect(self._ready)
            sock.disconnected.connect(self._disconnected)
            self._read(sock)  # what arrived before the signals were connected

    def _sender_socket(self) -> QLocalSocket | None:
        sock = self.sender()
        return sock if isinstance(sock, QLocalSocket) and sock in self._buffers else None

    @Slot()
    def _ready(self) -> None:
        sock = self._sender_socket()
        if sock is not None:
            self._read(sock)

    @Slot()
    def _disconnected(self) -> None:
        sock = self._sender_socket()
        if sock is not None:
            self._read(sock)
            self._forget(sock)

    def _forget(self, sock: QLocalSocket) -> None:
        """Disconnect first: a socket being destroyed still emits, and must not call back in here."""
        self._buffers.pop(sock, None)
        sock.readyRead.disconnect(self._ready)
        sock.disconnected.disconnect(self._disconnected)
        sock.abort()
        sock.deleteLater()

    def _read(self, sock: QLocalSocket) -> None:
        if sock not in self._buffers:
            return
        data = self._buffers[sock] + bytes(sock.readAll().data())
        *lines, rest = data.split(b"\n")
        self._buffers[sock] = rest[:4096]  # a line this long is not one of ours
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self.message_received.emit(text)

