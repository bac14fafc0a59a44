"""Mastery tracking cost: online updates vs full replay, batch scoring throughput and memory.

On a simulated world (default 100k users; ``--days`` sets events per user):

* online, ``MasteryTracker`` over a SQLite file: single-event ``observe`` latency p50/p99
  (state load + one ``update`` + the practised topic's panel query + save), the same followed
  by ``topic_mastery`` (what an API call that returns fresh mastery costs), and batched
  ``observe_many`` throughput while bootstrapping ``--online-users`` users;
* the peer, "full replay": recompute every topic's mastery from the user's whole history
  with ``forward`` on each event (:func:`kt.mastery.reference.full_recompute`), side by side
  on the same events, reported as a latency ratio;
* batch, ``kt mastery score`` over the whole world in a child process: users/s, wall time and
  the child's own peak RSS (``VmHWM``, not ``ru_maxrss``, which Linux carries over from the parent).

The KT model is a DKT trained for five epochs on a 3k-user world of the same catalog (the cost
does not depend on how well it is trained); its mastery quality against the simulator's truth,
with the running-accuracy and BKT baselines, is reported on that world's test users. Writes bench/results/mastery.json and .md.
Run: ``nice .venv/bin/python -m bench.bench_mastery [--users 100000] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _world(out: Path, users: int, days: int, seed: int = 0):
    from kt.sim import generate_world, preset

    return generate_world(preset("small", n_users=users, n_items=20_000, days=days, seed=seed), out)


def _train(world: Path, home: Path, device: str):
    from kt.config import Settings
    from kt.data.datasets import load_world_dataset
    from kt.train.trainer import TrainConfig, train

    splits = load_world_dataset(Settings(home=home), world_dir=world)
    # batching="windows": the recipe bench/results/mastery.* was measured with (before "tokens" became the default)
    cfg = TrainConfig(model="dkt", model_params={"dim": 64, "hidden": 64}, max_epochs=5, device=device,
                      amp=False, batch_size=128, batching="windows", progress=False)  # fmt: skip
    return train(cfg, splits, checkpoint_dir=home / "ckpt").checkpoint_path


def _quality(world: Path, ckpt: Path, device: str) -> dict:
    import pandas as pd

    from kt.mastery import TopicCatalog
    from kt.mastery.quality import evaluate_quality
    from kt.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(ckpt, map_location=device)
    items = pd.read_parquet(world / "items.parquet", columns=["content_id", "topics"])
    topics = pd.read_parquet(world / "topics.parquet")["topic_id"].astype(str).tolist()
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    return evaluate_quality(loaded.model, cat, world, split_seed=0)


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def online(world: Path, ckpt: Path, work: Path, n_users: int, device: str) -> dict:
    import pandas as pd

    from kt.mastery import MasteryStateStore, MasteryTracker
    from kt.mastery.quality import load_interactions
    from kt.mastery.reference import full_recompute
    from kt.mastery.state import to_bytes
    from kt.models.checkpoint import load_checkpoint

    loaded = load_checkpoint(ckpt, map_location=device)
    items = pd.read_parquet(world / "items.parquet", columns=["content_id", "topics"])
    topics = pd.read_parquet(world / "topics.parquet")["topic_id"].astype(str).tolist()
    store = MasteryStateStore(f"sqlite:///{work / 'state.db'}")
    tracker = MasteryTracker(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, state_store=store,
                             model_version="bench", topics=topics)  # fmt: skip
    inter = load_interactions(world).rename(columns={"t": "timestamp"})
    counts = inter.groupby("user_id").size()
    users = counts[counts >= 2].index.to_numpy()[:n_users]
    inter = inter[inter["user_id"].isin(users)]
    last = inter.groupby("user_id").tail(1)
    history = inter.drop(index=last.index)

    t0 = time.perf_counter()
    tracker.observe_many(history)
    batch_s = time.perf_counter() - t0

    lat_observe, lat_observe_read, lat_replay = [], [], []
    cat = tracker.catalog
    by_user = {u: g for u, g in inter.groupby("user_id")}
    for r in last.itertuples():
        t = time.perf_counter()
        tracker.observe(r.user_id, r.content_id, r.outcome, r.timestamp, topic_id=r.topic_id)
        lat_observe.append(time.perf_counter() - t)
        t = time.perf_counter()
        tracker.topic_mastery(r.user_id)
        lat_observe_read.append(lat_observe[-1] + time.perf_counter() - t)
        # the peer: recompute from the whole history (held in memory, no database) on this event
        h = by_user[r.user_id]
        t = time.perf_counter()
        it, co, _ = cat.encode_frame(h["content_id"], h["topic_id"])
        full_recompute(loaded.model, cat, it, co, h["outcome"].to_numpy())
        lat_replay.append(time.perf_counter() - t)
    state_bytes = len(to_bytes(store.load(str(users[0])).state))
    store.close()
    scaling = compute_scaling(loaded.model, cat, inter)
    obs, obs_read, rep = _pct(lat_observe), _pct(lat_observe_read), _pct(lat_replay)
    return {
        "users": len(users), "topics": len(topics), "history_events": len(history),
        "mean_history_len": float(counts.loc[users].mean()),
        "observe_many_events_per_s": len(history) / batch_s, "observe_many_s": batch_s,
        "observe": obs, "observe_plus_topic_mastery": obs_read, "full_replay": rep,
        "replay_over_online_p50": rep["p50_ms"] / obs_read["p50_ms"],
        "replay_over_online_mean": rep["mean_ms"] / obs_read["mean_ms"],
        "state_bytes_per_user": state_bytes, "compute_by_history_length": scaling,
    }  # fmt: skip


def compute_scaling(model, cat, inter, lengths=(16, 64, 256, 1024), reps: int = 30) -> list[dict]:
    """Model compute only (no database, no DataFrame), per new event, at several history lengths:
    online = one ``update`` + every topic's panel query from the kept state; replay = ``forward``
    over the whole history + every topic's panel (``full_recompute``). Histories longer than a
    simulated user's are real interactions of several users laid end to end (a cost measure)."""
    import torch

    from kt.mastery.reference import full_recompute

    it_all, co_all, _ = cat.encode_frame(inter["content_id"], inter["topic_id"])
    r_all = np.array(inter["outcome"].to_numpy(), dtype=np.int64)
    out = []
    for n in [n for n in lengths if n <= len(r_all)]:
        it, co, r = it_all[:n], co_all[:n], r_all[:n]
        state = model.init_state(1)
        for j in range(n - 1):
            state = model.update(state, *(torch.as_tensor(a[j : j + 1], device=model.device) for a in (it, co, r)))
        t_on, t_rep = [], []
        for _ in range(reps):
            t = time.perf_counter()
            s2 = model.update(state, *(torch.as_tensor(a[n - 1 : n], device=model.device) for a in (it, co, r)))
            cat.mastery_all(model, s2, 1)
            t_on.append(time.perf_counter() - t)
            t = time.perf_counter()
            full_recompute(model, cat, it, co, r)
            t_rep.append(time.perf_counter() - t)
        on, rep = float(np.median(t_on) * 1e3), float(np.median(t_rep) * 1e3)
        out.append({"history": n, "online_ms": on, "replay_ms": rep, "ratio": rep / on})
    return out


