"""The policy in force, reloaded when its files change.

The adapter calls poll() on requests (it checks at most once per interval), or changed()
from its event loop and reload_if_changed() in a worker thread when it is true (parsing a
large policy takes milliseconds); nothing here starts a thread. Both are thread-safe. A change
is noticed by comparing each file's name, size, mtime, ctime and inode: a few stat calls.
A broken edit is logged once (file, line, problem) and the last good policy stays in
force until the files are fixed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from .policy import PolicySet, load_policy
from .policy_loader import PolicyError, policy_files
from .policy_version import policy_version

log = logging.getLogger(__name__)

Fingerprint = tuple


class PolicyRepository:
    def __init__(self, policy_dir: Path | str, min_interval: float = 1.0) -> None:
        """Loads the policy now; raises PolicyError if it is broken (start-up must stop)."""
        self.policy_dir = Path(policy_dir)
        self.min_interval = min_interval
        self.last_error: PolicyError | None = None
        self._lock = threading.Lock()
        self._seen = self._fingerprint()
        self.version = policy_version(self.policy_dir)  # of the policy in force, see current()
        self._current = load_policy(self.policy_dir)
        self._last_check = time.monotonic()

    def current(self) -> PolicySet:
        """The last policy that loaded without problems."""
        return self._current

    def changed(self) -> bool:
        """Whether the files differ from the version last read: a few stat calls, cheap
        enough for the event loop. Reload (which parses) with reload_if_changed(), e.g. in
        `asyncio.to_thread`."""
        return self._fingerprint() != self._seen

    def poll(self) -> bool:
        """reload_if_changed(), at most once per `min_interval` seconds."""
        now = time.monotonic()
        if now - self._last_check < self.min_interval:
            return False
        self._last_check = now
        return self.reload_if_changed()

    def reload_if_changed(self) -> bool:
        """Reload if the files changed. True when a new policy is now in force."""
        with self._lock:
            fingerprint = self._fingerprint()
            if fingerprint == self._seen:
                return False
            # Remember it before reading: a broken version is reported once, not every poll,
            # and a change made while reading is picked up by the next check.
            self._seen = fingerprint
            try:
                version = policy_version(self.policy_dir)
                policy = load_policy(self.policy_dir)
            except PolicyError as error:
                self.last_error = error
                log.error("policy: reload failed, the last good policy stays in force:\n%s", error)
                return False
            self._current, self.version = policy, version
            self.last_error = None
            log.info("policy: reloaded %s from %s", policy, self.policy_dir)
            return True

    def _fingerprint(self) -> Fingerprint:
        try:
            paths = policy_files(self.policy_dir)
        except OSError as error:
            return ("unreadable", str(error))
        if not paths and not self.policy_dir.is_dir():
            return ("missing",)
        entries = []
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                entries.append((path.name, None))
                continue
            entries.append((path.name, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))
        return tuple(entries)
