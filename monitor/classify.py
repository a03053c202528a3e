"""Device classification: which kind of device each MAC is, how sure, and why.

Every signature (:mod:`monitor.signatures`) that matches a device adds weighted evidence to its
category. Per category the weights combine as a noisy-OR, ``score = 1 - prod(1 - weight)``, so
independent clues add up without ever reaching 1. The best-scoring category wins with
``confidence = score * (1 - rival_score)``, where the rival is the best other category counting
only conflicting evidence: facts that do not also support the winner (an OUI of a vendor making
speakers and TVs is not evidence against speaker). Conflicting evidence lowers confidence
instead of flipping the answer.

Guarantees:

- :meth:`Classifier.classify` is a pure function of the device's facts (vendor, hostname, DHCP,
  mDNS, SSDP, user agents, domains, TLS fingerprints) and the loaded signatures; it never reads or
  writes ``label`` or ``user_category``, the user's word.
- A device whose best confidence is below ``min_confidence`` is ``unknown`` with confidence 0,
  its evidence still listed ("unknown is honest").
- Hysteresis: :meth:`Classifier.apply` changes an already classified device to another category
  only when the new winner's score beats the current category's score by ``switch_margin`` and
  its own confidence reaches ``min_confidence``; until then the current category stays, with its
  confidence lowered by the competing evidence (a classified device never falls back to
  unknown while its category keeps any evidence).
- ``evidence`` lists the facts behind the chosen category first (strongest first), then the facts
  that pointed elsewhere (``... (suggests camera)``) and hints (``... (Espressif module)``).
- Classification runs on device events only (:class:`ClassifyHandler`), never per packet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.signatures import (
    Facts,
    Signature,
    SignatureHit,
    check_signatures,
    default_signature_paths,
    load_signatures,
)

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.events import DeviceSeen, DeviceUpdated, Shutdown, Tick
    from monitor.model import Device

__all__ = ["Classification", "Classifier", "ClassifyHandler", "check_signatures"]

UNKNOWN = "unknown"
_MAX_VENDOR_VERDICTS = 1024


@dataclass(slots=True)
class Classification:
    """The verdict on one device. ``scores`` maps each category with evidence to its score."""

    category: str
    confidence: float
    name: str | None
    evidence: list[str]
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Verdict:
    """A classification plus how it was reached, for :meth:`Classifier.explain`."""

    result: Classification
    hits: list[SignatureHit]
    best: str | None
    runner_up: tuple[str, float] | None
    kept: bool


class Classifier:
    """Classifies devices with the signatures found at ``paths``.

    ``paths`` None means :func:`~monitor.signatures.default_signature_paths` (the builtin
    ``rules/signatures`` plus ``/etc/micwatch/signatures.d`` and the user's
    ``~/.config/micwatch/signatures.d`` when present). Raises
    :class:`~monitor.signatures.SignatureError` when a signature file is invalid.
    """

    def __init__(
        self,
        paths: list[Path] | None = None,
        *,
        min_confidence: float = 0.35,
        switch_margin: float = 0.15,
    ) -> None:
        self.paths = default_signature_paths() if paths is None else list(paths)
        self.signatures: list[Signature] = load_signatures(self.paths)
        self.min_confidence = min_confidence
        self.switch_margin = switch_margin
        # Verdicts on unclassified devices whose only fact is their vendor, by vendor: a new
        # device usually has nothing else yet, and a flood of spoofed MACs is thousands of them.
        self._by_vendor: dict[str | None, Classification] = {}

    @classmethod
    def from_config(cls, config: Config) -> Classifier:
        """A classifier with the ``classify.*`` options: default paths plus extra signatures."""
        extra = [Path(p).expanduser() for p in config["classify.signatures"]]
        return cls(
            default_signature_paths() + extra,
            min_confidence=config["classify.min_confidence"],
            switch_margin=config["classify.switch_margin"],
        )

    # -- the verdict ---------------------------------------------------------------------------

    def _hits(self, device: Device) -> list[SignatureHit]:
        facts = Facts(device)
        hits = [hit for sig in self.signatures if (hit := sig.match(facts)) is not None]
        hits.sort(key=lambda h: (-h.signature.weight, h.signature.id))
        return hits

    def _verdict(self, device: Device, current: str | None) -> _Verdict:
        hits = self._hits(device)
        scores = _scores(hits)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        best = ranked[0][0] if ranked else None
        chosen, kept = best, False
        confidence, runner_up = _confidence(hits, scores, best)
        best_score = scores[best] if best else 0.0
        current_score = scores.get(current, 0.0) if current else 0.0
        sticky = current != UNKNOWN and current_score > 0.0
        if (
            sticky
            and current != best
            and (
                best_score < current_score + self.switch_margin or confidence < self.min_confidence
            )
        ):
            chosen, kept = current, True
            confidence, runner_up = _confidence(hits, scores, current)
        if confidence < self.min_confidence and not (sticky and chosen == current):
            chosen, confidence = UNKNOWN, 0.0
        category = chosen or UNKNOWN
        result = Classification(
            category=category,
            confidence=round(confidence, 3),
            name=_name(device, hits, category),
            evidence=_evidence_lines(hits, category),
            scores={c: round(s, 3) for c, s in ranked},
        )
        return _Verdict(result, hits, best, runner_up, kept)

    def classify(self, device: Device) -> Classification:
        """The classification of ``device`` from its facts alone (no hysteresis)."""
        return self._verdict(device, None).result

    def apply(self, device: Device) -> bool:
        """Classify ``device`` and store category, confidence, name and evidence on it, keeping
        its current category unless the new winner beats it by ``switch_margin`` with at least
        ``min_confidence`` of its own (the module's hysteresis guarantee). Returns True
        when any of those four changed. Never touches ``label`` or ``user_category``."""
        if device.category == UNKNOWN and _vendor_only(device):
            result = self._by_vendor.get(device.vendor)
            if result is None:
                if len(self._by_vendor) >= _MAX_VENDOR_VERDICTS:
                    self._by_vendor.clear()
                result = self._by_vendor[device.vendor] = self._verdict(device, UNKNOWN).result
        else:
            result = self._verdict(device, device.category).result
        new = (result.category, result.confidence, result.name, list(result.evidence))
        if new == (device.category, device.confidence, device.name, device.evidence):
            return False
        device.category, device.confidence, device.name, device.evidence = new
        return True

    def explain(self, device: Device) -> list[str]:
        """Readable lines for ``micwatch devices --explain MAC``: every matching signature with
        its weight and evidence, the per-category scores and why the winner won."""
        verdict = self._verdict(device, device.category)
        result = verdict.result
        lines = [f"device {device.mac}" + (f" ({device.vendor})" if device.vendor else "")]
        if device.user_category or device.label:
            lines.append(
                f"the user's word: label {device.label!r}, category {device.user_category!r} "
                "(overrides the guess below)"
            )
        if not verdict.hits:
            lines.append("no signature matches: unknown")
            return lines
        lines.append(f"{len(verdict.hits)} matching signatures:")
        for hit in verdict.hits:
            sig = hit.signature
            lines.append(
                f"  {sig.weight:.2f}  {sig.category:<9} {sig.family}: {hit.evidence}  "
                f"[{sig.id} at {sig.source}]"
            )
        if result.scores:
            lines.append(
                "scores (noisy-OR of weights): "
                + ", ".join(f"{c} {s:.3f}" for c, s in result.scores.items())
            )
        if verdict.runner_up:
            lines.append(
                f"conflicting evidence: {verdict.runner_up[0]} {verdict.runner_up[1]:.3f} "
                "(from facts that do not also support the winner)"
            )
        lines.append(_why(verdict, device.category, self.min_confidence, self.switch_margin))
        if result.name:
            lines.append(f"name: {result.name}")
        return lines


class ClassifyHandler:
    """Handler for the chain, right after the device inventory: classifies a device when it
    appears, and again once per second of capture time while its identifying facts change
    (a burst of updates, such as the names of a first boot, costs one classification, not one
    each); never per packet. Pending devices are classified at the next :class:`Tick` before
    detection runs (this handler comes first) and at :class:`Shutdown`."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self._pending: dict[str, Device] = {}

    def on_device_seen(self, event: DeviceSeen) -> None:
        self.classifier.apply(event.device)

    def on_device_updated(self, event: DeviceUpdated) -> None:
        self._pending[event.device.mac] = event.device

    def on_tick(self, _event: Tick) -> None:
        self._flush()

    def on_shutdown(self, _event: Shutdown) -> None:
        self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for device in pending.values():
            self.classifier.apply(device)


def _vendor_only(device: Device) -> bool:
    """Whether the vendor is the device's only fact that signatures read (see
    :class:`~monitor.signatures.Facts`): its verdict is then a function of the vendor alone."""
    return not (
        device.hostname
        or device.dhcp_fingerprint
        or device.dhcp_vendor_class
        or device.mdns_names
        or device.services
        or device.mdns_txt
        or device.ssdp_servers
        or device.user_agents
        or device.domains
        or device.tls_fingerprints
    )


def _scores(hits: Iterable[SignatureHit]) -> dict[str, float]:
    """Noisy-OR of the weights per category; hints (``unknown``) score nothing."""
    miss: dict[str, float] = {}
    for hit in hits:
        category = hit.signature.category
        if category != UNKNOWN:
            miss[category] = miss.get(category, 1.0) * (1.0 - hit.signature.weight)
    return {category: 1.0 - product for category, product in miss.items()}


def _confidence(
    hits: list[SignatureHit], scores: dict[str, float], category: str | None
) -> tuple[float, tuple[str, float] | None]:
    """``score * (1 - rival score)`` for ``category`` and its rival; 0 for no category."""
    if category is None:
        return 0.0, None
    rival = _rival(hits, category)
    return scores[category] * (1.0 - (rival[1] if rival else 0.0)), rival


def _rival(hits: list[SignatureHit], chosen: str) -> tuple[str, float] | None:
    """The strongest other category counting only conflicting evidence: facts that do not also
    support ``chosen`` (a vendor that makes speakers and TVs does not argue against speaker)."""
    support = {hit.evidence for hit in hits if hit.signature.category == chosen}
    rivals = _scores(
        hit for hit in hits if hit.signature.category != chosen and hit.evidence not in support
    )
    if not rivals:
        return None
    return min(rivals.items(), key=lambda item: (-item[1], item[0]))


def _name(device: Device, hits: list[SignatureHit], category: str) -> str | None:
    """From the strongest signature of the chosen category whose name template renders, else
    from the strongest matching signature of any category (a brand is still true)."""
    ordered = [h for h in hits if h.signature.category == category]
    ordered += [h for h in hits if h.signature.category != category]
    for hit in ordered:
        name = hit.signature.render_name(device, hit.groups)
        if name:
            return name
    return None


def _evidence_lines(hits: list[SignatureHit], category: str) -> list[str]:
    """The chosen category's facts, then conflicting facts and hints, strongest first."""
    lines = [h.evidence for h in hits if h.signature.category == category != UNKNOWN]
    support = set(lines)
    for hit in hits:
        sig_category = hit.signature.category
        if sig_category == UNKNOWN and hit.evidence not in support:
            lines.append(f"{hit.evidence} ({hit.signature.family})")
        elif sig_category != category and hit.evidence not in support:
            lines.append(f"{hit.evidence} (suggests {sig_category})")
    return list(dict.fromkeys(lines))


def _why(verdict: _Verdict, current: str, min_confidence: float, margin: float) -> str:
    result = verdict.result
    scores = result.scores
    if verdict.kept:
        best = str(verdict.best)
        return (
            f"decision: stays {result.category} (confidence {result.confidence:.3f}): a switch to "
            f"{best} ({scores[best]:.3f}) needs a score {margin:.2f} above "
            f"{result.category}'s {scores[result.category]:.3f} and a confidence of at least "
            f"{min_confidence:.2f}"
        )
    if result.category == UNKNOWN:
        if verdict.best is None:
            return "decision: unknown: only hints, no category evidence"
        best = scores[verdict.best]
        rival = verdict.runner_up
        conf = best * (1.0 - (rival[1] if rival else 0.0))
        return (
            f"decision: unknown: best {verdict.best} {best:.3f}"
            + (f" against {rival[0]} {rival[1]:.3f}" if rival else "")
            + f" gives confidence {conf:.3f}, below min_confidence {min_confidence:.2f}"
        )
    rival = verdict.runner_up
    text = (
        f"decision: {result.category} with confidence {result.confidence:.3f} = "
        f"{scores[result.category]:.3f} x (1 - "
        + (f"{rival[1]:.3f} for {rival[0]})" if rival else "0, no rival)")
    )
    if current not in (UNKNOWN, result.category):
        text += f"; replaces {current} (beaten by at least {margin:.2f})"
    elif result.confidence < min_confidence:
        text += f"; below min_confidence {min_confidence:.2f} but already {current}: it stays"
    return text
