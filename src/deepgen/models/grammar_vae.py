"""The Grammar VAE (Kusner, Paige & Hernández-Lobato 2017, "Grammar Variational Autoencoder")
and the character VAE it is compared with (their baseline, after Gómez-Bombarelli et al.).

Both read a sequence of T tokens as one-hot rows and share their networks (sec. 4 and the
paper's code): three 1-D convolutions (kernels 2, 3, 4, each with batch norm and ReLU), a
dense layer and a Gaussian q(z|x); a decoder that feeds a dense projection of z to every
one of T steps of three GRU layers and reads per-step logits. Trained on the ELBO, in nats
per expression, with the reparameterisation and the closed-form KL.

- ``gvae``: tokens are the production ids of the string's leftmost derivation. The
  likelihood at step t is a softmax over only the productions of the non-terminal that
  step expands (the left side of the true production; eq. 2 and Algorithm 1, masks from
  the stack). Decoding keeps that stack: each step may only expand its top, so every
  sequence that empties the stack is a derivation of the grammar; one still open after T
  steps is cut off and counted invalid.
- ``charvae``: tokens are the string's characters; a softmax over every character at
  every step; decoding reads characters up to the end token, and the string is valid when
  the grammar parses it.

The paper's code used 2, 3 and 4 filters in the three convolutions; here ``filters`` of
each (16 by default). Its posterior noise had standard deviation 0.01 and its KL term was
averaged over latent dimensions, which made its model nearly an autoencoder. Here the
posterior is the VAE's, and the KL term is weighted ``beta`` = 0.1, reached over the first
700 iterations: with beta 1 the posterior collapsed (KL 0.0001 nats after 2 epochs, z
unused), with 0.1 it carries about 20 nats.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .. import losses
from ..data.expressions import END, characters, encode_characters
from ..data.grammar import EXPRESSIONS, Grammar, GrammarError
from ..distributed import SyncBatchNorm1d
from ..errors import ConfigError, option
from .base import ModelConfig, adam, in_dtype
from .capabilities import Encoder, ImportanceWeighted, LatentSpace, Strings
from .contract import Batch, GenerativeModel, Player, register_model


class SequenceVAEConfig(ModelConfig):
    """Sizes, grammar and learning rate of a sequence VAE (the paper's: latent 25, 100 units)."""

    latent_dim: int = Field(25, ge=1, le=1024, description="size of z")
    hidden_dim: int = Field(
        100, ge=1, le=4096, description="units of the dense layers and of each GRU layer"
    )
    filters: int = Field(16, ge=1, le=1024, description="filters of each of the three convolutions")
    grammar: str = Field(
        EXPRESSIONS.strip(),
        description="the grammar in nltk notation (set from the data)",
        json_schema_extra={"cli": False},
    )
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    beta: float = Field(
        0.1,
        ge=0,
        description="weight of the KL term in the training loss (beta 1 collapsed "
        "the posterior here)",
    )
    kl_warmup: int = Field(
        700,
        ge=0,
        description="iterations over which the KL weight rises from 0 to beta "
        "(Bowman et al. 2016), 2 epochs of 90k at batch 256",
    )
    finish_in_time: bool = Field(
        True,
        description="gvae decoding: mask productions after which the derivation "
        "could not finish within the length limit",
    )


class SequenceEncoder(nn.Module):
    """One-hot tokens (B, T, V) -> (B, 2 * latent_dim): convolutions with kernels 2, 3, 4."""

    def __init__(self, length: int, vocabulary: int, filters: int, hidden: int, out_dim: int):
        super().__init__()
        if length < 7:
            raise ConfigError(
                "sequences must be at least 7 tokens long for the encoder's convolutions, "
                f"not {length}"
            )
        layers, channels = [], vocabulary
        for kernel in (2, 3, 4):
            layers += [nn.Conv1d(channels, filters, kernel), SyncBatchNorm1d(filters), nn.ReLU()]
            channels = filters
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Flatten(),
            nn.Linear(filters * (length - 6), hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(one_hot.transpose(1, 2)))


class SequenceDecoder(nn.Module):
    """z (B, latent_dim) -> logits (B, T, V): z's projection at every step of three GRUs."""

    def __init__(self, length: int, vocabulary: int, latent_dim: int, hidden: int):
        super().__init__()
        self.length = length
        self.project = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, num_layers=3, batch_first=True)
        self.out = nn.Linear(hidden, vocabulary)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        steps = self.project(z).unsqueeze(1).expand(-1, self.length, -1)
        return self.out(self.gru(steps.contiguous())[0])


