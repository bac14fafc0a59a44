"""The bipartite item-folder graph in CSR form (Pixie's pin-board graph, LINER's content-folder one).

Two CSR views of the same edge set: ``item_ptr/item_folders`` (item -> folders it is filed in)
and ``folder_ptr/folder_items`` (folder -> items). Item indices are the catalog's (0..n-1);
folder ids are mapped to 0..m-1 here. Random walks only read these four int arrays, so a graph
of millions of edges is a few tens of MB and a walk step is two gathers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kt.planner.catalog import Catalog, CatalogError


def _csr(src: np.ndarray, dst: np.ndarray, n_src: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(src, kind="stable")
    ptr = np.zeros(n_src + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n_src), out=ptr[1:])
    return ptr, dst[order]


class ItemFolderGraph:
    """Item <-> folder adjacency. Build with :meth:`from_frames` or :meth:`from_edges`."""

    def __init__(self, item_idx: np.ndarray, folder_idx: np.ndarray, n_items: int, folder_ids: list[str]) -> None:
        self.folder_ids = list(folder_ids)
        self._folder_index = {f: i for i, f in enumerate(self.folder_ids)}
        self._edges_item = np.asarray(item_idx, np.int64)
        self._edges_folder = np.asarray(folder_idx, np.int64)
        self.n_items = int(n_items)
        self._rebuild()

    def _rebuild(self) -> None:
        # dedupe edges (an item filed twice in a folder is one edge)
        key = self._edges_folder * max(self.n_items, 1) + self._edges_item
        _, first = np.unique(key, return_index=True)
        self._edges_item, self._edges_folder = self._edges_item[first], self._edges_folder[first]
        self.item_ptr, self.item_folders = _csr(self._edges_item, self._edges_folder, self.n_items)
        self.folder_ptr, self.folder_items = _csr(self._edges_folder, self._edges_item, len(self.folder_ids))
        self.item_degree = np.diff(self.item_ptr)  # (n_items,)
        self.folder_degree = np.diff(self.folder_ptr)  # (n_folders,)

    @classmethod
    def from_edges(cls, item_idx, folder_idx, n_items: int, n_folders: int | None = None) -> ItemFolderGraph:
        folder_idx = np.asarray(folder_idx, np.int64)
        m = int(n_folders if n_folders is not None else (folder_idx.max(initial=-1) + 1))
        return cls(np.asarray(item_idx, np.int64), folder_idx, n_items, [str(i) for i in range(m)])

    @classmethod
    def from_frames(cls, folder_items: pd.DataFrame, catalog: Catalog) -> ItemFolderGraph:
        """``folder_items`` with ``folder_id, content_id``; rows naming unknown items are an error."""
        g = cls(np.zeros(0, np.int64), np.zeros(0, np.int64), len(catalog), [])
        g.add_folder_items(folder_items, catalog)
        return g

    @classmethod
    def from_world(cls, world, catalog: Catalog) -> ItemFolderGraph:
        return cls.from_frames(world.folder_items, catalog)

    def add_folder_items(self, folder_items: pd.DataFrame, catalog: Catalog) -> None:
        """Add (folder_id, content_id) edges; new folders and items added to the catalog since
        the graph was built are taken in. Rebuilds the CSR arrays (O(E))."""
        for col in ("folder_id", "content_id"):
            if col not in folder_items.columns:
                raise CatalogError(f"folder_items: missing column {col!r}")
        items = catalog.index_of(folder_items["content_id"].astype(str).to_numpy())
        if (items < 0).any():
            row = int(np.flatnonzero(items < 0)[0])
            raise CatalogError(
                f"folder_items: row {row}: field 'content_id' {folder_items['content_id'].iloc[row]!r} is not in the catalog"
            )
        folders = np.empty(len(folder_items), np.int64)
        for j, f in enumerate(folder_items["folder_id"].astype(str).tolist()):
            idx = self._folder_index.get(f)
            if idx is None:
                idx = len(self.folder_ids)
                self.folder_ids.append(f)
                self._folder_index[f] = idx
            folders[j] = idx
        self.n_items = max(self.n_items, len(catalog))
        self._edges_item = np.concatenate([self._edges_item, items.astype(np.int64)])
        self._edges_folder = np.concatenate([self._edges_folder, folders])
        self._rebuild()

    def grow(self, n_items: int) -> None:
        """Make room for catalog items added without folder edges (degree 0)."""
        if n_items > self.n_items:
            pad = n_items - self.n_items
            self.item_ptr = np.concatenate([self.item_ptr, np.full(pad, self.item_ptr[-1])])
            self.item_degree = np.concatenate([self.item_degree, np.zeros(pad, np.int64)])
            self.n_items = n_items

    @property
    def n_folders(self) -> int:
        return len(self.folder_ids)

    @property
    def n_edges(self) -> int:
        return len(self.folder_items)

    def folders_of(self, item: int) -> np.ndarray:
        if item >= self.n_items:
            return np.zeros(0, np.int64)
        return self.item_folders[self.item_ptr[item] : self.item_ptr[item + 1]]
