"""The ISP network registry: ``create(name, **options)``, ``list_models()``, ``model_info``."""

from edge_isp.models._registry import (
    ModelInfo,
    count_params,
    create,
    list_models,
    model_info,
    params_of,
    register_model,
)

__all__ = ["ModelInfo", "count_params", "create", "list_models", "model_info", "params_of", "register_model"]
