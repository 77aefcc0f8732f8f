"""The ISP network registry: ``create(name, **options)``, ``list_models()``, ``model_info``."""

from edge_isp.models._registry import (
    ModelInfo,
    check_options,
    count_params,
    create,
    list_models,
    model_info,
    model_options,
    params_of,
    register_model,
    resolve_input_size,
)

__all__ = ["ModelInfo", "check_options", "count_params", "create", "list_models", "model_info", "model_options",
           "params_of", "register_model", "resolve_input_size"]
