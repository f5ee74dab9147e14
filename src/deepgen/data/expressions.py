"""``expressions``: strings of a context-free grammar as token sequences, for the Grammar VAE
and its character baseline (Kusner et al. 2017, sec. 4.1).

By default, 100,000 distinct expressions of the lectures' grammar (:data:`EXPRESSIONS`),
each a random leftmost derivation of at most 15 productions (every production drawn
uniformly among those of the leftmost non-terminal; longer derivations are discarded, and
a string met again is skipped, so the set holds distinct strings in order of first
appearance). The paper's own file enumerated such derivations systematically instead.
Fixed by ``seed`` and checked against a stored sha256; cached (npz, no pickle) with its hash.

With ``--data-dir FILE``, the strings are read from a text file, one per line, and parsed
with the grammar (``--grammar FILE`` in nltk notation, else the expression grammar). A
line outside the grammar stops loading with its line number and position, or is skipped
with ``on_bad_line skip``.

``encoding`` chooses the tokens: ``productions`` (the derivation's production ids, padded
with the grammar's end id; what the GVAE reads) or ``characters`` (the string's characters,
padded with an end character; what the character VAE reads). Splits: a fixed permutation
by seed, 90% / 5% / 5% train / valid / test.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..config import Config
from ..errors import DataError, option
from ..fileio import atomic_write_bytes, atomic_write_text, sha256_bytes
from ..seeds import derive
from .datasets import Dataset, Split, default_cache_dir
from .grammar import EXPRESSIONS, Grammar, GrammarError

END = "<end>"

# sha256 of the default set's derivations (count 100,000, max_rules 15, seed 0, the
# expression grammar; derivations_sha256), measured when first generated: every machine must
# build the same set.
REFERENCE = ((100_000, 15, 0), "8547636ac24c9a9f24e2c2aa71a803b040feba40db508f9af7e4e31a0a2fa1a3")


class ExpressionOptions(Config):
    """Options of ``expressions``."""

    grammar: str | None = Field(
        None,
        description="a grammar file in nltk notation; default the lectures' expression grammar",
    )
    encoding: Literal["productions", "characters"] = Field(
        "productions", description="the tokens of a stream"
    )
    count: int = Field(100_000, ge=10, le=1_000_000, description="generated: distinct expressions")
    max_rules: int = Field(15, ge=1, le=100, description="productions per derivation at most")
    seed: int = Field(0, ge=0, description="generated: seed of the derivations and of the split")
    on_bad_line: Literal["stop", "skip"] = Field(
        "stop", description="a line outside the grammar: stop, or skip it"
    )


def read_grammar(path: str | None) -> Grammar:
    """The grammar in file ``path`` (nltk notation), or the expression grammar.

    Raises: DataError (no such file), ConfigError (not a grammar)."""
    if path is None:
        return Grammar(EXPRESSIONS)
    try:
        return Grammar(Path(path).expanduser().read_text())
    except OSError as err:
        raise DataError(f"cannot read the grammar file {path}: {err.strerror}") from None


def generate(grammar: Grammar, count: int, max_rules: int, seed: int) -> list[list[int]]:
    """``count`` derivations of distinct strings, each of at most ``max_rules`` productions.

    Raises: DataError when the grammar has fewer distinct strings that short."""
    rng = random.Random(derive(seed, "expressions"))
    seen, out, tries = set(), [], 0
    while len(out) < count:
        tries += 1
        if tries > 100 * count + 10_000:
            raise DataError(
                f"found only {len(out)} distinct strings of at most {max_rules} productions in "
                f"{tries - 1:,} derivations; ask for fewer (count) or allow more (max_rules)"
            )
        ids = grammar.random_derivation(rng, max_rules)
        if ids is None:
            continue
        string = grammar.derive(ids)
        if string not in seen:
            seen.add(string)
            out.append(ids)
    return out


def read_strings(
    grammar: Grammar, path: Path, max_rules: int, on_bad_line: str, log=None
) -> list[list[int]]:
    """The derivation of every non-blank line of ``path``.

    Raises: DataError naming the line and position of the first bad string (stop), or when
        no line is good."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read strings from {path}: {err}") from None
    out, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ids = grammar.parse(line)
            if len(ids) > max_rules:
                raise GrammarError(
                    f"{line.strip()!r} needs {len(ids)} productions, more than max_rules "
                    f"{max_rules}",
                    0,
                )
        except GrammarError as err:
            if on_bad_line == "stop":
                raise DataError(
                    f"{path}, line {number}: {err} "
                    f"({option('on_bad_line', 'skip')} skips such lines)"
                ) from None
            bad.append((number, err))
            continue
        out.append(ids)
    if bad and log:
        log(f"skipped {len(bad)} line(s) outside the grammar, e.g. line {bad[0][0]}: {bad[0][1]}")
    if len(out) < 3:
        raise DataError(f"{path} holds {len(out)} strings of the grammar; at least 3 are needed")
    return out