# The child's own peak is VmHWM of /proc/self/status (its address space since exec): Linux
# carries ru_maxrss across fork and exec, so a child of this large process would report at least
# the parent's peak (the 5,000-user run used to print exactly the parent's 976 MB).
CHILD = r"""
import json, resource, sys
from kt.cli import main
rc = main(sys.argv[1:])
try:
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no procfs: an upper bound
print(json.dumps({"peak_rss_mb": hwm / 1024}))
sys.exit(rc)
"""


def batch(world: Path, ckpt: Path, work: Path, device: str, threads: int, chunk_users: int) -> dict:
    """``kt mastery score`` in a fresh child process (its own peak RSS)."""
    out = work / f"mastery-{chunk_users}.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MLFLOW_DISABLE_TELEMETRY": "true", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-c", CHILD, "mastery", "score", "--world", str(world), "--checkpoint", str(ckpt),
           "--out", str(out), "--device", device, "--chunk-users", str(chunk_users)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    lines = proc.stdout.strip().splitlines()
    summary, peak_mb = json.loads(lines[-2]), json.loads(lines[-1])["peak_rss_mb"]
    return {
        "users": summary["n_users"], "interactions": summary["n_interactions"], "rows": summary["n_rows"],
        "buckets": summary["n_buckets"], "chunk_users": chunk_users, "scoring_s": summary["seconds"],
        "wall_s_with_startup": wall, "users_per_s": summary["n_users"] / summary["seconds"],
        "interactions_per_s": summary["n_interactions"] / summary["seconds"], "peak_rss_mb": peak_mb,
        "output_mb": out.stat().st_size / 2**20,
    }  # fmt: skip


