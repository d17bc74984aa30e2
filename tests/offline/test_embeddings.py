"""Semantic search's embeddings offline: make_embeddings (BedrockEmbeddings → botocore InvokeModel) → the local
endpoint's Titan text embeddings v2, deterministic and word-based (bedrock/offline/embeddings.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_aws import BedrockEmbeddings
from langgraph.store.memory import InMemoryStore

from bedrock.config import DEFAULT_BEDROCK_MODEL_ID, Settings
from bedrock.core.model import make_embeddings
from bedrock.offline import embeddings as offline_embeddings
from bedrock.offline.endpoint import OfflineBedrockEndpoint
from testkit import loopback

TITAN = "amazon.titan-embed-text-v2:0"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint(record=100).start()
    yield ep
    ep.stop()


@pytest.fixture(scope="module")
def embeddings(endpoint: OfflineBedrockEndpoint) -> BedrockEmbeddings:
    """The default settings' embeddings, shared: each new one builds a boto3 client (~0.2 s)."""
    return make(endpoint)


def make(endpoint: OfflineBedrockEndpoint, **settings: Any) -> BedrockEmbeddings:
    return make_embeddings(Settings(model_provider="offline", **settings), endpoint.url)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


# --- shapes, dimensions, determinism --------------------------------------------------------------------------------

@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_each_titan_dimension_gives_a_unit_vector_of_that_length(endpoint, dimensions):
    embeddings = make(endpoint, embedding_dimensions=dimensions)
    vector = embeddings.embed_query("My sister lives in Lisbon.")
    assert len(vector) == dimensions and math.isclose(math.hypot(*vector), 1.0)
    assert endpoint.invocations[-1].body == {"inputText": "My sister lives in Lisbon.", "dimensions": dimensions}
    assert endpoint.invocations[-1].path == f"/model/{TITAN}/invoke"


def test_the_response_has_titan_v2s_fields_and_headers(endpoint):
    reply = loopback.post(f"{endpoint.url}/model/{TITAN}/invoke", timeout=10,
                          json={"inputText": "Hello, world!", "embeddingTypes": ["float", "binary"]})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"embedding", "inputTextTokenCount", "embeddingsByType"}
    assert body["inputTextTokenCount"] == 4 == int(reply.headers["x-amzn-bedrock-input-token-count"])
    assert body["embeddingsByType"]["float"] == body["embedding"] and len(body["embedding"]) == 1024
    assert body["embeddingsByType"]["binary"] == [1 if x > 0 else 0 for x in body["embedding"]]
    # Without embeddingTypes, embeddingsByType still holds "float" (as Bedrock documents); normalize: false leaves
    # the vector as it is (here: whole bucket sums, not unit length).
    plain = loopback.post(f"{endpoint.url}/model/{TITAN}/invoke", timeout=10,
                          json={"inputText": "Hello, world!", "normalize": False, "dimensions": 256}).json()
    assert list(plain["embeddingsByType"]) == ["float"] and len(plain["embedding"]) == 256
    assert all(x == int(x) for x in plain["embedding"]) and math.hypot(*plain["embedding"]) > 1


def test_the_same_text_gets_the_same_vector_here_and_in_another_process(embeddings):
    text = "I play the cello in a community orchestra."
    first = embeddings.embed_query(text)
    assert embeddings.embed_query(text) == first == offline_embeddings.embed(text)
    # Another interpreter, with another str-hash seed: blake2b, not hash(), so stored vectors match later queries.
    code = f"import json; from bedrock.offline.embeddings import embed; print(json.dumps(embed({text!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == first


def test_texts_sharing_words_are_near_and_others_are_not():
    embed = offline_embeddings.embed
    query = embed("Which orchestra does the user play in?")
    assert cosine(query, embed("I play the cello in a community orchestra.")) > 0.4
    assert abs(cosine(query, embed("My car is an old blue Volvo."))) < 0.2
    # Plurals meet their singulars; case and punctuation do not matter; stop words alone do not make texts near.
    assert cosine(embed("Allergies: cats!"), embed("an allergy to the cat")) > 0.99
    assert abs(cosine(embed("What is it?"), embed("It is in there, with them."))) < 0.2


