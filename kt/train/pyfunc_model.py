"""The MLflow pyfunc face of a ktpath checkpoint (imports MLflow, so it is imported lazily).

ktpath's own serving loads the checkpoint directly (:func:`kt.train.tracking.load_champion`);
this wrapper makes the registered model usable by generic MLflow tooling
(``mlflow.pyfunc.load_model(...).predict(df)``).
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
import torch

from kt.models.base import KTBatch
from kt.models.checkpoint import load_checkpoint


class KTPyfuncModel(mlflow.pyfunc.PythonModel):
    """Scores sequences with the stored checkpoint.

    Input: a DataFrame with list-valued columns ``items``, ``concepts``, ``responses`` (model
    indices, one row per sequence). Output: per row, the list of P(correct) per position, where
    position t predicts ``responses[t]`` from the interactions before it.
    """

    def load_context(self, context) -> None:
        self.loaded = load_checkpoint(context.artifacts["checkpoint"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[list[float]]:
        model = self.loaded.model
        out = []
        with torch.no_grad():
            for _, row in model_input.iterrows():
                items = torch.as_tensor(list(row["items"]), dtype=torch.long).view(1, -1)  # (1, T)
                concepts = torch.as_tensor(list(row["concepts"]), dtype=torch.long).view(1, -1)
                responses = torch.as_tensor(list(row["responses"]), dtype=torch.long).view(1, -1)
                batch = KTBatch(items, concepts, responses, torch.ones_like(items, dtype=torch.bool))
                out.append(torch.sigmoid(model(batch))[0].tolist())
        return out
