"""Conversations rendered to prompt text with the tokenizer's own chat template (Jinja2).

The template is the folder's ``chat_template.jinja`` (beside tokenizer_config.json), else the
``chat_template`` entry of tokenizer_config.json (a string, or a list of named templates of which "default"
is taken). It is rendered as the Hugging Face tokenizers render it: a sandboxed Jinja2 environment that
trims the newline after a block and the spaces before one, with loop controls, ``raise_exception(message)``,
``strftime_now(format)`` and a ``tojson`` filter that keeps non-ASCII text; the variables are ``messages``,
``add_generation_prompt`` and the special tokens named in tokenizer_config.json (``bos_token``,
``eos_token``, ...). The rendered text is then tokenized without adding special tokens (the template
writes them).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

from ppox.errors import CheckpointError, ConfigError
from ppox.language.config import read_json, shown

TEMPLATE_FILE = "chat_template.jinja"


class TemplateError(ConfigError):
    """The template raised (``raise_exception``) or failed to render a conversation."""


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A compiled chat template and the special tokens it may name."""

    source: str
    special_tokens: dict[str, str]
    where: str

    def render(self, messages: list[dict], add_generation_prompt: bool = True, **extra: Any) -> str:
        """The text of ``messages`` ({"role", "content"} dicts) as the template writes it; with
        ``add_generation_prompt`` it ends where the assistant's answer begins."""
        check_messages(messages, self.where)
        template = compiled(self.source, self.where)
        try:
            return template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self.special_tokens, **extra
            )
        except TemplateError:
            raise
        except Exception as err:  # noqa: BLE001  (a template is user code: any error it makes is named)
            raise TemplateError(f"{self.where}: the chat template failed: {type(err).__name__}: {err}") from None


def check_messages(messages: Any, where: str) -> None:
    """ConfigError unless ``messages`` is a non-empty list of dicts with a string role (and content)."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: messages must be a non-empty list of {{'role', 'content'}} objects")
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message):
            raise ConfigError(f"messages[{i}] is {shown(message)}: expected an object with 'role' and 'content'")


def raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


def strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def tojson(value: Any, ensure_ascii: bool = False, indent=None, separators=None, sort_keys: bool = False) -> str:
    """JSON text of ``value``, non-ASCII kept (Jinja2's own filter escapes HTML characters instead)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


_COMPILED: dict[str, Any] = {}


def generation_extension():
    """A Jinja2 extension for the ``{% generation %}...{% endgeneration %}`` blocks some templates wrap the
    assistant's text in (to mark it for training masks): here they render their body as it is."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    return Generation


def compiled(source: str, where: str):
    """The Jinja2 template of ``source`` in a sandboxed environment (cached); ConfigError when jinja2 is
    missing or the source does not parse."""
    if source in _COMPILED:
        return _COMPILED[source]
    try:
        import jinja2
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ConfigError("chat templates need the jinja2 package: pip install 'ppox[lm]'") from None
    extensions = [loopcontrols, generation_extension()]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=extensions)
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise CheckpointError(f"{where}: the chat template does not parse (line {err.lineno}: {err.message})") from None
    _COMPILED[source] = template
    return template


def special_tokens(config: dict) -> dict[str, str]:
    """The special tokens tokenizer_config.json names ("bos_token": "<s>" or {"content": "<s>", ...})."""
    tokens = {}
    for key, value in config.items():
        if key.endswith("_token") and isinstance(value, dict):
            value = value.get("content")
        if key.endswith("_token") and isinstance(value, str):
            tokens[key] = value
    return tokens


def load_chat_template(folder: Path) -> ChatTemplate:
    """The chat template of a tokenizer folder; CheckpointError (one line) when it has none."""
    folder = Path(folder)
    config_path = folder / "tokenizer_config.json"
    config = read_json(config_path) if config_path.is_file() else {}
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a JSON object")
    file = folder / TEMPLATE_FILE
    source = config.get("chat_template")
    where = str(config_path)
    if file.is_file():
        source, where = file.read_text(encoding="utf-8"), str(file)
    elif isinstance(source, list):
        named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
        source = named.get("default")
    if not isinstance(source, str) or not source:
        raise CheckpointError(
            f"{folder}: no chat template ({TEMPLATE_FILE}, or chat_template in tokenizer_config.json); "
            'give the prompts as text ({"prompt": "..."}) instead of messages'
        )
    compiled(source, where)
    return ChatTemplate(source, special_tokens(config), where)
