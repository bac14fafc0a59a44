"""The champion model, kept current without restarts.

The model is loaded from the MLflow registry alias ``champion`` (:func:`kt.train.tracking.load_champion`).
A background thread polls :func:`champion_version` every ``poll_seconds``; when the alias moves
it loads the new version *off the request path*, builds everything that depends on the model
(the mastery tracker) and then swaps one reference. Requests read ``current`` once and use
that object to the end, so a swap never fails or mixes two models within one request; the
old model is freed when its last request finishes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kt.api.model")


@dataclass(frozen=True)
class Served:
    """One champion version and what was built on it (e.g. ``tracker``)."""

    version: int
    loaded: Any  # kt.models.checkpoint.LoadedModel
    extras: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.extras[name]
        except KeyError:
            raise AttributeError(name) from None


class ModelService:
    """Holds the served champion and hot-swaps it when the registry alias moves.

    load: settings -> LoadedModel (default ``load_champion``); version: settings -> int | None
    (default ``champion_version``); build: (version, LoadedModel) -> dict of extras built on the
    model, run before the swap.
    """

    def __init__(
        self,
        settings,
        build: Callable[[int, Any], dict[str, Any]] | None = None,
        *,
        poll_seconds: float = 5.0,
        load: Callable | None = None,
        version: Callable | None = None,
        on_swap: Callable[[Served], None] | None = None,
        before_swap: Callable[[Served], None] | None = None,
    ) -> None:
        from kt.train.tracking import champion_version, load_champion

        self.settings = settings
        self.build = build or (lambda _v, _m: {})
        self.poll_seconds = poll_seconds
        self._load = load or load_champion
        self._version = version or champion_version
        self._on_swap = on_swap
        self._before_swap = before_swap
        # held by the swap and by whoever must update the served objects in place (catalog
        # writes): an update lands either in the old objects before the swap or in the new
        # ones, never lost between them
        self.swap_lock = threading.Lock()
        self.current: Served | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one load at a time (poller vs. an explicit refresh)

    @property
    def ready(self) -> bool:
        return self.current is not None

    @property
    def version(self) -> int | None:
        cur = self.current
        return cur.version if cur is not None else None

    def refresh(self) -> bool:
        """Load the champion if its version differs from the served one. True if swapped."""
        with self._lock:
            try:
                version = self._version(self.settings)
                if version is None or (self.current is not None and self.current.version == version):
                    return False
                loaded = self._load(self.settings)
                version = int(loaded.meta.get("version", version))
                served = Served(version=version, loaded=loaded, extras=self.build(version, loaded))
            except Exception as exc:  # keep serving the old model; report on /readyz and in the log
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("champion refresh failed: %s", self.last_error, exc_info=exc)
                return False
            with self.swap_lock:
                if self._before_swap is not None:
                    self._before_swap(served)
                self.current = served  # the atomic swap
            self.last_error = None
            log.info("serving champion version %s", version)
            if self._on_swap is not None:
                self._on_swap(served)
            return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="champion-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
