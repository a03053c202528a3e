"""Device signatures as data: loading, schema checking and matching of ``rules/signatures/*.yaml``.

A signature file is a YAML list of signatures::

    - id: tplink-kasa-plug-hostname          # unique, lowercase letters, digits, . _ -
      family: TP-Link Kasa                    # brand or product family, for people
      category: plug                          # one of CATEGORIES; "unknown" = a hint only
      weight: 0.9                             # evidence strength, 0 < weight < 1
      name: "TP-Link Kasa {model}"            # optional template, or a list tried in order
      match:                                  # matchers over the device facts, ANDed
        hostname: "re:^(?P<model>HS1\\d\\d)"  # a list value means any of

Pattern syntax: ``re:...`` is a case-insensitive regular expression searched in the fact (named
groups feed the name template); anything else is a case-insensitive glob matching the whole fact,
except ``vendor`` (a plain string is a substring of the OUI organisation), ``domain`` (a leading
``*.`` matches the domain itself and any subdomain, another ``*`` stays inside one label) and
``dhcp_fingerprint`` (the exact option-55 list ``1,3,6,15``, or a prefix ``1,3,6,*``).

Authoring: a fact that fits several kinds of device (an OUI of a maker of speakers and TVs) gets
one signature per kind, with small weights; the classifier then never counts it against any of
them. A lone fact of a multi-product maker should weigh below ``classify.min_confidence`` (0.35 by
default) so that, alone, it stays a hint and the device stays unknown.

Guarantees: :func:`load_signatures` returns compiled signatures or raises
:class:`SignatureError` listing every problem found, each as ``FILE:LINE: ...`` naming the
signature and the field; it never returns a half-checked set. Matching never raises and reads
only the device's facts (never ``label``/``user_category``). A signature file in a later root
(a user's ``signatures.d``) replaces a signature with the same id from an earlier root; the same
id twice within one root is an error.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from monitor.errors import MicwatchError

if TYPE_CHECKING:
    from monitor.model import Device

CATEGORIES: tuple[str, ...] = (
    "speaker", "camera", "toy", "tv", "console", "plug", "light", "hub", "sensor", "appliance",
    "meter", "printer", "network", "phone", "computer", "unknown",
)  # fmt: skip
"""Device categories. ``console`` (game consoles: they carry microphones and cameras for voice
chat) is its own category rather than ``tv``; tablets count as ``phone``; thermostats and smoke
alarms as ``sensor``; plugs include wall switches. ``unknown`` in a signature marks a hint: it
adds evidence (and may name the device) but scores no category."""

MATCH_KINDS: tuple[str, ...] = (
    "vendor", "hostname", "dhcp_vendor_class", "dhcp_fingerprint", "mdns_service", "mdns_txt",
    "mdns_name", "ssdp_server", "user_agent", "tls_fingerprint", "domain",
)  # fmt: skip
"""Matcher kinds, cheapest first: matching evaluates them in this order and stops at a miss."""

_FIELDS = ("id", "family", "category", "weight", "name", "match")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_EVIDENCE_PREFIX = {
    "vendor": "OUI ",
    "hostname": "DHCP hostname ",
    "dhcp_vendor_class": "DHCP vendor class ",
    "dhcp_fingerprint": "DHCP options ",
    "mdns_service": "mDNS ",
    "mdns_txt": "mDNS ",
    "mdns_name": "mDNS name ",
    "ssdp_server": "SSDP server ",
    "user_agent": "User-Agent ",
    "tls_fingerprint": "TLS fingerprint ",
    "domain": "contacts ",
}


class SignatureError(MicwatchError):
    """Signature files are invalid; ``errors`` holds one ``FILE:LINE: ...`` line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid device signatures:\n" + "\n".join(errors))
        self.errors = errors


def builtin_signature_dir() -> Path:
    """The signatures shipped with micwatch (``rules/signatures``)."""
    return Path(__file__).resolve().parent.parent / "rules" / "signatures"


def default_signature_paths() -> list[Path]:
    """The builtin signatures, then ``/etc/micwatch/signatures.d`` and the user's
    ``$XDG_CONFIG_HOME/micwatch/signatures.d`` (default ``~/.config``) when they exist."""
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    extra = [Path("/etc/micwatch/signatures.d"), Path(config_home) / "micwatch" / "signatures.d"]
    return [builtin_signature_dir(), *(p for p in extra if p.is_dir())]


