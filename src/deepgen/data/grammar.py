"""Context-free grammars for sequence models (Kusner, Paige & Hernández-Lobato 2017, "Grammar
Variational Autoencoder", sec. 2-3).

A :class:`Grammar` holds an nltk CFG written in nltk's notation (the lectures' notation)::

    S -> S '+' T | S '*' T | S '/' T | T
    T -> '(' S ')' | 'sin(' S ')' | 'exp(' S ')' | 'x' | '1' | '2' | '3'

A string is split into the grammar's terminals (longest match first, spaces ignored) and
parsed by nltk's chart parser; its parse tree read in preorder is the leftmost derivation,
the sequence of production ids the Grammar VAE encodes. Decoding runs the other way under a
stack of non-terminals (:meth:`Grammar.masks`): at each step only the productions of the
non-terminal on top of the stack are allowed, so every finished sequence derives a string of
the grammar. An extra production id, :attr:`Grammar.end`, pads a derivation after it ends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, DataError

EXPRESSIONS = """
S -> S '+' T | S '*' T | S '/' T | T
T -> '(' S ')' | 'sin(' S ')' | 'exp(' S ')' | 'x' | '1' | '2' | '3'
"""


class GrammarError(DataError):
    """A string is not in the grammar. ``position`` is the 0-based character where it stops
    being a prefix of any string of the grammar (its length when it ends too early)."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Token:
    """A terminal of a tokenised string and the character position it starts at."""

    text: str
    position: int


class Grammar:
    """A context-free grammar in nltk notation; productions are numbered in the order written.

    Raises:
        ConfigError: the text is not a grammar nltk can read, or has no terminals.
    """

    def __init__(self, text: str):
        import nltk

        try:
            self.cfg = nltk.CFG.fromstring(text)
        except ValueError as err:
            detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            raise ConfigError(f"not a context-free grammar in nltk notation: {detail}") from None
        self.text = text.strip()
        self.productions = list(self.cfg.productions())
        self.end = len(self.productions)  # the padding production after a derivation ends
        self.start = self.cfg.start()
        self.nonterminals = list(dict.fromkeys(p.lhs() for p in self.productions))
        terminals = {s for p in self.productions for s in p.rhs() if isinstance(s, str)}
        if not terminals:
            raise ConfigError("the grammar has no terminals")
        self.terminals = sorted(terminals, key=lambda t: (-len(t), t))  # longest match first
        self._parser = nltk.ChartParser(self.cfg)
        self._earley = nltk.EarleyChartParser(self.cfg)
        self._index = {p: i for i, p in enumerate(self.productions)}
        # Plain-Python views for the hot loops: each production's left side and right side
        # (terminals as strings, non-terminals as their index), and the productions of each
        # non-terminal.
        nt = {n: k for k, n in enumerate(self.nonterminals)}
        self._lhs = [nt[p.lhs()] for p in self.productions]
        self._rhs = [
            tuple(s if isinstance(s, str) else nt[s] for s in p.rhs()) for p in self.productions
        ]
        self._by_lhs = [
            [i for i, lhs in enumerate(self._lhs) if lhs == k]
            for k in range(len(self.nonterminals))
        ]
        self.costs = self.completion_costs()

    def __len__(self) -> int:
        """Production ids, the padding one included."""
        return self.end + 1

    @property
    def names(self) -> tuple[str, ...]:
        """The text of every production id, "<end>" last: the vocabulary of derivations."""
        return tuple(str(p) for p in self.productions) + ("<end>",)

    def tokenize(self, string: str) -> list[Token]:
        """The terminals of ``string`` (longest match first; spaces between them ignored).

        Raises:
            GrammarError: a character where no terminal starts.
        """
        tokens, i = [], 0
        while i < len(string):
            if string[i].isspace():
                i += 1
                continue
            match = next((t for t in self.terminals if string.startswith(t, i)), None)
            if match is None:
                raise GrammarError(
                    f"{string!r} is not in the grammar: no terminal starts at character {i} "
                    f"({string[i]!r})",
                    i,
                )
            tokens.append(Token(match, i))
            i += len(match)
        return tokens

    def parse(self, string: str) -> list[int]:
        """The leftmost derivation of ``string``: production ids, in the order a decoder
        emits them (the preorder of its parse tree).

        Raises:
            GrammarError: ``string`` is not in the grammar; the message and ``position`` say
                where it stops being a prefix of one.
        """
        tokens = self.tokenize(string)
        tree = next(self._parser.parse([t.text for t in tokens]), None) if tokens else None
        if tree is None:
            k = self._viable_prefix([t.text for t in tokens])
            position = tokens[k].position if k < len(tokens) else len(string)
            what = (
                f"at character {position} ({tokens[k].text!r})"
                if k < len(tokens)
                else "it ends too early"
            )
            raise GrammarError(f"{string!r} is not in the grammar: {what}", position)
        return [self._index[p] for p in tree.productions()]

    def _viable_prefix(self, tokens: list[str]) -> int:
        """How many leading tokens some string of the grammar starts with: the furthest
        position an Earley chart reaches (its edges only extend prefixes that can still be
        completed)."""
        from nltk.parse.chart import LeafEdge

        chart = self._earley.chart_parse(tokens)
        return max((e.end() for e in chart.edges() if not isinstance(e, LeafEdge)), default=0)

    def derive(self, ids) -> str | None:
        """The string a sequence of production ids derives, leftmost first; ids after the
        first :attr:`end` are ignored. None when the sequence is not a complete derivation
        (a production that does not expand the leftmost non-terminal, or non-terminals left
        when it ends)."""
        start = self.nonterminals.index(self.start)
        out: list[str] = []
        stack: list = [start]  # pending symbols, leftmost last
        for i in ids:
            i = int(i)
            if i == self.end:
                break
            while stack and isinstance(stack[-1], str):
                out.append(stack.pop())
            if not 0 <= i < self.end or not stack or stack[-1] != self._lhs[i]:
                return None
            stack.pop()
            stack.extend(reversed(self._rhs[i]))
        while stack and isinstance(stack[-1], str):
            out.append(stack.pop())
        return None if stack else "".join(out)

    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(masks, lhs): masks (len(nonterminals) + 1, len(self)) bool, row k allowing the
        productions of non-terminal k and the last row (empty stack) only :attr:`end`;
        lhs (len(self),) int64, the row of each production's left side (:attr:`end`'s: the
        last row). Kusner et al. 2017, sec. 3 and Algorithm 1."""
        rows = {nt: k for k, nt in enumerate(self.nonterminals)}
        masks = torch.zeros(len(self.nonterminals) + 1, len(self), dtype=torch.bool)
        lhs = torch.full((len(self),), len(self.nonterminals), dtype=torch.long)
        for i, p in enumerate(self.productions):
            masks[rows[p.lhs()], i] = True
            lhs[i] = rows[p.lhs()]
        masks[-1, self.end] = True
        return masks, lhs

    def expand(self, stack: list[int], production: int) -> list[int]:
        """The stack after emitting ``production`` on top of ``stack`` (non-terminal indices,
        top last): the top is replaced by the production's non-terminals, leftmost on top."""
        if production == self.end:
            return stack
        return stack[:-1] + [s for s in reversed(self._rhs[production]) if not isinstance(s, str)]

    def stack_row(self, stack: list[int]) -> int:
        """The mask row of ``stack``'s top (the empty stack's row when it is empty)."""
        return stack[-1] if stack else len(self.nonterminals)

    def completion_costs(self) -> list[int]:
        """The fewest productions that finish each non-terminal (by fixed-point iteration):
        cost(A) = min over A's productions of 1 + the costs of their non-terminals.

        Raises: ConfigError for a non-terminal that never finishes."""
        cost = [math.inf] * len(self.nonterminals)
        changed = True
        while changed:
            changed = False
            for lhs, rhs in zip(self._lhs, self._rhs):
                c = 1 + sum(cost[s] for s in rhs if not isinstance(s, str))
                if c < cost[lhs]:
                    cost[lhs], changed = c, True
        stuck = [str(self.nonterminals[k]) for k, c in enumerate(cost) if c == math.inf]
        if stuck:
            raise ConfigError(f"the non-terminal(s) {', '.join(stuck)} never derive a string")
        return [int(c) for c in cost]

    def finishing(self, stack: list[int], steps: int, costs: list[int]) -> list[int]:
        """The productions of ``stack``'s top after which the whole stack can still be
        finished within ``steps`` productions (this one included); :attr:`end` alone for an
        empty stack."""
        if not stack:
            return [self.end]
        rest = sum(costs[s] for s in stack[:-1])
        return [
            p
            for p in self._by_lhs[stack[-1]]
            if 1 + rest + sum(costs[s] for s in self._rhs[p] if not isinstance(s, str)) <= steps
        ]

    def start_stack(self) -> list[int]:
        """The stack a derivation starts from: the start symbol alone."""
        return [self.nonterminals.index(self.start)]

    def random_derivation(self, rng: random.Random, max_rules: int) -> list[int] | None:
        """A leftmost derivation with each production drawn uniformly among those of the
        leftmost non-terminal; None if it needs more than ``max_rules`` productions."""
        stack, ids = self.start_stack(), []
        while stack:
            if len(ids) == max_rules:
                return None
            choice = rng.choice(self._by_lhs[stack[-1]])
            ids.append(choice)
            stack = self.expand(stack, choice)
        return ids


