"""How good are mastery estimates? Judged against the simulator's true mastery.

For each evaluated user, at the as-of time ``now`` (the latest event in the world):

* ``spearman``: Spearman rank correlation between estimated and true mastery over the topics
  the user practised (>= 3 topics with varying values), mean over users; ``spearman_all``:
  the same over every topic.
* ``mastery_mae``: mean |estimate - truth| over practised (user, topic) cells.
* ``success``: AUC / ECE (Guo et al. 2017, :mod:`kt.train.metrics`) of the method's predicted
  success before each interaction against the observed outcome.
* ``stage_accuracy``: share of practised cells whose stage (from the estimate) equals the
  true stage, i.e. :func:`kt.mastery.stages.stage_codes` applied to the true mastery now and
  at the last practice with the same thresholds, evidence counts and times.

Methods: the KT model through :func:`kt.mastery.batch.score_interactions`; per-topic running
accuracy with a Beta prior (``prior_weight`` pseudo-observations at the topic's mean accuracy
among training users); per-topic BKT (:mod:`kt.mastery.bkt`) fit on training users.
Users are split like :func:`kt.data.datasets.split_users` (same seed), and only test users are
evaluated, so the model and the baselines are judged on users they were not fit on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
from scipy.stats import spearmanr

from kt.mastery.batch import iter_interactions, score_interactions, world_items
from kt.mastery.bkt import BKTBaseline, bkt_trace
from kt.mastery.catalog import TopicCatalog
from kt.mastery.config import MasteryConfig
from kt.mastery.stages import stage_codes
from kt.models.base import KTModel


def load_interactions(world_dir: str | Path, rule=None) -> pd.DataFrame:
    """All interactions of a world (user_id, content_id, topic_id, t, outcome), time-ordered."""
    parts = list(iter_interactions(Path(world_dir), world_items(world_dir), rule))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["user_id", "content_id", "topic_id", "t", "outcome"])
    df = df.assign(_i=np.arange(len(df))).sort_values(["user_id", "t", "_i"], kind="stable").drop(columns="_i")
    return df.reset_index(drop=True)


def true_state(world_dir: str | Path, user_ids: np.ndarray, topic_ids: list[str], now_s: float) -> np.ndarray:
    """(U, K) true mastery at unix time ``now_s`` from the simulator's final learner state."""
    from kt.sim import LearnerEnv

    env = LearnerEnv.from_world(world_dir)
    rows = np.array([env.user_index(u) for u in user_ids], dtype=np.int64)
    t = env.seconds(pd.Timestamp(now_s, unit="s", tz="UTC"))
    m = env.state.mastery_at(rows, t, env.config)  # (U, K_env)
    cols = [env.topic_ids.index(k) if k in env._topic_index else -1 for k in topic_ids]
    return np.where(np.array(cols) >= 0, m[:, np.maximum(cols, 0)], np.nan)


