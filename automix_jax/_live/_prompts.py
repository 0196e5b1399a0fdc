"""Prompt templates of the live steps: the answer and the few-shot self-check.

A template is plain text in which `{context}`, `{question}` and `{answer}` are
replaced by the query's values; nothing else in it is interpreted, so braces, `$`
and `%` may be written freely. Replace any template by passing a TOML file with the
same keys to `load_prompts` (or `automix-jax run --prompts FILE`):

    answer_system = "..."
    answer_user = "...{context}...{question}..."
    verify_system = ""
    verify_user = "...worked examples...{context}...{question}...{answer}..."
    verify_stop = ["\\n---"]
    no_context = "(none given)"

The default verification prompt follows AutoMix (Madaan et al., 2023): a few worked
examples, each a context, a question, a proposed answer, a short evaluation and a
verdict, then the query to judge. A sample's verdict is the last
`Verdict: correct` / `Verdict: incorrect` it writes (case and markup ignored).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import attrs

from .._errors import EndpointError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "PromptTemplates",
    "extract_answer",
    "fill",
    "fit_context",
    "load_prompts",
    "parse_verdict",
]

_ANSWER_SYSTEM = (
    "Answer the question briefly. Reply with the answer alone (a number, a name, "
    "a date or a short phrase) and no explanation."
)
_ANSWER_USER = "Context: {context}\n\nQuestion: {question}\n\nAnswer:"
_VERIFY_USER = """\
Check whether the proposed answer to each question is right. Read the context, \
test the answer against it in a sentence or two, then write the verdict on a line \
of its own: "Verdict: correct" or "Verdict: incorrect".

