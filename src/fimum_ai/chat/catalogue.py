"""The chat model catalogue: `text_models:` of config/models.yaml, looked up by id and role."""

from __future__ import annotations

from collections.abc import Sequence

from fimum_ai.errors import InvalidInput
from fimum_ai.settings import TextModel, TextRole

AUTO = "fimum/auto"  # let the router choose (OpenAI-compatible API and the model picker)
ROLES: tuple[TextRole, ...] = ("general", "coding", "vision", "research")


class UnknownModel(InvalidInput):
    code = "unknown_model"


class Catalogue:
    def __init__(self, models: Sequence[TextModel]) -> None:
        self.models: tuple[TextModel, ...] = tuple(models)
        self._by_id = {model.id: model for model in self.models}

    def __len__(self) -> int:
        return len(self.models)

    def get(self, model_id: str) -> TextModel | None:
        return self._by_id.get(model_id)

    def require(self, model_id: str) -> TextModel:
        model = self._by_id.get(model_id)
        if model is None:
            raise UnknownModel(
                f"model: {model_id!r} is not in the catalogue (GET /api/v1/models lists them; "
                f"{AUTO!r} lets Fimum choose)",
                details={"field": "model", "model": model_id},
            )
        return model

    def by_role(self, role: TextRole) -> list[TextModel]:
        return [model for model in self.models if role in model.roles]

    def vision_models(self) -> list[TextModel]:
        return [model for model in self.models if model.vision]