def test_embed_documents_sends_one_request_per_text(endpoint, embeddings):
    endpoint.record(100)  # from now on
    texts = [f"fact number {i} about the user" for i in range(20)]
    vectors = embeddings.embed_documents(texts)
    received = endpoint.invocations
    assert len(vectors) == 20 and len(received) == 20  # Titan embeds one text a request: no batching
    assert [r.body["inputText"] for r in received] == texts


async def test_async_embeddings_equal_the_sync_ones(embeddings):
    texts = ["tea in the morning", "a beagle called Biscuit"]
    assert await embeddings.aembed_documents(texts) == embeddings.embed_documents(texts)


# --- validation: Bedrock's ValidationException, raised by botocore ---------------------------------------------------

def refused(embeddings: BedrockEmbeddings, call: Any) -> str:
    with pytest.raises(embeddings.client.exceptions.ValidationException) as raised:
        call()
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400 and error["Error"]["Code"] == "ValidationException"
    return error["Error"]["Message"]


def malformed(what: str) -> str:
    return f"Malformed input request: {what}, please reformat your input and try again."


def test_empty_input_text_is_refused(embeddings):
    assert refused(embeddings, lambda: embeddings.embed_query("")) == malformed("expected minLength: 1, actual: 0")


def test_input_text_over_50000_characters_is_refused_and_not_retried(endpoint, embeddings):
    assert len(embeddings.embed_query("a" * 50_000)) == 1024  # the bound itself is accepted
    endpoint.record(100)  # from now on
    message = refused(embeddings, lambda: embeddings.embed_query("a" * 50_001))
    assert message == malformed("expected maxLength: 50000, actual: 50001")
    assert len(endpoint.invocations) == 1  # a 400 is final: botocore does not try again


@pytest.mark.parametrize("dimensions", [300, 768, 0])
def test_dimensions_other_than_256_512_1024_are_refused(endpoint, dimensions):
    embeddings = make(endpoint, embedding_dimensions=dimensions)
    message = refused(embeddings, lambda: embeddings.embed_query("hello"))
    assert message == malformed(f"{dimensions} is not a valid enum value")


def test_unknown_fields_are_refused(endpoint):
    embeddings = make(endpoint)
    embeddings.model_kwargs = {"truncate": "END"}
    message = refused(embeddings, lambda: embeddings.embed_query("hello"))
    assert message == malformed("extraneous key [truncate] is not permitted")


def test_a_body_without_input_text_is_refused(embeddings):
    message = refused(embeddings, lambda: embeddings.client.invoke_model(modelId=TITAN, body=b"{}"))
    assert message == malformed("required key [inputText] not found")
    message = refused(embeddings, lambda: embeddings.client.invoke_model(modelId=TITAN, body=b"not json"))
    assert message == "Malformed input request, please reformat your input and try again."


def test_several_violations_are_counted_as_bedrock_does(embeddings):
    body = json.dumps({"inputText": "", "dimensions": 7, "normalize": "yes", "embeddingTypes": ["int8"]})
    message = refused(embeddings, lambda: embeddings.client.invoke_model(modelId=TITAN, body=body))
    assert message == malformed("4 schema violations found")


@pytest.mark.parametrize("model_id", ["example.not-a-model-v1", DEFAULT_BEDROCK_MODEL_ID])
def test_a_model_that_is_not_titan_embeddings_v2_is_refused(endpoint, model_id):
    embeddings = make(endpoint, embedding_model_id=model_id)
    assert refused(embeddings, lambda: embeddings.embed_query("hello")) == "The provided model identifier is invalid."


@pytest.mark.parametrize("model_id", [TITAN, "amazon.titan-embed-text-v2",
                                      f"arn:aws:bedrock:us-east-1::foundation-model/{TITAN}"])
def test_titan_v2_is_served_by_any_of_its_ids(endpoint, model_id):
    assert len(make(endpoint, embedding_model_id=model_id).embed_query("hello")) == 1024