Context: The Harbor Line ferry leaves Pier 4 every 40 minutes, the first one at \
6:20 in the morning. The last one leaves at 22:20.
Question: At what time does the third ferry of the day leave?
Proposed answer: 7:40
Evaluation: The first ferry is at 6:20, the second 40 minutes later at 7:00 and \
the third at 7:40, which is the proposed answer.
Verdict: correct
---
Context: A bakery packs muffins in boxes of 6. On Monday it sold 14 boxes and 5 \
single muffins.
Question: How many muffins did the bakery sell on Monday?
Proposed answer: 79
Evaluation: 14 boxes of 6 make 84 muffins, and 5 single ones bring it to 89, \
not 79.
Verdict: incorrect
---
Context: Ilse Varga wrote the novel Salt Orchard in 1998. The film made from it, \
directed by Tomas Ekker, came out in 2004.
Question: Who directed the film of Salt Orchard?
Proposed answer: Ilse Varga
Evaluation: Ilse Varga is the author of the novel; the context says the film was \
directed by Tomas Ekker.
Verdict: incorrect
---
Context: (none given)
Question: How many sides does a hexagon have?
Proposed answer: 6
Evaluation: A hexagon is a polygon with six sides, so 6 is right.
Verdict: correct
---
Context: {context}
Question: {question}
Proposed answer: {answer}
Evaluation:"""

_PLACEHOLDERS = ("context", "question", "answer")
_VERDICT = re.compile(
    r"verdict\s*[:=\-]?\s*[*_`\"']*\s*(incorrect|not\s+correct|correct)\b",
    re.IGNORECASE,
)


@attrs.frozen
class PromptTemplates:
    """The text of every prompt the live runner sends.

    Attributes:
        answer_system: system message of the answer request ("" for none).
        answer_user: user message of the answer request; uses `{question}` and
            may use `{context}`.
        verify_system: system message of the verification request ("" for none).
        verify_user: the few-shot verification prompt; uses `{question}` and
            `{answer}`, and may use `{context}`.
        verify_stop: stop sequences of a verification sample (so that it does not
            go on to invent the next example).
        no_context: what `{context}` becomes when a query has none.
    """

    answer_system: str = _ANSWER_SYSTEM
    answer_user: str = attrs.field(default=_ANSWER_USER)
    verify_system: str = ""
    verify_user: str = attrs.field(default=_VERIFY_USER)
    verify_stop: tuple[str, ...] = attrs.field(default=("\n---",), converter=tuple)
    no_context: str = "(none given)"

    @answer_user.validator
    def _check_answer(self, attribute: attrs.Attribute, value: str) -> None:
        if "{question}" not in value:
            raise ValueError("`answer_user` must contain {question}")

    @verify_user.validator
    def _check_verify(self, attribute: attrs.Attribute, value: str) -> None:
        for needed in ("{question}", "{answer}"):
            if needed not in value:
                raise ValueError(f"`verify_user` must contain {needed}")

    def answer_messages(self, question: str, context: str) -> list[dict[str, str]]:
        """Chat messages that ask for the answer."""
        return self._messages(self.answer_system, self.answer_user, question, context)

    def verify_messages(
        self, question: str, context: str, answer: str
    ) -> list[dict[str, str]]:
        """Chat messages that ask the model to judge `answer`."""
        return self._messages(
            self.verify_system, self.verify_user, question, context, answer
        )

    def _messages(
        self, system: str, user: str, question: str, context: str, answer: str = ""
    ) -> list[dict[str, str]]:
        values = {
            "context": context or self.no_context,
            "question": question,
            "answer": answer,
        }
        messages = []
        if system:
            messages.append({"role": "system", "content": fill(system, values)})
        messages.append({"role": "user", "content": fill(user, values)})
        return messages


def fill(template: str, values: dict[str, str]) -> str:
    """Replace `{context}`, `{question}` and `{answer}` in `template`, only those.

    Each placeholder is replaced in one pass, so a value that itself contains
    `{answer}` is left as it is.
    """
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in _PLACEHOLDERS))
    return pattern.sub(lambda m: values.get(m.group(0)[1:-1], m.group(0)), template)


def fit_context(
    context: str, fixed_tokens: int, window: int, reserve: int, chars_per_token: float
) -> str:
    """Cut `context` so that the prompt and the completion fit in the window.

    Token counts are estimated at `chars_per_token` characters a token (no
    tokenizer is loaded for a remote model); a margin of 5% of the window absorbs
    the estimate's error. The start of the context is kept and the cut is marked.

    Args:
        context: the query's context.
        fixed_tokens: estimated tokens of the prompt without the context.
        window: the model's context window in tokens.
        reserve: tokens kept free for the completion.
        chars_per_token: characters per token of the estimate.

    Returns:
        The context, shortened when needed ("" when nothing fits).
    """
    margin = max(16, window // 20)
    budget = window - reserve - fixed_tokens - margin
    limit = int(max(0, budget) * chars_per_token)
    if len(context) <= limit:
        return context
    marker = " [...]"
    if limit <= len(marker):
        return ""
    return context[: limit - len(marker)].rstrip() + marker


def parse_verdict(text: str) -> bool | None:
    """The verdict of one verification sample.

    Returns:
        `True` for "correct", `False` for "incorrect" / "not correct", `None`
        when the sample has no verdict line. The last verdict written wins.
    """
    found = _VERDICT.findall(text)
    if not found:
        return None
    return found[-1].lower() == "correct"


def extract_answer(text: str) -> str:
    """The short answer in a completion: after a last `Answer:` if any, first line,
    without surrounding quotes or a final full stop."""
    match = list(re.finditer(r"answer\s*(?:is)?\s*:", text, re.IGNORECASE))
    if match:
        text = text[match[-1].end() :]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    answer = lines[0] if lines else ""
    if answer.endswith(".") and not answer.endswith(".."):
        answer = answer[:-1].rstrip()
    return answer.strip("\"'`*").strip()


def load_prompts(path: str | os.PathLike[str]) -> PromptTemplates:
    """Read replacement templates from a TOML file (missing keys keep defaults).

    Raises:
        EndpointError: the file cannot be read, is not TOML, has an unknown key,
            or a template lacks a placeholder it needs.
    """
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise EndpointError(
            f"{source}: cannot read the prompts file ({error.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise EndpointError(f"{source}: not valid TOML ({error}); fix it") from None
    allowed = {f.name for f in attrs.fields(PromptTemplates)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise EndpointError(
            f"{source}: key {unknown[0]!r}: unknown key; allowed keys are "
            + ", ".join(sorted(allowed))
        )
    try:
        return PromptTemplates(**data)
    except (TypeError, ValueError) as error:
        raise EndpointError(f"{source}: {error}; fix the template") from None
