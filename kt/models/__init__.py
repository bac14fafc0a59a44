"""KT models: one model per file behind :class:`kt.models.base.KTModel`, found by name."""

from kt.models.base import (
    KTBatch,
    KTModel,
    ModelConfig,
    available_models,
    build_model,
    get_model_class,
    register_model,
)

__all__ = ["KTBatch", "KTModel", "ModelConfig", "available_models", "build_model", "get_model_class", "register_model"]