def test_the_error_is_bedrocks_json_with_its_error_type_header(endpoint):
    reply = loopback.post(f"{endpoint.url}/model/{TITAN}/invoke", json={"inputText": ""}, timeout=10)
    assert reply.status_code == 400 and reply.headers["x-amzn-errortype"] == "ValidationException"
    assert reply.json() == {"message": malformed("expected minLength: 1, actual: 0")}


# --- make_embeddings -------------------------------------------------------------------------------------------------

def test_make_embeddings_follows_the_settings_and_needs_the_endpoint_offline(endpoint):
    embeddings = make(endpoint, embedding_dimensions=512, aws_region="eu-west-1")
    assert isinstance(embeddings, BedrockEmbeddings) and embeddings.model_id == TITAN
    assert embeddings.dimensions == 512 and embeddings.endpoint_url == endpoint.url
    assert embeddings.aws_access_key_id.get_secret_value() == "offline"
    assert embeddings.client.meta.region_name == "eu-west-1"
    with pytest.raises(ValueError, match="endpoint"):
        make_embeddings(Settings(model_provider="offline"))


def test_make_embeddings_for_bedrock_uses_botocores_endpoint_and_the_retries(monkeypatch):
    # What an offline user graph's build exported to this process (core/build.py) is not Bedrock's endpoint.
    monkeypatch.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    embeddings = make_embeddings(Settings(model_provider="bedrock", bedrock_max_attempts=7,
                                          bedrock_retry_mode="standard"))
    assert embeddings.endpoint_url is None  # botocore resolves it (incl. AWS_ENDPOINT_URL_BEDROCK_RUNTIME)
    client = embeddings.client  # built on first use, from the embeddings' own fields; no request is made
    assert client.meta.endpoint_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


# --- the must-show: semantic search offline -------------------------------------------------------------------------

FACTS = [
    "My sister Anna lives in Lisbon.",
    "I am allergic to peanuts.",
    "My favourite colour is dark green.",
    "I work as a nurse at the city hospital.",
    "Our dog is a beagle called Biscuit.",
    "I was born in 1987 in Dublin.",
    "I prefer tea over coffee in the morning.",
    "My car is an old blue Volvo.",
    "I play the cello in a community orchestra.",
    "My daughter starts school in September.",
    "I'm training for a marathon next spring.",
    "I read mostly science fiction novels.",
    "My partner is vegetarian.",
    "I speak Portuguese and a little Japanese.",
    "Our flat has a small balcony with tomatoes.",
    "I can't stand horror films.",
    "My dentist appointment is every six months.",
    "I support Arsenal football club.",
    "I'm saving up for a trip to Iceland.",
    "My grandmother taught me to knit scarves.",
]
# Each query, and the one fact it shares words with.
QUERIES = {
    "Where does the user's sister live?": 0,
    "What is the user allergic to?": 1,
    "What is the dog's name?": 4,
    "Which football team do they follow?": 17,
    "What instrument do they play?": 8,
    "What kind of novels do they like?": 11,
    "Does the user drink coffee?": 6,
}


def test_semantic_search_offline_finds_the_fact_sharing_the_querys_words_in_the_top_3(endpoint):
    """Semantic search offline: of 20 stored facts, the query's top 3 hold the one sharing its words."""
    store = InMemoryStore(index={"dims": 1024, "embed": make(endpoint), "fields": ["text"]})
    namespace = ("memories", "actor-1")
    for i, fact in enumerate(FACTS):
        store.put(namespace, f"fact-{i}", {"text": fact})
    ranks = {}
    for query, expected in QUERIES.items():
        shared = [i for i, fact in enumerate(FACTS)
                  if set(offline_embeddings.words(query)) & set(offline_embeddings.words(fact))]
        assert shared == [expected], f"{query!r} must share words with exactly one fact, shares with {shared}"
        hits = store.search(namespace, query=query, limit=3)
        keys = [hit.key for hit in hits]
        assert f"fact-{expected}" in keys, f"{query!r}: top 3 {[h.value['text'] for h in hits]}"
        ranks[query] = keys.index(f"fact-{expected}") + 1
    print("ranks of the fact sharing the query's words:", ranks)  # shown with `pytest -s`
