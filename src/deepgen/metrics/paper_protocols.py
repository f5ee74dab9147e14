"""Which `deepgen eval` numbers follow a paper's protocol, and so may sit beside its table.

A paper's number is only comparable with one computed the same way: the same data and
the same counts. `deepgen eval --n 2000` computes the Parzen estimate with 2,000 samples
as kernels and 2,000 test images, which moves it by tens of nats from Goodfellow et al.'s
10,000 and 10,000; such a result is labelled as another protocol in eval.json
(``paper_protocol``), and :func:`check_paper_protocol` refuses to compare it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class PaperProtocol:
    """What a paper's number was computed on: its dataset and counts."""

    paper: str
    data: str
    counts: dict[str, int]


PAPER_PROTOCOLS = {
    "parzen": PaperProtocol(
        "Goodfellow et al. 2014 (Table 1)", "mnist", {"samples": 10_000, "test images": 10_000}
    ),
    "nll": PaperProtocol(
        "Burda et al. 2015 (Table 1)", "mnist", {"test images": 10_000, "k": 5000}
    ),
}


def counts_used(name: str, n: int, test_images: int, k: int) -> dict[str, int]:
    """The counts of one evaluation, under the names :data:`PAPER_PROTOCOLS` uses."""
    if name == "parzen":
        return {"samples": n, "test images": test_images}
    return {"test images": test_images, "k": k}


def label(name: str, value: dict, data: str, used: dict[str, int]) -> None:
    """Record in ``value`` whether the metric ``name`` followed its paper's protocol:
    ``value["paper_protocol"] = {"paper", "follows", "deviations"}``; a result that did not
    gets its protocol text ended by what differs. Metrics without a paper's protocol are
    left alone."""
    protocol = PAPER_PROTOCOLS.get(name)
    if protocol is None:
        return
    deviations = [
        f"{key} = {used[key]:,}, not {want:,}"
        if len(key) == 1
        else f"{used[key]:,} {key}, not {want:,}"
        for key, want in protocol.counts.items()
        if used.get(key) != want
    ]
    if data != protocol.data:
        deviations.append(f"data {data}, not {protocol.data}")
    if value.get("precision", "float32") != "float32":
        deviations.append(f"decoder in {value['precision']}, not float32")
    value["paper_protocol"] = {
        "paper": protocol.paper,
        "follows": not deviations,
        "deviations": deviations,
    }
    if deviations:
        value["protocol"] = (
            f"{value.get('protocol', '')}. NOT {protocol.paper}'s protocol ("
            + "; ".join(deviations)
            + "): do not compare with the paper's table"
        )


def check_paper_protocol(entry: dict, name: str) -> str:
    """The paper whose table ``entry`` (a metric of eval.json) may be compared with.

    Raises:
        ConfigError: the metric has no paper's protocol, or ``entry`` did not follow it
            (the deviations are named), or it was computed before results were labelled.
    """
    protocol = PAPER_PROTOCOLS.get(name)
    if protocol is None:
        raise ConfigError(f"the {name} metric has no paper's protocol to compare with")
    record = entry.get("paper_protocol")
    if record is None:
        raise ConfigError(
            f"this {name} result does not say which protocol it followed; run deepgen eval again"
        )
    if not record["follows"]:
        raise ConfigError(
            f"this {name} result used " + "; ".join(record["deviations"]) + f", so it cannot "
            f"be compared with {protocol.paper}: evaluate with the protocol's counts"
        )
    return protocol.paper