def markdown(r: dict) -> str:
    from kt.mastery.quality import format_report

    on, b = r["online"], r["batch"]
    return "\n".join([
        "### Mastery tracking (`bench/bench_mastery.py`)",
        "",
        f"World: {r['world']['n_users']:,} users, {r['world']['n_events']:,} events ({r['world']['days']} simulated days), "
        f"{on['topics']} topics; model {r['model']}; device {r['device']}, {r['threads']} torch thread(s); {r['machine']}.",
        "",
        "| online, per event (SQLite state store) | p50 (ms) | p99 (ms) | mean (ms) |",
        "|---|---|---|---|",
        f"| `observe` (load state, update, panel query, save) | {on['observe']['p50_ms']:.2f} | {on['observe']['p99_ms']:.2f} | {on['observe']['mean_ms']:.2f} |",
        f"| `observe` + `topic_mastery` (fresh mastery of all topics) | {on['observe_plus_topic_mastery']['p50_ms']:.2f} | {on['observe_plus_topic_mastery']['p99_ms']:.2f} | {on['observe_plus_topic_mastery']['mean_ms']:.2f} |",
        f"| peer: full replay of the history with `forward` (in memory, no DB) | {on['full_replay']['p50_ms']:.2f} | {on['full_replay']['p99_ms']:.2f} | {on['full_replay']['mean_ms']:.2f} |",
        "",
        f"End to end, full replay / (observe + topic_mastery): {on['replay_over_online_p50']:.1f}x at p50 and "
        f"{on['replay_over_online_mean']:.1f}x in mean, on the last event of {on['users']:,} users with a mean history "
        f"of {on['mean_history_len']:.1f} events: at such short histories the database round trips and the "
        "DataFrame dominate both; the compute table below shows how the two diverge as histories grow.",
        "",
        "| throughput | value |",
        "|---|---|",
        f"| batched `observe_many` ({on['history_events']:,} events, {on['users']:,} users, with state load/save) | {on['observe_many_events_per_s']:,.0f} events/s |",
        f"| batch scoring `kt mastery score` ({b['users']:,} users, {b['interactions']:,} interactions, {b['buckets']} chunks) | {b['users_per_s']:,.0f} users/s ({b['scoring_s']:.1f} s) |",
        f"| batch scoring peak RSS (child process), {b['chunk_users']:,} users per chunk | {b['peak_rss_mb']:.0f} MB |",
        f"| same with {r['batch_small_chunks']['chunk_users']:,} users per chunk ({r['batch_small_chunks']['buckets']} chunks) | {r['batch_small_chunks']['peak_rss_mb']:.0f} MB, {r['batch_small_chunks']['users_per_s']:,.0f} users/s |",
        f"| online state per user (DKT h, c; serialized blob) | {on['state_bytes_per_user']:,} bytes |",
        "",
        "Model compute per new event (median, no database): online `update` + all-topic panel query vs full replay.",
        "",
        "| history length | online (ms) | full replay (ms) | replay / online |",
        "|---|---|---|---|",
        *[f"| {c['history']:,} | {c['online_ms']:.2f} | {c['replay_ms']:.2f} | {c['ratio']:.1f}x |" for c in on["compute_by_history_length"]],
        "",
        f"Load average at start: {r['load_average']}. The box is shared; p99 reflects other processes.",
        "",
        "Quality against the simulator's true mastery (3k-user world, its test users; `kt.mastery.quality`):",
        "",
        *format_report(r["quality"]).splitlines(),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000, help="simulated users in the world")
    ap.add_argument("--days", type=int, default=14, help="simulated days (events per user grow with it)")
    ap.add_argument("--online-users", type=int, default=2_000, help="users bootstrapped and timed online")
    ap.add_argument("--chunk-users", type=int, default=20_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=RESULTS / "mastery.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-mastery-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        summary = _world(tmp / "world", args.users, args.days)
        gen_s = time.perf_counter() - t0
        _world(tmp / "train_world", 3_000, args.days, seed=1)
        ckpt = _train(tmp / "train_world", tmp / "home", args.device)
        quality = _quality(tmp / "train_world", ckpt, args.device)
        on = online(tmp / "world", ckpt, tmp, args.online_users, args.device)
        b = batch(tmp / "world", ckpt, tmp, args.device, args.threads, args.chunk_users)
        b_small = batch(tmp / "world", ckpt, tmp, args.device, args.threads, max(1, args.chunk_users // 4))
    result = {
        "world": {"n_users": summary.n_users, "n_events": summary.n_events, "days": args.days, "generate_s": gen_s},
        "model": "dkt (dim 64, hidden 64)", "device": args.device, "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__}",
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "online": on, "batch": b, "batch_small_chunks": b_small, "quality": quality, "online_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    md = markdown(result)
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
