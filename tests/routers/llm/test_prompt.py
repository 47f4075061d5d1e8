"""The prompt text every LLM strategy keys on, and the body fields the routers read."""

import pytest

from seldon_routers.errors import BadRequest
from seldon_routers.request import Request
from seldon_routers.routers.llm.prompt import (
    DEFAULT_MAX_TOKENS,
    body_of,
    estimate_tokens,
    max_tokens_of,
    model_of,
    prompt_text,
    usage_of,
)


def test_chat_prompt_is_every_message_in_order_system_included():
    body = {"messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": "Bye"}]}
    assert prompt_text(body) == "system: You are terse.\nuser: Hi\nassistant: Hello\nuser: Bye"


def test_a_later_turn_extends_the_earlier_turn_as_a_prefix():
    turn1 = {"messages": [{"role": "system", "content": "S" * 100}, {"role": "user", "content": "q1"}]}
    turn2 = {"messages": turn1["messages"] + [{"role": "assistant", "content": "a1"},
                                              {"role": "user", "content": "q2"}]}
    assert prompt_text(turn2).startswith(prompt_text(turn1))


def test_multi_part_content_reads_its_parts_in_order():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Look at "},
        {"type": "image_url", "image_url": {"url": "http://x/cat.png"}},
        {"type": "text", "text": " please"}]}]}
    assert prompt_text(body) == "user: Look at http://x/cat.png please"


def test_tool_calls_count_as_context():
    calls = [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    with_calls = {"messages": [{"role": "assistant", "content": None, "tool_calls": calls}]}
    without = {"messages": [{"role": "assistant", "content": None}]}
    assert prompt_text(with_calls) != prompt_text(without)


@pytest.mark.parametrize("body, text", [
    ({"prompt": "Once upon"}, "Once upon"),
    ({"prompt": ["a", "b"]}, "a\nb"),
    ({"prompt": [1, 2, 3]}, "1 2 3"),
    ({"input": "embed me", "model": "e5"}, "embed me"),
    ({"input": ["x", "y"]}, "x\ny"),
    ({"prompt": [[1, 2], [3]]}, "1 2\n3"),  # a batch of token-id prompts
    ({"input": [[7, 8.0]]}, "7 8"),  # (a gRPC jsonData has every number as a float)
])
def test_completions_and_embeddings(body, text):
    assert prompt_text(body) == text


@pytest.mark.parametrize("body, field", [
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": 3, "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": {}, "text": "x"}]}]}, "messages[0].content[0].type"),
    ({"prompt": {"a": 1}}, "prompt"),
    ({"model": "m"}, "no messages, prompt or input"),
])
def test_malformed_bodies_name_the_field(body, field):
    with pytest.raises(BadRequest, match=field.replace("[", r"\[").replace("]", r"\]")):
        prompt_text(body)


def test_body_from_json_data_str_data_or_nothing():
    assert body_of(Request({"prompt": "x"}, kind="jsonData")) == {"prompt": "x"}
    assert body_of(Request('{"prompt": "x"}', kind="strData")) == {"prompt": "x"}
    with pytest.raises(BadRequest, match="strData: not an OpenAI request body"):
        body_of(Request("not json", kind="strData"))
    with pytest.raises(BadRequest, match="needs an OpenAI request body"):
        body_of(Request())
    with pytest.raises(BadRequest, match="needs an OpenAI request body"):
        body_of(Request([1, 2], kind="jsonData"))


def test_model_and_token_expectations():
    assert model_of({"model": "llama"}) == "llama" and model_of({}) is None
    with pytest.raises(BadRequest, match="model"):
        model_of({"model": ""})
    assert max_tokens_of({"prompt": "x", "max_tokens": 10, "n": 3}) == 30
    assert max_tokens_of({"messages": [], "max_completion_tokens": 7, "max_tokens": 99}) == 7
    assert max_tokens_of({"messages": []}) == DEFAULT_MAX_TOKENS
    assert max_tokens_of({"input": "x"}) == 0  # an embedding generates nothing
    assert max_tokens_of({"messages": [], "n": 4}) == 4 * DEFAULT_MAX_TOKENS
    for bad, field in [({"max_tokens": -1}, "max_tokens"), ({"max_tokens": 1e19}, "max_tokens"),
                       ({"max_tokens": 10, "n": 0}, "n"), ({"n": 1000}, "n"), ({"n": "2"}, "n")]:
        with pytest.raises(BadRequest, match=field):
            max_tokens_of({"prompt": "x", **bad})
    assert estimate_tokens("abcdefgh") == 2 and estimate_tokens("") == 1


def test_usage_from_a_response():
    assert usage_of({"usage": {"prompt_tokens": 3, "completion_tokens": 4}})["total_tokens"] == 7
    assert usage_of({"usage": {"total_tokens": 9}}) == {"total_tokens": 9}
    assert usage_of({"choices": []}) is None and usage_of(None) is None
    for bad, field in [({"usage": 3}, "usage"), ({"usage": {"total_tokens": -1}}, "usage.total_tokens"),
                       ({"usage": {}}, "usage: needs total_tokens")]:
        with pytest.raises(BadRequest, match=field):
            usage_of(bad)
