"""Every code block of README.md and docs/*.md runs (see tests/docs/blocks.py for what each
language means), or is marked in the Markdown source as not runnable here, with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil import Example

from tests.docs import blocks

DOCUMENTS = {path: blocks.parse(path) for path in blocks.DOC_PATHS}
EXAMPLES: dict[Path, list[Example]] = {path: list(doc.examples()) for path, doc in DOCUMENTS.items()}
CASES = [
    pytest.param(path, i, id=f"{path.name}:{ex.line}:{blocks.label(ex)}")
    for path, examples in EXAMPLES.items()
    for i, ex in enumerate(examples)
    if not blocks.is_skip(ex)
]


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    for path, doc in DOCUMENTS.items():
        doc.namespace["state"] = blocks.DocState(tmp_path_factory.mktemp(path.stem))
    yield
    problems = []
    for doc in DOCUMENTS.values():
        problems += doc.namespace["state"].project.cleanup()
    assert not problems, problems


@pytest.mark.parametrize(("path", "index"), CASES)
def test_block(documents: None, path: Path, index: int) -> None:
    blocks.run_example(EXAMPLES[path], index)


def test_every_fenced_block_is_run_or_marked_with_a_reason() -> None:
    """No block escapes: each fenced block is one of the languages above, and each skip mark is
    ``skip: next`` with a reason, right before a block."""
    for path, examples in EXAMPLES.items():
        fenced = blocks.fenced_block_starts(path)
        parsed = {ex.region.start: blocks.language(ex) for ex in examples if not blocks.is_skip(ex)}
        unrun = {start: info for start, info in fenced.items() if start not in parsed}
        assert not unrun, f"{path.name}: blocks in no language the docs tests run: {unrun}"
        for i, ex in enumerate(examples):
            if blocks.is_skip(ex):
                action, reason = ex.parsed
                assert action == "next" and reason and reason.strip(" '\""), (
                    f"{path.name}:{ex.line}: {ex.parsed}"
                )
                assert i + 1 < len(examples) and not blocks.is_skip(examples[i + 1]), f"{path.name}:{ex.line}"
    assert len(DOCUMENTS) >= 2 and any(p.name == "status-json.md" for p in DOCUMENTS)