# --- facts ----------------------------------------------------------------------------------


class Facts:
    """The facts of one device, normalised and sorted once per classification."""

    __slots__ = ("domains_by_key", "txt", "values")

    def __init__(self, device: Device) -> None:
        services = {s.lower().rstrip(".").removesuffix(".local") for s in device.services}
        fingerprint = re.sub(r"\s+", "", device.dhcp_fingerprint or "")
        self.values: dict[str, tuple[str, ...]] = {
            "vendor": (device.vendor,) if device.vendor else (),
            "hostname": (device.hostname,) if device.hostname else (),
            "dhcp_vendor_class": (device.dhcp_vendor_class,) if device.dhcp_vendor_class else (),
            "dhcp_fingerprint": (fingerprint,) if fingerprint else (),
            "mdns_service": tuple(sorted(services)),
            "mdns_name": tuple(sorted(device.mdns_names)),
            "ssdp_server": tuple(sorted(device.ssdp_servers)),
            "user_agent": tuple(sorted(device.user_agents)),
            "tls_fingerprint": tuple(sorted(device.tls_fingerprints)),
            "domain": tuple(sorted(d.lower().rstrip(".") for d in device.domains)),
        }
        self.txt = {key.lower(): value for key, value in device.mdns_txt.items()}
        self.domains_by_key: dict[str, list[str]] = {}
        for domain in self.values["domain"]:
            self.domains_by_key.setdefault(_domain_key(domain), []).append(domain)


def _domain_key(domain: str) -> str:
    """The last two labels: the index under which domains and domain patterns meet."""
    return ".".join(domain.rsplit(".", 2)[-2:])


def _pattern_domain_key(text: str) -> str | None:
    """The index key every domain matching pattern ``text`` has, or None when not fixed
    (a regex, or a wildcard within the last two labels)."""
    if text.startswith("re:"):
        return None
    labels = text.lower().rstrip(".").removeprefix("*.").split(".")
    wild = [i for i, label in enumerate(labels) if "*" in label]
    if wild:
        labels = labels[wild[-1] + 1 :]
    return ".".join(labels[-2:]) if len(labels) >= 2 else None


# --- patterns and matchers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled pattern; ``search`` is True for ``re:`` patterns (else a full match)."""

    text: str
    regex: re.Pattern[str]
    search: bool

    def match(self, value: str) -> re.Match[str] | None:
        return self.regex.search(value) if self.search else self.regex.fullmatch(value)


def _domain_regex(text: str) -> str:
    text = text.lower().rstrip(".")
    head = ""
    if text.startswith("*."):
        head, text = r"(?:[^.]+\.)*", text[2:]
    return head + re.escape(text).replace(r"\*", "[^.]*")


def _fingerprint_regex(text: str) -> str:
    text = re.sub(r"\s+", "", text)
    if text.endswith(",*"):
        return re.escape(text[:-2]) + r"(?:,.*)?"
    return re.escape(text)


def compile_pattern(kind: str, text: str) -> Pattern:
    """Compile ``text`` as a pattern for matcher ``kind``; raises ``re.error`` when invalid."""
    if text.startswith("re:"):
        return Pattern(text, re.compile(text[3:], re.IGNORECASE), True)
    if kind == "vendor":
        return Pattern(text, re.compile(re.escape(text), re.IGNORECASE), True)
    if kind == "domain":
        return Pattern(text, re.compile(_domain_regex(text), re.IGNORECASE), False)
    if kind == "dhcp_fingerprint":
        return Pattern(text, re.compile(_fingerprint_regex(text)), False)
    if kind == "mdns_service":
        text = text.lower().rstrip(".").removesuffix(".local")
    return Pattern(text, re.compile(fnmatch.translate(text), re.IGNORECASE), False)


@dataclass(frozen=True, slots=True)
class Hit:
    """What one matcher found: the evidence text and the named groups it captured."""

    kind: str
    text: str
    groups: dict[str, str]