def true_at_practice(world_dir: str | Path, cells: pd.DataFrame) -> np.ndarray:
    """True mastery right after each cell's last practice (``true_mastery/`` rows at that time)."""
    tm = pads.dataset(Path(world_dir) / "true_mastery", format="parquet").to_table(
        filter=pads.field("user_id").isin(pd.unique(cells["user_id"]).tolist())
    ).to_pandas()
    tm["t"] = (tm["timestamp"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    left = cells[["user_id", "topic_id", "last"]].assign(_r=np.arange(len(cells))).dropna(subset=["last"])
    left = left.sort_values("last")
    merged = pd.merge_asof(
        left, tm.sort_values("t")[["user_id", "topic_id", "t", "mastery"]], left_on="last", right_on="t",
        by=["user_id", "topic_id"], direction="backward", tolerance=1.0,
    )  # fmt: skip
    out = np.full(len(cells), np.nan)
    out[merged["_r"].to_numpy()] = merged["mastery"].to_numpy()
    return out


def _spearman_per_user(est: np.ndarray, true: np.ndarray, mask: np.ndarray, min_topics: int = 3) -> float:
    vals = []
    for e, t, m in zip(est, true, mask, strict=True):
        ok = m & ~np.isnan(e) & ~np.isnan(t)
        if ok.sum() < min_topics or np.ptp(e[ok]) == 0 or np.ptp(t[ok]) == 0:
            continue
        vals.append(spearmanr(e[ok], t[ok]).statistic)
    return float(np.mean(vals)) if vals else float("nan")


def _running_accuracy(inter: pd.DataFrame, prior: pd.Series, weight: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Per (user, topic): (correct + w p) / (n + w); and the same *before* each interaction."""
    p = inter["topic_id"].map(prior).fillna(prior.mean()).to_numpy()
    g = inter.groupby(["user_id", "topic_id"], sort=False)["outcome"]
    n_before = g.cumcount().to_numpy()
    c_before = (g.cumsum() - inter["outcome"]).to_numpy()
    pred = (c_before + weight * p) / (n_before + weight)
    agg = inter.groupby(["user_id", "topic_id"], sort=False)["outcome"].agg(["sum", "count"]).reset_index()
    pk = agg["topic_id"].map(prior).fillna(prior.mean()).to_numpy()
    agg["mastery"] = (agg["sum"] + weight * pk) / (agg["count"] + weight)
    return agg[["user_id", "topic_id", "mastery"]], pred


def _grid(df: pd.DataFrame, users: np.ndarray, topics: list[str], fill: np.ndarray) -> np.ndarray:
    out = np.tile(fill, (len(users), 1)).astype(np.float64)
    ui = pd.Index(users).get_indexer(df["user_id"])
    ti = pd.Index(topics).get_indexer(df["topic_id"])
    ok = (ui >= 0) & (ti >= 0)
    out[ui[ok], ti[ok]] = df["mastery"].to_numpy()[ok]
    return out


def _success(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from kt.train.metrics import binary_metrics

    m = binary_metrics(y, p)
    return {"auc": m["auc"], "ece": m["ece"], "rmse": m["rmse"], "n": m["n"]}


def evaluate_quality(
    model: KTModel,
    catalog: TopicCatalog,
    world_dir: str | Path,
    config: MasteryConfig | None = None,
    split_seed: int | None = 0,
    max_users: int | None = None,
    prior_weight: float = 2.0,
    bkt: bool = True,
    rule=None,
    interactions: pd.DataFrame | None = None,
) -> dict:
    """Quality report (dict) of the KT model and the baselines on the world's test users.

    split_seed: seed of :func:`kt.data.datasets.split_users` (None: evaluate every user and fit
    the baselines on all of them). max_users: cap on evaluated users (first by id).
    """
    from kt.data.datasets import split_users

    config = config or MasteryConfig()
    inter = interactions if interactions is not None else load_interactions(world_dir, rule)
    all_users = np.unique(inter["user_id"].astype(str).to_numpy())
    if split_seed is None:
        fit_users = eval_users = all_users
    else:
        tr, _, te = split_users(all_users, split_seed)
        fit_users, eval_users = all_users[tr], all_users[te]
    eval_users = np.sort(eval_users)[:max_users] if max_users else np.sort(eval_users)
    now_s = float(inter["t"].max())
    fit = inter[inter["user_id"].isin(fit_users)]
    ev = inter[inter["user_id"].isin(eval_users)].reset_index(drop=True)
    topics = catalog.topic_ids

    # --- KT model
    scored = score_interactions(model, catalog, ev, config, now_s)
    users = np.sort(scored["user_id"].unique())
    k = len(topics)
    # rows in (user, catalog topic) order, as the truth is read: the scorer sorts topics by id,
    # and a topics table need not be sorted
    grid = pd.MultiIndex.from_product([users, list(topics)], names=["user_id", "topic_id"])
    scored = scored.set_index(["user_id", "topic_id"]).reindex(grid).reset_index()
    est = scored["mastery"].to_numpy().reshape(len(users), k)
    n_obs = scored["n_obs"].to_numpy().reshape(len(users), k)
    last = ((scored["last_practiced"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy().reshape(len(users), k)
    model_codes = pd.Categorical(scored["stage"], categories=["new", "learning", "needs_review", "mastered"]).codes.reshape(len(users), k)

    # --- truth
    true_now = true_state(world_dir, users, topics, now_s)
    cells = pd.DataFrame({"user_id": np.repeat(users, k), "topic_id": np.tile(topics, len(users)), "last": last.reshape(-1)})
    true_pm = true_at_practice(world_dir, cells).reshape(len(users), k)
    since = now_s - last
    true_codes = stage_codes(true_now, n_obs, since, true_pm, config)
    practiced = n_obs > 0

    def judge(estimate: np.ndarray, codes: np.ndarray, y: np.ndarray, p: np.ndarray) -> dict:
        return {
            "spearman": _spearman_per_user(estimate, true_now, practiced),
            "spearman_all": _spearman_per_user(estimate, true_now, np.ones_like(practiced)),
            "mastery_mae": float(np.nanmean(np.abs(estimate - true_now)[practiced])),
            "stage_accuracy": float((codes == true_codes)[practiced].mean()),
            "success": _success(y, p),
        }

    report: dict = {
        "n_users": len(users), "n_topics": k, "n_interactions": len(ev), "as_of": str(pd.Timestamp(now_s, unit="s", tz="UTC")),
        "stage_thresholds": config.to_dict(),
        "true_stage_distribution": _dist(true_codes[practiced]),
    }  # fmt: skip
    y_model, p_model = _model_success(model, catalog, ev)
    report["kt_model"] = judge(est, model_codes, y_model, p_model) | {"model": model.name}

    # --- running accuracy with a prior
    prior = fit.groupby("topic_id")["outcome"].mean()
    fill = np.array([prior.get(t, prior.mean()) for t in topics])
    ra, ra_pred = _running_accuracy(ev, prior, prior_weight)
    ra_m = _grid(ra, users, topics, fill)
    ra_codes = stage_codes(ra_m, n_obs, since, np.where(practiced, ra_m, np.nan), config)
    report["running_accuracy"] = judge(ra_m, ra_codes, ev["outcome"].to_numpy(), ra_pred) | {"prior_weight": prior_weight}

    # --- BKT
    if bkt:
        b = BKTBaseline().fit(fit)
        bkt_known = b.mastery(ev)
        fill_b = np.array([b.prior(t) for t in topics])
        bk_m = _grid(bkt_known, users, topics, fill_b)
        # BKT's mastery is P(known); its success prediction adds guess/slip
        preds = np.empty(len(ev))
        for _, g in ev.groupby(["user_id", "topic_id"], sort=False):
            p = b.params.get(str(g["topic_id"].iloc[0]))
            preds[g.index.to_numpy()] = bkt_trace(g["outcome"].to_numpy(), p)[0] if p else np.nan
        bk_codes = stage_codes(bk_m, n_obs, since, np.where(practiced, bk_m, np.nan), config)
        ok = ~np.isnan(preds)
        report["bkt"] = judge(bk_m, bk_codes, ev["outcome"].to_numpy()[ok], preds[ok])
    return report


def _dist(codes: np.ndarray) -> dict[str, float]:
    names = ["new", "learning", "needs_review", "mastered"]
    return {n: float((codes == i).mean()) if codes.size else 0.0 for i, n in enumerate(names)}


def _model_success(model: KTModel, catalog: TopicCatalog, ev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's next-interaction predictions on the evaluated users (pyKT protocol)."""
    from kt.data.sequences import KTSequences
    from kt.train.evaluate import predict

    items, concepts, _ = catalog.encode_frame(ev["content_id"], ev["topic_id"])
    users = ev["user_id"].astype(str).to_numpy()
    uniq, starts = np.unique(users, return_index=True)  # ev is sorted by user then time
    offsets = np.append(starts, len(users)).astype(np.int64)
    seqs = KTSequences(
        offsets=offsets, items=items, concepts=concepts, responses=ev["outcome"].to_numpy(np.int8),
        user_ids=uniq.astype(object), num_items=int(items.max(initial=0)), num_concepts=int(concepts.max(initial=0)),
    )  # fmt: skip
    return predict(model, seqs, amp=False)


def format_report(report: dict) -> str:
    """A small Markdown table of the methods side by side."""
    lines = [
        f"users {report['n_users']}, topics {report['n_topics']}, interactions {report['n_interactions']}, as of {report['as_of']}",
        "",
        "| method | spearman (practised) | spearman (all topics) | mastery MAE | stage acc | success AUC | success ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("kt_model", "running_accuracy", "bkt"):
        r = report.get(name)
        if r is None:
            continue
        label = f"KT ({r['model']})" if name == "kt_model" else name.replace("_", " ")
        lines.append(
            f"| {label} | {r['spearman']:.3f} | {r['spearman_all']:.3f} | {r['mastery_mae']:.3f} | "
            f"{r['stage_accuracy']:.3f} | {r['success']['auc']:.3f} | {r['success']['ece']:.3f} |"
        )
    return "\n".join(lines)
