"""Online mastery tracking: one event updates a user's mastery without replaying history.

Per user the tracker keeps the model's compact online state (``KTModel.init_state`` /
``update`` / ``query``: DKT's LSTM state, the window of attention models) plus per-topic
evidence (observations, last practice, the mastery trail behind ``progress``, the calibration
offset), persisted in a :class:`MasteryStateStore`. Each ``observe`` loads the state, reads the
model's prediction for the item (for the offset), applies ``update`` once and queries the
practised topic's representative panel, then saves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kt.data.sequences import Vocab
from kt.data.times import seconds_to_timestamps, series_to_seconds, to_seconds
from kt.mastery import state as st
from kt.mastery.catalog import TopicCatalog
from kt.mastery.config import MasteryConfig
from kt.mastery.replay import Padded, mastery_of_groups, replay
from kt.mastery.stages import confidence, stage_codes, stage_names
from kt.mastery.store import MasteryStateStore, StateMeta, StoredState
from kt.models.base import KTModel, KTState

TOPIC_MASTERY_COLUMNS = ["topic_id", "mastery", "confidence", "n_obs", "stage", "last_practiced", "progress"]


class StaleStateError(RuntimeError):
    """The stored state was built by another model version; call ``rebuild``."""


class MasteryTracker:
    """Per-user topic mastery from a KT model, updated online and persisted.

    model, item_vocab, concept_vocab: as in ``LoadedModel`` (concept tokens are topic ids).
    catalog: a built :class:`TopicCatalog`, or ``item_topics`` (an ``items`` table or a
      content_id -> topics mapping) from which one is built.
    state_store: persistence (default: an in-memory SQLite store).
    model_version: stamped on every saved state; states of another version are stale.
    """

    def __init__(
        self,
        model: KTModel,
        item_vocab: Vocab | None,
        concept_vocab: Vocab,
        catalog: TopicCatalog | pd.DataFrame | Mapping[str, object],
        config: MasteryConfig | None = None,
        state_store: MasteryStateStore | None = None,
        model_version: str = "unversioned",
        topics: Sequence[str] | None = None,
    ) -> None:
        if concept_vocab is None:
            raise ValueError("MasteryTracker needs the model's concept vocabulary (concept tokens are topic ids)")
        self.model = model.eval()
        self.config = config or MasteryConfig()
        if not isinstance(catalog, TopicCatalog):
            catalog = TopicCatalog.build(model, item_vocab, concept_vocab, catalog, topics, self.config.panel_size)
        self.catalog = catalog
        self.store = state_store or MasteryStateStore()
        self.model_version = str(model_version)
        self.dims = st.batch_dims(model)

    @classmethod
    def from_loaded(cls, loaded, items: pd.DataFrame, **kwargs) -> MasteryTracker:
        """From a ``kt.models.checkpoint.LoadedModel``; the version defaults to the checkpoint path."""
        kwargs.setdefault("model_version", str(loaded.meta.get("model_version") or loaded.meta.get("path", "unversioned")))
        return cls(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, **kwargs)

    # ------------------------------------------------------------------ state
    def _fresh(self) -> StoredState:
        return StoredState(self.model.init_state(1), StateMeta(self.model_version))

    def _load(self, user_ids: Sequence[str], allow_stale: bool = False) -> dict[str, StoredState]:
        found = self.store.load_many(user_ids)
        out = {}
        for u in user_ids:
            rec = found.get(u)
            if rec is not None and rec.meta.model_version != self.model_version and not allow_stale:
                raise StaleStateError(
                    f"state of user {u!r} was built by model version {rec.meta.model_version!r}, "
                    f"serving {self.model_version!r}: call rebuild(user_id, interactions)"
                )
            if rec is not None:
                rec.state = {k: v.to(self.model.device) for k, v in rec.state.items()}
            out[u] = rec if rec is not None else self._fresh()
        return out

    # ---------------------------------------------------------------- ingest
    def observe(self, user_id: str, content_id: str, outcome: int, timestamp, topic_id: str | None = None) -> None:
        """Absorb one interaction (events of a user should arrive in time order: the model takes
        them in arrival order; a late one never moves ``last_practiced`` back)."""
        if outcome not in (0, 1):
            raise ValueError(f"outcome must be 0 or 1, got {outcome!r}")
        t = np.nan if timestamp is None or pd.isna(timestamp) else to_seconds(timestamp)
        if not np.isfinite(t):
            raise ValueError(f"timestamp missing or not a time: {timestamp!r}")
        self._apply({str(user_id): ([str(content_id)], [topic_id], [int(outcome)], [t])})

    def observe_many(self, interactions: pd.DataFrame) -> None:
        """Absorb a batch: columns user_id, content_id, outcome, timestamp, optional topic_id.

        Each user's rows are applied in timestamp order (ties keep input order); users are
        processed together in one batched replay.
        """
        missing = {"user_id", "content_id", "outcome", "timestamp"} - set(interactions.columns)
        if missing:
            raise ValueError(f"interactions lack column(s) {', '.join(sorted(missing))}")
        if interactions.empty:
            return
        self._apply(self._per_user(interactions))

    @staticmethod
    def _per_user(interactions: pd.DataFrame) -> dict[str, tuple]:
        """user -> (content ids, topic ids, outcomes, unix seconds) in time order, after checking
        every row: a NaN outcome or a missing time would otherwise be cast or saved as garbage."""
        outcome = pd.to_numeric(interactions["outcome"], errors="coerce")
        bad = ~outcome.isin([0, 1]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"interactions row {i}: outcome must be 0 or 1, got {interactions['outcome'].iloc[i]!r} "
                             f"({int(bad.sum())} such rows)")
        t = series_to_seconds(interactions["timestamp"])
        if not np.isfinite(t).all():
            i = int(np.flatnonzero(~np.isfinite(t))[0])
            raise ValueError(f"interactions row {i}: timestamp missing or not a time, got "
                             f"{interactions['timestamp'].iloc[i]!r}")
        df = interactions.assign(outcome=outcome, _t=t, _i=np.arange(len(interactions)))
        df = df.sort_values(["user_id", "_t", "_i"], kind="stable")
        has_topic = "topic_id" in df.columns
        per_user = {}
        for uid, g in df.groupby("user_id", sort=False):
            per_user[str(uid)] = (
                g["content_id"].astype(str).tolist(),
                g["topic_id"].tolist() if has_topic else [None] * len(g),
                g["outcome"].astype(int).tolist(),
                g["_t"].tolist(),
            )
        return per_user

    def _apply(self, per_user: dict[str, tuple], base: dict[str, StoredState] | None = None) -> None:
        users = list(per_user)
        recs = base if base is not None else self._load(users)
        rows, ok_users = [], []
        for u in users:
            cids, tids, outs, times = per_user[u]
            items, concepts, pos = self.catalog.encode(cids, tids)
            rows.append((items, concepts, np.asarray(outs, dtype=np.int64).clip(0, 1), pos))
            ok_users.append(u)
        # users whose states share a shape replay together
        by_sig: dict[tuple, list[int]] = {}
        for i, u in enumerate(users):
            by_sig.setdefault(st.signature(recs[u].state, self.dims), []).append(i)
        saves = []
        calibrate = self.config.offset_prior_sd > 0
        for idx in by_sig.values():
            state = st.stack([recs[users[i]].state for i in idx], self.dims)
            data = Padded.from_lists([rows[i] for i in idx])
            res = replay(self.model, self.catalog, state, self.dims, data, track_predicted=calibrate)
            final: dict[int, KTState] = {}
            for pos, s in res.groups:
                for j, one in zip(pos, st.split(s, self.dims), strict=True):
                    final[int(j)] = one
            for j, i in enumerate(idx):
                u = users[i]
                meta = recs[u].meta
                cids, _, outs, times = per_user[u]
                topics = data.topics[j, : data.lengths[j]]
                if calibrate:  # the prediction as the planner reads it: spread by difficulty when the
                    # model is flat across a topic's items (kt.planner.calibration), its own otherwise
                    predicted = res.predicted[j, : data.lengths[j]]
                    if not self.catalog.item_aware:
                        predicted = predicted + self.config.offset_difficulty_slope * self.catalog.difficulty_gap(cids, topics)
                for t_pos, k in enumerate(topics):
                    if k < 0:
                        continue
                    tid = self.catalog.topic_ids[k]
                    meta.n_obs[tid] = meta.n_obs.get(tid, 0) + 1
                    # the latest practice, not the latest arrival: a late event must not age the topic
                    meta.last_practiced[tid] = max(meta.last_practiced.get(tid, -math.inf), float(times[t_pos]))
                    meta.practiced_mastery[tid] = float(res.practiced[j, t_pos])
                    trail = meta.trail.setdefault(tid, [])
                    trail.append(float(res.practiced[j, t_pos]))
                    del trail[: -(self.config.progress_window + 1)]
                    if calibrate and np.isfinite(predicted[t_pos]):
                        meta.offset[tid] = update_offset(meta.offset.get(tid), float(predicted[t_pos]), int(outs[t_pos]),
                                                         self.config.offset_prior_sd, self.config.offset_drift)
                meta.n_events += int(data.lengths[j])
                if times:
                    meta.last_event_at = max(meta.last_event_at or -math.inf, float(max(times)))
                meta.model_version = self.model_version
                saves.append((u, final[j], meta))
        self.store.save_many(saves)

    def rebuild(self, user_id: str, interactions: pd.DataFrame) -> None:
        """Rebuild a user's state from their full interaction history (e.g. after a new champion).
        The history is checked and replayed before the stored state is replaced: a bad history
        raises and leaves the old state (and its StaleStateError) in place."""
        df = interactions
        if "user_id" in df.columns:
            df = df[df["user_id"].astype(str) == str(user_id)]
        else:
            df = df.assign(user_id=str(user_id))
        missing = {"content_id", "outcome", "timestamp"} - set(df.columns)
        if missing:
            raise ValueError(f"interactions lack column(s) {', '.join(sorted(missing))}")
        if len(df):
            per_user = self._per_user(df)
            self._apply(per_user, base={u: self._fresh() for u in per_user})  # saves over the old row
        else:
            fresh = self._fresh()
            self.store.save(str(user_id), fresh.state, fresh.meta)

    def reset(self, user_id: str) -> None:
        self.store.delete(str(user_id))

    def users(self) -> list[str]:
        return self.store.users()

    def stale_users(self) -> list[str]:
        """Users whose stored state was built by another model version."""
        return self.store.users(self.model_version, stale=True)

    # ----------------------------------------------------------------- read
    def topic_mastery(self, user_id: str, now=None) -> pd.DataFrame:
        """One row per catalog topic: topic_id, mastery, confidence, n_obs, stage, last_practiced,
        progress (NaN until the topic has ``progress_window + 1`` practices).

        ``now`` defaults to the time of the user's latest interaction (reproducible); pass the
        wall clock to let confidence and review stages age with real time.
        """
        return self.topic_mastery_of(self.load_state(user_id), now)

    def load_state(self, user_id: str) -> StoredState:
        """The user's stored state (a fresh one for a user never seen): read it once and pass it
        to :meth:`topic_mastery_of` and :meth:`predict_success_of` to answer several questions
        about one user with one read."""
        return self._load([str(user_id)])[str(user_id)]

    def topic_mastery_of(self, rec: StoredState, now=None) -> pd.DataFrame:
        """:meth:`topic_mastery` of a state from :meth:`load_state`."""
        mastery = mastery_of_groups(self.model, self.catalog, [(np.array([0]), rec.state)], self.dims, 1)[0]
        return self._frame(mastery, rec.meta, now)

    def _frame(self, mastery: np.ndarray, meta: StateMeta, now) -> pd.DataFrame:
        topics = self.catalog.topic_ids
        n_obs = np.array([meta.n_obs.get(t, 0) for t in topics], dtype=np.int64)
        last = np.array([meta.last_practiced.get(t, np.nan) for t in topics], dtype=np.float64)
        pm = np.array([meta.practiced_mastery.get(t, np.nan) for t in topics], dtype=np.float64)
        now_s = to_seconds(now) if now is not None else (meta.last_event_at if meta.last_event_at is not None else np.nan)
        since = now_s - last
        frame = build_frame(topics, mastery, n_obs, last, pm, since, self.config)
        w = self.config.progress_window
        trails = [meta.trail.get(t, ()) for t in topics]
        frame["progress"] = [tr[-1] - tr[-1 - w] if len(tr) > w else np.nan for tr in trails]
        return frame

    @torch.no_grad()
    def predict_success(self, user_id: str, content_ids: Sequence[str]) -> np.ndarray:
        """P(success) (Q,) on each content item via ``model.query``; new items are scored through
        their primary topic with item index 0; items with no known topic give NaN."""
        return self.predict_success_of(self.load_state(user_id), content_ids)

    @torch.no_grad()
    def predict_success_of(self, rec: StoredState, content_ids: Sequence[str]) -> np.ndarray:
        """:meth:`predict_success` from a state from :meth:`load_state`. Each logit is shifted by the
        user's calibration offset on the item's primary topic (``MasteryConfig.offset_prior_sd``)."""
        known, items, concepts = self.catalog.encode_items([str(c) for c in content_ids])
        out = np.full(len(known), np.nan)
        if len(items):
            dev = self.model.device
            logits = self.model.query(rec.state, torch.as_tensor(items, device=dev).view(1, -1),
                                      torch.as_tensor(concepts, device=dev).view(1, -1))
            logits = logits.float().view(-1).cpu().numpy().astype(np.float64)
            if rec.meta.offset and self.config.offset_prior_sd > 0:
                shift = np.zeros(len(self.catalog.concept_vocab.tokens) + 1)
                for tid, (delta, _) in rec.meta.offset.items():
                    k = self.catalog.topic_index.get(tid)
                    if k is not None and self.catalog.concept_idx[k] > 0:
                        shift[self.catalog.concept_idx[k]] = delta
                logits = logits + shift[concepts]
            out[known] = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, without overflow
        return out


def update_offset(prior: list[float] | None, logit: float, outcome: int, prior_sd: float, drift: float,
                  limit: float = 4.0) -> list[float]:
    """One outcome's update of a topic's calibration offset, ``[mean, precision]`` in logits.

    The offset starts at N(0, prior_sd^2) and drifts as a random walk (variance ``drift`` per
    practice), so recent outcomes weigh most and it follows a learner who changes. Each outcome is
    absorbed by the Laplace approximation of the posterior: the MAP offset given the predicted
    prior and this outcome (Newton steps: a surprise after many confident predictions moves it by
    at most about 1 / precision, not by (y - p) / p(1 - p)), with the precision read at that MAP.
    An Elo rating with an uncertainty-driven step (Pelanek 2016). The mean is kept within
    +-``limit`` logits: a history of confident predictions cannot push it further, nor overflow."""
    mean0, precision = prior if prior is not None else (0.0, 1.0 / prior_sd**2)
    precision = 1.0 / (1.0 / precision + drift)
    delta = mean0
    for _ in range(4):  # Newton on  precision (delta - mean0) = outcome - sigmoid(logit + delta)
        p = _sigmoid(logit + delta)
        grad = outcome - p - precision * (delta - mean0)
        delta = min(max(delta + grad / (precision + p * (1.0 - p)), -limit), limit)
    p = _sigmoid(logit + delta)
    return [delta, precision + p * (1.0 - p)]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def build_frame(topics, mastery, n_obs, last, pm, since, cfg: MasteryConfig) -> pd.DataFrame:
    """The ``topic_mastery`` table from per-topic arrays (shared with batch scoring)."""
    codes = stage_codes(mastery, n_obs, since, pm, cfg)
    conf = confidence(n_obs, since, cfg)
    return pd.DataFrame(
        {
            "topic_id": list(topics),
            "mastery": mastery,
            "confidence": np.where(np.isnan(mastery), 0.0, conf),
            "n_obs": n_obs,
            "stage": stage_names(codes),
            "last_practiced": seconds_to_timestamps(last),
        }
    )