@dataclass(frozen=True, slots=True)
class Matcher:
    """Matches one kind of fact against any of ``patterns`` (``mdns_txt``: every key in
    ``txt`` must match one of its patterns)."""

    kind: str
    patterns: tuple[Pattern, ...] = ()
    txt: tuple[tuple[str, tuple[Pattern, ...]], ...] = ()
    domain_keys: tuple[str, ...] | None = None

    def _values(self, facts: Facts) -> Iterable[str]:
        if self.domain_keys is None:
            return facts.values[self.kind]
        index = facts.domains_by_key
        if len(self.domain_keys) == 1:
            return index.get(self.domain_keys[0], ())
        return sorted(d for key in self.domain_keys for d in index.get(key, ()))

    def hit(self, facts: Facts) -> Hit | None:
        if self.kind == "mdns_txt":
            return self._hit_txt(facts.txt)
        found: Hit | None = None
        extra = 0
        for value in self._values(facts):
            for pattern in self.patterns:
                match = pattern.match(value)
                if match is None:
                    continue
                if found is not None:
                    extra += 1
                    break
                found = Hit(self.kind, value, _groups(match))
                if self.kind != "domain":
                    return found
                break
        if found is not None and extra:
            return Hit(found.kind, f"{found.text} (+{extra} more)", found.groups)
        return found

    def _hit_txt(self, txt: dict[str, str]) -> Hit | None:
        parts: list[str] = []
        groups: dict[str, str] = {}
        for key, patterns in self.txt:
            value = txt.get(key)
            if value is None:
                return None
            match = next((m for p in patterns if (m := p.match(value)) is not None), None)
            if match is None:
                return None
            parts.append(f"{key}={value}")
            groups.update(_groups(match))
        return Hit("mdns_txt", " ".join(parts), groups)


def _groups(match: re.Match[str]) -> dict[str, str]:
    return {k: v for k, v in match.groupdict().items() if v}


# --- signatures -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureHit:
    """A signature that matched a device: its evidence line and the values for its name."""

    signature: Signature
    evidence: str
    groups: dict[str, str]


@dataclass(frozen=True, slots=True)
class Signature:
    """One compiled signature; ``source`` is ``FILE:LINE`` of its entry."""

    id: str
    family: str
    category: str
    weight: float
    names: tuple[str, ...]
    matchers: tuple[Matcher, ...]
    source: str
    _order: tuple[Matcher, ...] = field(repr=False, compare=False, default=())

    def match(self, facts: Facts) -> SignatureHit | None:
        """The hit when every matcher matches ``facts``, else None."""
        hits: dict[str, Hit] = {}
        for matcher in self._order:
            hit = matcher.hit(facts)
            if hit is None:
                return None
            hits[matcher.kind] = hit
        groups: dict[str, str] = {}
        for hit in hits.values():
            groups.update(hit.groups)
        return SignatureHit(self, _evidence([hits[m.kind] for m in self.matchers]), groups)

    def render_name(self, device: Device, groups: dict[str, str]) -> str | None:
        """The first name template whose placeholders all have values, filled in."""
        values = dict(groups)
        if device.hostname:
            values["hostname"] = device.hostname
        if device.vendor:
            values["vendor"] = device.vendor
        for key, value in device.mdns_txt.items():
            if value:
                values["txt." + key.lower()] = value
        for template in self.names:
            wanted = _PLACEHOLDER.findall(template)
            if all(values.get(name) for name in wanted):
                return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template).strip()
        return None


def _evidence(hits: list[Hit]) -> str:
    """``mDNS _googlecast._tcp md=Google Nest Mini`` + ``OUI Google, Inc.``: one readable line."""
    parts: list[str] = []
    last_prefix = None
    for hit in hits:
        prefix = _EVIDENCE_PREFIX[hit.kind]
        if prefix == last_prefix and prefix == "mDNS ":
            parts[-1] += " " + hit.text
        else:
            parts.append(prefix + hit.text)
        last_prefix = prefix
    return " + ".join(parts)


# --- loading and schema checking ------------------------------------------------------------


class _Problems:
    """Collects ``FILE:LINE: message`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: Path, node: yaml.Node | None, message: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.lines.append(f"{path}{line}: {message}")


def _scalar_text(node: yaml.Node) -> str | None:
    """The text of a plain string scalar, else None (numbers, booleans, nulls, collections)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return node.value
    return None