class SequenceVAE(LatentSpace, Encoder, Strings, ImportanceWeighted, GenerativeModel):
    """What ``gvae`` and ``charvae`` share; a family names its tokens (``vocabulary``), their
    likelihood (``log_px``) and its decoding (``decode_ids``, ``strings_of``)."""

    reads = ("sequences",)
    summary = ("neg_elbo", "nats")
    units = {
        "elbo": "nats",
        "recon": "nats",
        "kl": "nats",
        "neg_elbo": "nats",
        "reconstructed": "fraction of expressions decoded exactly from their posterior mean",
    }
    evaluate_protocol = (
        "single-sample ELBO per expression; reconstructed: the greedy decoding of the "
        "posterior mean equals the expression"
    )
    report_curves = [
        (
            "Negative ELBO",
            "nats per expression",
            [
                ("vae/loss", "-ELBO (training batches)"),
                ("valid:neg_elbo", "-ELBO (validation split)"),
            ],
        ),
    ]

    def __init__(self, config: SequenceVAEConfig):
        super().__init__(config)
        if len(self.data_shape) != 1:
            raise ConfigError(
                f"a {self.family} reads token sequences (T,), not data of shape {self.data_shape}"
            )
        self.grammar = Grammar(config.grammar)
        self.length = self.data_shape[0]
        v = len(self.vocabulary)
        self.encoder = SequenceEncoder(
            self.length, v, config.filters, config.hidden_dim, 2 * config.latent_dim
        )
        self.decoder = SequenceDecoder(self.length, v, config.latent_dim, config.hidden_dim)

    @classmethod
    def configure(cls, values, streams):
        """The grammar of the data (a ConfigError if the config names another one)."""
        grammar = next(iter(streams.values())).grammar
        if grammar is None:
            raise ConfigError(
                f"a {cls.family} reads the strings of a grammar, "
                f"e.g. {option('data', 'expressions')}"
            )
        given = values.get("grammar")
        if given is not None and Grammar(given).names != Grammar(grammar).names:
            raise ConfigError(f"the grammar given to the {cls.family} differs from the data's")
        return values | {"grammar": grammar}

    def check_data(self, streams) -> None:
        super().check_data(streams)
        for dataset in streams.values():
            if dataset.vocabulary != self.vocabulary:
                raise ConfigError(
                    f"a {self.family} reads tokens {', '.join(self.vocabulary[:4])}, ...; the "
                    f"data's are {', '.join((dataset.vocabulary or ('none',))[:4])}, ... (another "
                    "grammar or encoding?)"
                )

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def vocabulary(self) -> tuple[str, ...]:
        raise NotImplementedError

    def preview(self, held_out, n: int, generator: torch.Generator | None = None) -> None:
        """No picture: the report lists decoded strings instead."""
        return

    def check_tokens(self, x: torch.Tensor) -> None:
        """Raise ConfigError unless x holds token ids of this model's vocabulary."""
        if x.dtype != torch.long or (
            x.numel() and (int(x.min()) < 0 or int(x.max()) >= len(self.vocabulary))
        ):
            raise ConfigError(
                f"a {self.family} reads int64 token ids in [0, {len(self.vocabulary)}); the data "
                "holds other values (another grammar or encoding?)"
            )

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): token ids (B, T) -> (mu, logvar), each (B, latent_dim)."""
        self.check_tokens(x)
        one_hot = F.one_hot(x, len(self.vocabulary)).to(torch.get_default_dtype())
        mu, logvar = self.encoder(one_hot).chunk(2, dim=1)
        return mu, logvar

    def log_px(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x|z) of token ids x (B, T) under logits (..., B, T, V): (..., B) nats."""
        raise NotImplementedError

    def elbo_terms(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"elbo", "recon", "kl"}, each (B,) nats per expression, from one reparameterised z."""
        mu, logvar = self.posterior(x)
        return losses.gaussian_elbo_terms(
            mu, logvar, lambda z: self.log_px(x, self.decoder(z)), generator, eps
        )

    def _loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(
            batch.x, generator, batch.randn(self.latent_dim, generator=generator)
        )
        weight = losses.kl_weight(self.config.beta, self.config.kl_warmup, batch.iteration)
        return {
            "loss": terms["recon"] + weight * terms["kl"],
            **{k: v.detach() for k, v in terms.items()},
        }

    def players(self) -> list[Player]:
        lr = self.config.lr
        return [Player("vae", self, self._loss, lambda p: adam(p, lr))]

    @torch.no_grad()
    def evaluate(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        terms = self.elbo_terms(batch.x, generator)
        terms["neg_elbo"] = -terms["elbo"]
        decoded = self.strings_of(self.decode_ids(self.decoder(self.encode(batch.x))))
        truth = self.strings_of(batch.x)
        terms["reconstructed"] = torch.tensor(
            [float(a is not None and a == b) for a, b in zip(decoded, truth)], device=batch.x.device
        )
        return terms

    def log_importance_weights(
        self,
        x: torch.Tensor,
        n: int,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
        decoder_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for n draws z_i ~ q(z|x): (n, B) nats (the IWAE bound's
        input, Burda et al. 2015, eq. 8); ``decoder_dtype``: the decoder alone runs in it
        under autocast (None: the model's dtype)."""
        mu, logvar = self.posterior(x)
        if eps is None:
            eps = torch.randn((n, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = losses.reparameterize(mu, logvar, eps=eps)
        flat = z.reshape(-1, z.shape[-1])
        logits = in_dtype(self.decoder, flat, decoder_dtype).view(n, len(x), self.length, -1)
        log_pz = losses.log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        return self.log_px(x, logits) + log_pz - losses.log_normal(z, mu, logvar)

    # --- decoding ----------------------------------------------------------------------

    def decode_ids(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-step logits (B, T, V) -> token ids (B, T): the most likely token at each step,
        or drawn from the softmax with a generator."""
        raise NotImplementedError

    def strings_of(self, ids: torch.Tensor) -> list[str | None]:
        """Token ids (B, T) -> strings, None where a sequence is not a string of the grammar."""
        raise NotImplementedError

    def ids_of(self, strings: list[str]) -> torch.Tensor:
        """Strings -> token ids (n, T). Raises GrammarError for a string outside the grammar."""
        raise NotImplementedError

    @staticmethod
    def _choose(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if generator is None:
            return logits.argmax(-1)
        probs = torch.softmax(logits.double(), -1)
        flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return flat.view(probs.shape[:-1])

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, latent_dim) -> token ids (n, T), decoded greedily."""
        return self.decode_ids(self.decoder(z))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> the posterior mean (B, latent_dim)."""
        return self.posterior(x)[0]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> the greedy decoding of their posterior mean (B, T)."""
        return self.generate(self.encode(x))

    @torch.no_grad()
    def encode_strings(self, strings: list[str]) -> torch.Tensor:
        return self.encode(self.ids_of(strings).to(self.device))

    @torch.no_grad()
    def decode_strings(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[str | None]:
        return self.strings_of(self.decode_ids(self.decoder(z.to(self.device)), generator))


@register_model
class GrammarVAE(SequenceVAE):
    """The Grammar VAE on production-id sequences (``expressions`` with encoding productions)."""

    family = "gvae"
    title = "Grammar VAE over production sequences of strings (Kusner et al. 2017)"
    Config = SequenceVAEConfig

    def __init__(self, config: SequenceVAEConfig):
        super().__init__(config)
        masks, lhs = self.grammar.masks()
        self.register_buffer("masks", masks, persistent=False)
        self.register_buffer("lhs", lhs, persistent=False)

    @classmethod
    def default_streams(cls, data):
        return {
            "data": data.model_copy(update={"options": data.options | {"encoding": "productions"}})
        }

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.grammar.names

    def log_px(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Each step's softmax over the productions of the left side of its true production
        (the stack's top in the true derivation); after the end only the end id is allowed,
        so padding costs nothing."""
        allowed = self.masks[self.lhs[x]]  # (B, T, V)
        log_probs = torch.log_softmax(logits.masked_fill(~allowed, -math.inf), -1)
        picked = log_probs.gather(-1, x.expand(*logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
        return picked.sum(-1)

    def decode_ids(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Kusner et al.'s Algorithm 1: a stack of non-terminals starts at the start symbol;
        step t masks the logits to the productions of the stack's top, picks one, and
        replaces the top by its non-terminals (leftmost on top); an empty stack allows only
        the end id. With ``finish_in_time`` (the default), a production is also masked when
        the stack could then no longer be finished in the steps left, so no derivation is
        cut off at the length limit (an addition to the paper's decoder)."""
        grammar, length = self.grammar, logits.shape[1]
        stacks = [grammar.start_stack() for _ in range(len(logits))]
        out = torch.full(logits.shape[:2], grammar.end, dtype=torch.long)
        for t in range(length):
            allowed = torch.zeros(len(logits), len(self.vocabulary), dtype=torch.bool)
            for i, stack in enumerate(stacks):
                if self.config.finish_in_time:
                    options = grammar.finishing(stack, length - t, grammar.costs) or [grammar.end]
                    allowed[i, options] = True
                else:
                    allowed[i] = self.masks[grammar.stack_row(stack)].cpu()
            choice = self._choose(
                logits[:, t].masked_fill(~allowed.to(logits.device), -math.inf), generator
            )
            for i, c in enumerate(choice.tolist()):
                out[i, t] = c
                stacks[i] = grammar.expand(stacks[i], c)
        return out

    def strings_of(self, ids: torch.Tensor) -> list[str | None]:
        return [self.grammar.derive(row) for row in ids.tolist()]

    def ids_of(self, strings: list[str]) -> torch.Tensor:
        ids = torch.full((len(strings), self.length), self.grammar.end, dtype=torch.long)
        for i, s in enumerate(strings):
            derivation = self.grammar.parse(s)
            if len(derivation) > self.length:
                raise GrammarError(
                    f"{s!r} needs {len(derivation)} productions, more than this model's "
                    f"{self.length}",
                    0,
                )
            ids[i, : len(derivation)] = torch.tensor(derivation)
        return ids


@register_model
class CharacterVAE(SequenceVAE):
    """The character VAE baseline on the same expressions (encoding characters)."""

    family = "charvae"
    title = "character VAE over strings, the Grammar VAE's baseline"
    Config = SequenceVAEConfig

    @classmethod
    def default_streams(cls, data):
        return {
            "data": data.model_copy(update={"options": data.options | {"encoding": "characters"}})
        }

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return characters(self.grammar)

    def log_px(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """A softmax over every character at every step, the end token included."""
        picked = torch.log_softmax(logits, -1).gather(
            -1, x.expand(*logits.shape[:-1]).unsqueeze(-1)
        )
        return picked.squeeze(-1).sum(-1)

    def decode_ids(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self._choose(logits, generator)

    def strings_of(self, ids: torch.Tensor) -> list[str | None]:
        vocabulary, out = self.vocabulary, []
        for row in ids.tolist():
            chars = [vocabulary[i] for i in row]
            string = "".join(chars[: chars.index(END)] if END in chars else chars)
            try:
                self.grammar.parse(string)
            except GrammarError:
                string = None
            out.append(string)
        return out

    def ids_of(self, strings: list[str]) -> torch.Tensor:
        clean = ["".join(s.split()) for s in strings]
        for s in strings:
            self.grammar.parse(s)  # a string outside the grammar is refused, with its position
        too_long = [s for s in clean if len(s) > self.length]
        if too_long:
            raise GrammarError(
                f"{too_long[0]!r} has {len(too_long[0])} characters, more than this model's "
                f"{self.length}",
                self.length,
            )
        return encode_characters(clean, self.vocabulary, self.length)[0]