# --- the expression grammar's meaning ------------------------------------------------------

FUNCTIONS = {"sin(": np.sin, "exp(": np.exp}
OPERATORS = {"+": np.add, "*": np.multiply, "/": np.divide}


def evaluate(grammar: Grammar, string: str, x: np.ndarray) -> np.ndarray:
    """The value of an expression of the expression grammar at points ``x`` (float64),
    computed from its parse tree: binary + * /, sin( and exp(, brackets, x and the digits.
    Overflow and division by zero give inf or nan, not errors.

    Raises:
        GrammarError: not in the grammar. ConfigError: a terminal with no meaning here (a
            grammar other than the expression grammar).
    """
    import nltk

    tokens = [t.text for t in grammar.tokenize(string)]
    tree = next(grammar._parser.parse(tokens), None) if tokens else None
    if tree is None:
        grammar.parse(string)  # raises with the position

    def value(node) -> np.ndarray:
        children = list(node) if isinstance(node, nltk.Tree) else [node]
        if len(children) == 1:
            leaf = children[0]
            if isinstance(leaf, nltk.Tree):
                return value(leaf)
            if leaf == "x":
                return x
            try:
                return np.full_like(x, float(leaf))
            except ValueError:
                raise ConfigError(
                    f"the terminal {leaf!r} has no meaning in an expression"
                ) from None
        if len(children) == 3 and isinstance(children[1], str) and children[1] in OPERATORS:
            return OPERATORS[children[1]](value(children[0]), value(children[2]))
        if len(children) == 3 and children[2] == ")" and children[0] == "(":
            return value(children[1])
        if (
            len(children) == 3
            and children[2] == ")"
            and isinstance(children[0], str)
            and children[0] in FUNCTIONS
        ):
            return FUNCTIONS[children[0]](value(children[1]))
        raise ConfigError(f"no meaning for a node with children {[str(c) for c in children]}")

    with np.errstate(all="ignore"):
        return value(tree)
