"""Chat templates rendered by ppox against transformers' apply_chat_template (fixtures made by
tests/fixtures/lm/make_fixtures.py --only chat): the same text and the same token ids."""

import json

import pytest

from ppox.errors import CheckpointError, ConfigError
from ppox.language.chat import TemplateError, load_chat_template
from ppox.language.tokenizer import load_tokenizer
from tests import helpers

CHAT = helpers.FIXTURES / "lm" / "chat"


def expected(name: str) -> dict:
    return json.loads((CHAT / name / "expected.json").read_text())


@pytest.mark.parametrize("name", ["chatml", "llama3"])
def test_rendering_equals_transformers(name):
    """Text and ids equal transformers' for every conversation, with and without the generation prompt (the
    ChatML template lives in tokenizer_config.json, the Llama 3 one in chat_template.jinja beside it)."""
    template = load_chat_template(CHAT / name)
    tok = load_tokenizer(CHAT / name)
    cases = expected(name)["cases"]
    assert len(cases) >= 4 and any(c["add_generation_prompt"] for c in cases)
    for case in cases:
        text = template.render(case["messages"], add_generation_prompt=case["add_generation_prompt"])
        assert text == case["text"]
        ids, mask = tok.encode([text], add_special_tokens=False)
        assert ids[0][mask[0]].tolist() == case["ids"]


def test_the_llama3_template_writes_bos_once():
    """Its tokenizer adds <bos> to plain text; chat text (which the template starts with bos_token) must be
    encoded without it, or the prompt starts with two."""
    template = load_chat_template(CHAT / "llama3")
    tok = load_tokenizer(CHAT / "llama3")
    text = template.render([{"role": "user", "content": "hi"}])
    assert text.startswith("<bos>")
    twice, mask = tok.encode([text])
    once, _ = tok.encode([text], add_special_tokens=False)
    assert twice[0][:2].tolist() == [2, 2] and once[0][0] == 2 != once[0][1]


@pytest.mark.parametrize("name", ["chatml", "llama3"])
def test_the_template_refuses_as_transformers_does(name):
    with pytest.raises(TemplateError, match=expected(name)["refused_message"]):
        load_chat_template(CHAT / name).render(expected(name)["refused"])


def test_a_folder_without_a_template_and_bad_messages_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no chat template"):
        load_chat_template(helpers.FIXTURES / "lm" / "gpt2")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% if %}"}))
    with pytest.raises(CheckpointError, match="does not parse"):
        load_chat_template(tmp_path)
    template = load_chat_template(CHAT / "chatml")
    with pytest.raises(ConfigError, match="messages must be a non-empty list"):
        template.render([])
    with pytest.raises(ConfigError, match=r"messages\[0\].*'role' and 'content'"):
        template.render([{"content": "no role"}])


def test_the_template_is_sandboxed(tmp_path):
    """A template is data from a model folder: it may not reach Python's internals."""
    source = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": source}))
    with pytest.raises(TemplateError, match="SecurityError|unsafe"):
        load_chat_template(tmp_path).render([{"role": "user", "content": "x"}])
