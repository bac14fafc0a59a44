"""PUT/POST /v1/items and /v1/folders: add or update catalog items and folders.

Rows are upserted by key in the store, with an entry per item or new folder link in its catalog
change log, in one transaction committed before the response. This process then replays the
log into its planner (:meth:`kt.api.services.Services.sync_catalog`): new items join the
catalog and topic index, edited ones are changed in place, and folder contents join the
item-folder graph, so a new item is recommendable from the next request (cold start through
the topic index, before anyone has highlighted or filed it). Other worker processes replay
the same log before their next learning path.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException

from kt.api.deps import get_services
from kt.api.schemas import FolderBatch, ItemBatch, ItemError, UpsertResponse
from kt.api.services import Services

router = APIRouter(tags=["catalog"])


def _check_size(n: int, services: Services) -> None:
    if n > services.config.max_catalog_batch:
        raise HTTPException(status_code=422, detail=f"batch of {n} rows exceeds the limit of {services.config.max_catalog_batch}")


def _unknown_topic_errors(batch: ItemBatch, services: Services) -> list[ItemError]:
    wanted = {t for it in batch.items for t in it.topics}
    known = services.store.existing_ids("topics", wanted)
    errors = []
    for i, it in enumerate(batch.items):
        missing = [t for t in it.topics if t not in known]
        if missing:
            errors.append(ItemError(index=i, field="topics", reason=f"unknown topic id(s): {', '.join(missing)}"))
    return errors


def upsert_items(batch: ItemBatch, services: Services = Depends(get_services)) -> UpsertResponse:
    _check_size(len(batch.items), services)
    if not batch.items:
        return UpsertResponse(upserted=0, new=0)
    errors = _unknown_topic_errors(batch, services)
    if errors:
        # an item must sit on known topics to be placed in the learning graph; nothing is written
        raise HTTPException(status_code=422, detail={"message": "items reference unknown topics",
                                                     "errors": [e.model_dump() for e in errors]})
    now = datetime.now(UTC)
    ids = list(dict.fromkeys(it.content_id for it in batch.items))
    stored = {r["content_id"]: r for r in services.store.get_rows("items", ids)}
    rows = pd.DataFrame(
        [{**it.model_dump(exclude={"topics", "created_at"}), "topics": "|".join(it.topics),
          # an edit that leaves created_at out keeps the stored one (it orders fresh items)
          "created_at": it.created_at or (stored[it.content_id]["created_at"] if it.content_id in stored else now)}
         for it in batch.items]
    ).drop_duplicates("content_id", keep="last")
    # only new or edited items are written and logged: re-putting an item as it is changes
    # nothing any worker holds, so no cached learning path expires for it. Not writing it also
    # keeps a concurrent edit of the same item (logged, so replayed everywhere) from being
    # overwritten by the stale unlogged copy.
    changed = rows[[c not in stored or _edited(stored[c], rec)
                    for c, rec in zip(rows["content_id"], rows.to_dict("records"), strict=True)]]
    if len(changed):
        services.store.upsert("items", changed, changes=[("item", c, None) for c in changed["content_id"]])
        services.sync_catalog()  # this process's planner and tracker, before the response
        services.prune_catalog_log()
    return UpsertResponse(upserted=len(rows), new=int((~rows["content_id"].isin(stored)).sum()))


def _edited(stored: dict, new: dict) -> bool:
    """Whether an upserted item differs from its stored row in anything the planner reads."""
    if any(str(stored[n]) != str(new[n]) for n in ("title", "url", "language", "topics", "kind")):
        return True
    return float(stored["difficulty"]) != float(new["difficulty"]) or _utc(stored["created_at"]) != _utc(new["created_at"])


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")  # SQLite hands back naive UTC


def upsert_folders(batch: FolderBatch, services: Services = Depends(get_services)) -> UpsertResponse:
    _check_size(len(batch.folders), services)
    if not batch.folders:
        return UpsertResponse(upserted=0, new=0)
    now = datetime.now(UTC)
    stored = {r["folder_id"]: r for r in services.store.get_rows("folders", list(dict.fromkeys(f.folder_id for f in batch.folders)))}
    folders = pd.DataFrame(
        # as for items, an update that leaves created_at out keeps the stored one
        [{**f.model_dump(exclude={"items", "created_at"}),
          "created_at": f.created_at or (stored[f.folder_id]["created_at"] if f.folder_id in stored else now)}
         for f in batch.folders]
    ).drop_duplicates("folder_id", keep="last")
    links = pd.DataFrame(
        [{"folder_id": f.folder_id, "content_id": c, "added_at": now} for f in batch.folders for c in f.items],
        columns=["folder_id", "content_id", "added_at"],
    ).drop_duplicates(["folder_id", "content_id"])
    known = services.store.existing_ids("items", links["content_id"])
    errors = [
        ItemError(index=i, field="items", reason=f"unknown content_id(s): {', '.join(sorted(set(f.items) - known))}")
        for i, f in enumerate(batch.folders) if set(f.items) - known
    ]
    if errors:
        raise HTTPException(status_code=422, detail={"message": "folders reference unknown items",
                                                     "errors": [e.model_dump() for e in errors]})
    new_links = links
    if len(links):
        # links already filed keep their added_at; a PUT adds items to a folder, it never unfiles
        already = services.store.existing_keys("folder_items", zip(links["folder_id"], links["content_id"], strict=True))
        new_links = links[~links.set_index(["folder_id", "content_id"]).index.isin(already)]
    # folders, their new links and the change log in one transaction: all or nothing
    services.store.upsert_tables([("folders", folders), ("folder_items", new_links)], changes=[
        ("folder_item", c, f) for f, c in zip(new_links["folder_id"], new_links["content_id"], strict=True)])
    if len(new_links):
        services.sync_catalog()
        services.prune_catalog_log()
    return UpsertResponse(upserted=len(folders), new=int((~folders["folder_id"].isin(stored)).sum()))


for method in ("PUT", "POST"):
    router.add_api_route("/items", upsert_items, methods=[method], response_model=UpsertResponse,
                         summary="Add or update catalog items (new items are recommendable at once).",
                         operation_id=f"upsert_items_{method.lower()}")
    router.add_api_route("/folders", upsert_folders, methods=[method], response_model=UpsertResponse,
                         summary="Add or update folders and file items in them (items already filed stay).",
                         operation_id=f"upsert_folders_{method.lower()}")