def _mapping(
    node: yaml.MappingNode, path: Path, problems: _Problems, where: str
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """Key text -> (key node, value node); reports non-text and duplicate keys."""
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = _scalar_text(key_node)
        if key is None:
            problems.add(path, key_node, f"{where}: keys must be text")
        elif key in out:
            problems.add(path, key_node, f"{where}: field '{key}' is given twice")
        else:
            out[key] = (key_node, value_node)
    return out


def _patterns(
    kind: str, node: yaml.Node, path: Path, problems: _Problems, where: str
) -> tuple[Pattern, ...]:
    """A pattern or a non-empty list of patterns, compiled; problems reported."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    if not items:
        problems.add(path, node, f"{where}: an empty list matches nothing; give a pattern")
    out: list[Pattern] = []
    for item in items:
        text = _scalar_text(item)
        if not text:
            problems.add(path, item, f"{where}: must be a text pattern (quote numbers)")
            continue
        try:
            out.append(compile_pattern(kind, text))
        except re.error as exc:
            problems.add(path, item, f"{where}: invalid regular expression {text!r}: {exc}")
    return tuple(out)


def _matchers(
    node: yaml.Node, path: Path, problems: _Problems, where: str
) -> tuple[tuple[Matcher, ...], set[str]]:
    """The matchers of a ``match`` mapping and the named groups their regexes define."""
    if not isinstance(node, yaml.MappingNode) or not node.value:
        problems.add(path, node, f"{where}: field 'match' must map matcher kinds to patterns")
        return (), set()
    matchers: list[Matcher] = []
    for kind, (key_node, value_node) in _mapping(node, path, problems, where).items():
        field_where = f"{where}: field 'match.{kind}'"
        if kind not in MATCH_KINDS:
            problems.add(
                path, key_node, f"{field_where} is unknown; matchers are " + ", ".join(MATCH_KINDS)
            )
        elif kind == "mdns_txt":
            if not isinstance(value_node, yaml.MappingNode) or not value_node.value:
                problems.add(path, value_node, f"{field_where}: must map TXT keys to patterns")
                continue
            pairs = _mapping(value_node, path, problems, field_where)
            txt = tuple(
                (key.lower(), _patterns(kind, v, path, problems, f"{field_where}.{key}"))
                for key, (_, v) in pairs.items()
            )
            matchers.append(Matcher(kind, txt=txt))
        else:
            patterns = _patterns(kind, value_node, path, problems, field_where)
            keys = {_pattern_domain_key(p.text) for p in patterns} if kind == "domain" else {None}
            fixed = sorted(k for k in keys if k is not None)
            domain_keys = tuple(fixed) if len(fixed) == len(keys) else None
            matchers.append(Matcher(kind, patterns, domain_keys=domain_keys))
    groups = {
        name
        for m in matchers
        for p in (*m.patterns, *(p for _, ps in m.txt for p in ps))
        for name in p.regex.groupindex
    }
    return tuple(matchers), groups


def _names(
    node: yaml.Node, groups: set[str], path: Path, problems: _Problems, where: str
) -> tuple[str, ...]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: list[str] = []
    for item in items:
        text = _scalar_text(item)
        if not text:
            problems.add(path, item, f"{where}: field 'name' must be a text template or a list")
            continue
        if text.count("{") != text.count("}") or len(_PLACEHOLDER.findall(text)) != text.count("{"):
            problems.add(path, item, f"{where}: field 'name' has unbalanced braces: {text!r}")
            continue
        for placeholder in _PLACEHOLDER.findall(text):
            known = (
                placeholder in ("hostname", "vendor")
                or placeholder in groups
                or (placeholder.startswith("txt.") and len(placeholder) > 4)
            )
            if not known:
                problems.add(
                    path,
                    item,
                    f"{where}: field 'name' uses {{{placeholder}}}, which is neither hostname, "
                    "vendor, txt.KEY nor a named group of this signature's regexes",
                )
        out.append(text)
    return tuple(out)


def _signature(node: yaml.Node, path: Path, index: int, problems: _Problems) -> Signature | None:
    before = len(problems.lines)
    where = f"signature #{index + 1}"
    if not isinstance(node, yaml.MappingNode):
        problems.add(path, node, f"{where}: must be a mapping with fields " + ", ".join(_FIELDS))
        return None
    fields = _mapping(node, path, problems, where)
    sig_id = _scalar_text(fields["id"][1]) if "id" in fields else None
    if sig_id is not None:
        where = f"signature '{sig_id}'"
    for name, (key_node, _) in fields.items():
        if name not in _FIELDS:
            problems.add(
                path,
                key_node,
                f"{where}: field '{name}' is unknown; fields are " + ", ".join(_FIELDS),
            )
    for name in ("id", "family", "category", "weight", "match"):
        if name not in fields:
            problems.add(path, node, f"{where}: field '{name}' is missing")
    if "id" in fields and (sig_id is None or not _ID.fullmatch(sig_id)):
        problems.add(
            path,
            fields["id"][1],
            f"{where}: field 'id' must be lowercase letters, digits, '.', '_' or '-'",
        )
    family = _scalar_text(fields["family"][1]) if "family" in fields else None
    if "family" in fields and not family:
        problems.add(path, fields["family"][1], f"{where}: field 'family' must be text")
    category = _scalar_text(fields["category"][1]) if "category" in fields else None
    if "category" in fields and category not in CATEGORIES:
        problems.add(
            path,
            fields["category"][1],
            f"{where}: field 'category' must be one of " + ", ".join(CATEGORIES),
        )
    weight = 0.0
    if "weight" in fields:
        weight_node = fields["weight"][1]
        is_number = isinstance(weight_node, yaml.ScalarNode) and weight_node.tag in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        )
        weight = float(weight_node.value) if is_number else -1.0
        if not 0.0 < weight < 1.0:
            problems.add(
                path,
                weight_node,
                f"{where}: field 'weight' must be a number greater than 0 and less than 1",
            )
    matchers, groups = (
        _matchers(fields["match"][1], path, problems, where) if "match" in fields else ((), set())
    )
    names = _names(fields["name"][1], groups, path, problems, where) if "name" in fields else ()
    if len(problems.lines) > before:
        return None
    order = tuple(sorted(matchers, key=lambda m: MATCH_KINDS.index(m.kind)))
    return Signature(
        id=str(sig_id),
        family=str(family),
        category=str(category),
        weight=weight,
        names=names,
        matchers=matchers,
        source=f"{path}:{node.start_mark.line + 1}",
        _order=order,
    )


def _load_file(path: Path, problems: _Problems) -> list[Signature]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, None, f"cannot be read: {exc}")
        return []
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problems.lines.append(f"{path}{line}: not valid YAML: {exc.problem or exc.context}")
        return []
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        problems.add(path, root, "a signature file must be a YAML list of signatures")
        return []
    out = []
    for index, node in enumerate(root.value):
        signature = _signature(node, path, index, problems)
        if signature is not None:
            out.append(signature)
    return out


def _files(root: Path) -> Iterator[Path]:
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))
    else:
        yield root


def _load(paths: Iterable[Path | str], problems: _Problems) -> list[Signature]:
    by_id: dict[str, Signature] = {}
    for root in map(Path, paths):
        if not root.exists():
            problems.add(root, None, "no such signature file or folder")
            continue
        in_root: dict[str, Signature] = {}
        for path in _files(root):
            for signature in _load_file(path, problems):
                first = in_root.get(signature.id)
                if first is not None:
                    problems.lines.append(
                        f"{signature.source}: signature '{signature.id}': field 'id' repeats the "
                        f"id of {first.source}"
                    )
                    continue
                in_root[signature.id] = signature
        by_id.update(in_root)
    return list(by_id.values())


def load_signatures(paths: Iterable[Path | str]) -> list[Signature]:
    """Every signature in ``paths`` (files, or folders of ``*.yaml``/``*.yml``), in order.

    Raises :class:`SignatureError` listing every problem when any file is invalid.
    """
    problems = _Problems()
    signatures = _load(paths, problems)
    if problems.lines:
        raise SignatureError(problems.lines)
    return signatures


def check_signatures(paths: Iterable[Path | str]) -> list[str]:
    """Every problem in the signature files at ``paths`` as ``FILE:LINE: ...``; empty when valid."""
    problems = _Problems()
    _load(paths, problems)
    return problems.lines
