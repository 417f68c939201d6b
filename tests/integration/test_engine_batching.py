"""Dynamic batching in the engine (FR-IMG-003): several compatible jobs, one pipeline call, each job
with its own prompt, seeds, progress and cancel. Tiny SDXL-architecture models, CPU, fp32."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fimum_ai.errors import GenerationCancelled, InvalidInput
from fimum_ai.images.batching import BatchItem, batch_key
from fimum_ai.images.engine import ImageEngine
from fimum_ai.images.model_store import ModelSet
from fimum_ai.images.progress import CancelToken, ProgressEvent
from fimum_ai.images.requests import GenerateParams
from fimum_ai.images.results import GenerationResult
from tests.integration.test_engine import engine_config


@pytest.fixture(scope="module")
def engine(tiny_models_dir: Path) -> Iterator[ImageEngine]:
    models = ModelSet(
        base=tiny_models_dir / "base", refiner=tiny_models_dir / "refiner", upscaler=None, demo=True
    )
    engine = ImageEngine(models, engine_config({"batch_size": 4}))
    engine.load()
    yield engine
    engine.unload()


def params(prompt: str, seed: int, **extra: object) -> GenerateParams:
    fields: dict[str, object] = {"width": 512, "height": 512, "steps": 20, "prompt": prompt, "seed": seed}
    return GenerateParams.model_validate({**fields, **extra})


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def test_compatible_jobs_share_a_key_and_others_do_not(engine: ImageEngine) -> None:
    config = engine_config({"batch_size": 4})
    key = batch_key(params("a red fox", 1), config)
    assert key is not None
    assert batch_key(params("a lighthouse", 99, batch_size=2), config) == key  # prompt, seed, count differ
    assert batch_key(params("a red fox", 1, steps=21), config) != key
    assert batch_key(params("a red fox", 1, width=576), config) != key
    assert batch_key(params("a red fox", 1, scheduler="Euler"), config) != key
    assert batch_key(params("a red fox", 1, guidance_scale=5.0), config) != key
    assert batch_key(params("a red fox", 1, refine=False), config) != key
    assert batch_key(params("a red fox", 1, negative_prompt="blurry"), config) != key
    assert batch_key(params("a red fox", 1, width=2048, height=2048), config) is None  # hires: alone


def test_a_batch_gives_each_job_its_own_images_seeds_and_progress(engine: ImageEngine) -> None:
    events: dict[str, list[ProgressEvent]] = {"fox": [], "sea": []}
    fox = params("a red fox in the snow", 11, batch_size=2)
    sea = params("a stormy sea at night", 500)
    outcomes = engine.text_to_image_batch(
        [BatchItem(fox, events["fox"].append), BatchItem(sea, events["sea"].append)]
    )
    assert len(outcomes) == 2
    fox_result, sea_result = outcomes
    assert isinstance(fox_result, GenerationResult) and isinstance(sea_result, GenerationResult)
    assert [m.seed for m in fox_result.metadata] == [11, 12]
    assert [m.seed for m in sea_result.metadata] == [500]
    assert fox_result.metadata[0].parameters["prompt"] == "a red fox in the snow"
    assert sea_result.metadata[0].parameters["prompt"] == "a stormy sea at night"
    assert fox_result.metadata[0].parameters["dynamic_batch"] == {"jobs": 2, "images": 3}
    assert all(image.size == (512, 512) for image in [*fox_result.images, *sea_result.images])

    # Each job hears every step of the batch once, counted over its own run, with previews.
    for name in ("fox", "sea"):
        steps = [e.step for e in events[name]]
        assert steps == list(range(1, len(steps) + 1)) and steps[-1] == events[name][-1].total
        assert any(e.preview_jpeg for e in events[name])

    # The same seeds alone give the same pictures (batched matrix products may round differently).
    alone = engine.text_to_image(sea)
    assert difference(alone.images[0], sea_result.images[0]) < 1.0
    second_fox = engine.text_to_image(params("a red fox in the snow", 12))
    assert difference(second_fox.images[0], fox_result.images[1]) < 1.0
    assert difference(fox_result.images[0], sea_result.images[0]) > 1.0  # and they are different pictures


def test_cancelling_one_job_lets_the_others_finish(engine: ImageEngine) -> None:
    token = CancelToken()

    def cancel_at_third_step(event: ProgressEvent) -> None:
        if event.step == 3:
            token.cancel()

    stays = params("a quiet forest", 7)
    leaves = params("a busy market", 8)
    outcomes = engine.text_to_image_batch([BatchItem(stays), BatchItem(leaves, cancel_at_third_step, token)])
    assert isinstance(outcomes[0], GenerationResult) and len(outcomes[0].images) == 1
    assert isinstance(outcomes[1], GenerationCancelled)
    assert outcomes[1].details["step"] == 3


def test_cancelling_every_job_stops_the_batch(engine: ImageEngine) -> None:
    tokens = [CancelToken(), CancelToken()]
    for token in tokens:
        token.cancel()
    items = [BatchItem(params("one", 1), cancel=tokens[0]), BatchItem(params("two", 2), cancel=tokens[1])]
    with pytest.raises(GenerationCancelled):
        engine.text_to_image_batch(items)


def test_incompatible_or_oversized_batches_are_refused(engine: ImageEngine) -> None:
    with pytest.raises(InvalidInput, match="cannot run as one batch"):
        engine.text_to_image_batch([BatchItem(params("a", 1)), BatchItem(params("b", 2, steps=25))])
    with pytest.raises(InvalidInput, match="at most 4 images"):
        engine.text_to_image_batch(
            [BatchItem(params("a", 1, batch_size=3)), BatchItem(params("b", 2, batch_size=2))]
        )