def _cached(
    grammar: Grammar, count: int, max_rules: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`generate` as (ids (count, max_rules) padded with the end id, lengths), kept in
    the cache beside its sha256 and generated again when the file does not match it."""
    key = sha256_bytes(f"{grammar.text}|{count}|{max_rules}|{seed}".encode())[:16]
    path = default_cache_dir() / "expressions" / f"{key}.npz"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        try:
            if sha256_bytes(path.read_bytes()) == json.loads(meta.read_text())["sha256"]:
                with np.load(path, allow_pickle=False) as arrays:
                    return torch.from_numpy(arrays["ids"]), torch.from_numpy(arrays["lengths"])
        except (OSError, ValueError, KeyError):
            pass  # damaged: generate again
    ids, lengths = _padded(generate(grammar, count, max_rules, seed), max_rules, grammar.end)
    buf = io.BytesIO()
    np.savez(buf, ids=ids.numpy(), lengths=lengths.numpy())
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_text(meta, json.dumps({"sha256": sha256_bytes(buf.getvalue())}))
    return ids, lengths


def derivations_sha256(ids: torch.Tensor, lengths: torch.Tensor) -> str:
    """sha256 of padded derivations and their lengths (int64, C order)."""
    return sha256_bytes(ids.contiguous().numpy().tobytes() + lengths.contiguous().numpy().tobytes())


def _padded(seqs: list[list[int]], width: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.full((len(seqs), width), pad, dtype=torch.long)
    for i, seq in enumerate(seqs):
        x[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return x, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def characters(grammar: Grammar) -> tuple[str, ...]:
    """The character vocabulary of a grammar's strings: every character of its terminals,
    sorted, then the end token."""
    return tuple(sorted({c for t in grammar.terminals for c in t})) + (END,)


def encode_characters(
    strings: list[str], vocabulary: tuple[str, ...], width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Strings -> (character ids (N, T) padded with the end id, lengths (N,))."""
    index = {c: i for i, c in enumerate(vocabulary)}
    seqs = [[index[c] for c in s] for s in strings]
    return _padded(seqs, width or max(len(s) for s in seqs), len(vocabulary) - 1)


def expressions_dataset(
    spec,
    data_dir=None,
    grammar: str | None = None,
    encoding: str = "productions",
    count: int = 100_000,
    max_rules: int = 15,
    seed: int = 0,
    on_bad_line: str = "stop",
    log=None,
    **_,
) -> Dataset:
    """Load or generate the expressions (see the module docstring)."""
    g = read_grammar(grammar)
    if data_dir is not None:
        ids, lengths = _padded(
            read_strings(g, Path(data_dir).expanduser(), max_rules, on_bad_line, log),
            max_rules,
            g.end,
        )
        source = f"{data_dir} ({len(ids)} strings)"
    else:
        ids, lengths = _cached(g, count, max_rules, seed)
        source = (
            f"generated ({count:,} derivations of at most {max_rules} productions, seed {seed})"
        )
        if grammar is None and (count, max_rules, seed) == REFERENCE[0]:
            digest = derivations_sha256(ids, lengths)
            if digest != REFERENCE[1]:
                raise DataError(
                    f"the generated expressions have sha256 {digest[:12]}..., not deepgen's "
                    f"reference {REFERENCE[1][:12]}...; the generator or Python's random differs"
                )
    if encoding == "productions":
        x, vocabulary = ids, g.names
    else:
        vocabulary = characters(g)
        x, lengths = encode_characters([g.derive(row) for row in ids.tolist()], vocabulary)
    perm = torch.randperm(
        len(x), generator=torch.Generator().manual_seed(derive(seed, "expressions", "split"))
    )
    held = max(1, len(x) // 20)
    parts = {"valid": perm[:held], "test": perm[held : 2 * held], "train": perm[2 * held :]}
    splits = {name: Split(x, None, lengths).take(idx) for name, idx in parts.items()}
    return Dataset("expressions", splits, source=source, vocabulary=vocabulary, grammar=g.text)
