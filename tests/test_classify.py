"""Classification: scoring, conflicting evidence, hysteresis, the user's word, the handler."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor import config as config_module
from monitor.classify import Classifier, ClassifyHandler
from monitor.events import DeviceSeen, DeviceUpdated, HandlerChain, Tick
from monitor.model import Device
from monitor.signatures import SignatureError

# A small signature set with round weights, so the arithmetic below is exact.
SIGNATURES = """\
- id: acme-oui-plug
  family: Acme
  category: plug
  weight: 0.3
  name: Acme device
  match: {vendor: Acme}
- id: acme-oui-network
  family: Acme
  category: network
  weight: 0.2
  match: {vendor: Acme}
- id: acme-plug-model
  family: Acme plug
  category: plug
  weight: 0.6
  name: ['Acme {model} ({txt.fn})', 'Acme {model}']
  match: {hostname: 're:^(?P<model>AP-\\d+)'}
- id: acme-plug-cloud
  family: Acme plug
  category: plug
  weight: 0.5
  match: {domain: '*.acme-plugs.example'}
- id: cam-name
  family: Camera by name
  category: camera
  weight: 0.5
  match: {mdns_name: '*cam*'}
- id: cam-cloud
  family: Camera cloud
  category: camera
  weight: 0.6
  match: {domain: '*.cams.example'}
- id: cam-cloud-strong
  family: Camera cloud
  category: camera
  weight: 0.8
  match: {domain: 'live.cams.example'}
- id: wifi-module
  family: Wi-Fi module
  category: unknown
  weight: 0.1
  name: Module device
  match: {hostname: 'MOD_*'}
"""


@pytest.fixture
def classifier(tmp_path: Path) -> Classifier:
    path = tmp_path / "demo.yaml"
    path.write_text(SIGNATURES, encoding="utf-8")
    return Classifier([path], min_confidence=0.35, switch_margin=0.15)


@pytest.fixture(scope="module")
def builtin() -> Classifier:
    return Classifier()


def device(**facts: object) -> Device:
    return Device(mac="02:00:00:00:00:01", first_seen=0.0, last_seen=0.0, **facts)  # type: ignore[arg-type]


def test_noisy_or_scores_and_confidence(classifier: Classifier) -> None:
    result = classifier.classify(device(hostname="AP-100", domains={"eu.acme-plugs.example"}))
    assert result.category == "plug"
    assert result.scores == {"plug": pytest.approx(1 - 0.4 * 0.5)}
    assert result.confidence == pytest.approx(0.8)
    assert result.name == "Acme AP-100"
    assert result.evidence == ["DHCP hostname AP-100", "contacts eu.acme-plugs.example"]


def test_a_multi_product_vendor_is_not_evidence_against_the_winner(classifier: Classifier) -> None:
    # The Acme OUI suggests plug and network; with a plug model it must not lower confidence.
    result = classifier.classify(device(vendor="Acme Corp", hostname="AP-100"))
    assert result.category == "plug"
    assert result.scores["network"] == pytest.approx(0.2)
    assert result.confidence == pytest.approx(1 - 0.7 * 0.4)
    assert not any("suggests network" in line for line in result.evidence)


def test_conflicting_evidence_lowers_confidence(classifier: Classifier) -> None:
    plug_only = classifier.classify(device(hostname="AP-100", domains={"x.acme-plugs.example"}))
    conflicted = classifier.classify(
        device(hostname="AP-100", domains={"x.acme-plugs.example"}, mdns_names={"livecam.local"})
    )
    assert conflicted.category == plug_only.category == "plug"
    assert conflicted.confidence == pytest.approx(0.8 * (1 - 0.5))
    assert conflicted.confidence < plug_only.confidence
    assert "mDNS name livecam.local (suggests camera)" in conflicted.evidence


def test_weak_evidence_stays_unknown_with_its_evidence(classifier: Classifier) -> None:
    result = classifier.classify(device(vendor="Acme Corp"))
    assert result.category == "unknown"
    assert result.confidence == 0.0
    assert result.name == "Acme device"
    assert result.evidence == ["OUI Acme Corp (suggests plug)", "OUI Acme Corp (suggests network)"]
    hint = classifier.classify(device(hostname="MOD_A1B2C3"))
    assert (hint.category, hint.name, hint.evidence) == (
        "unknown",
        "Module device",
        ["DHCP hostname MOD_A1B2C3 (Wi-Fi module)"],
    )
    assert classifier.classify(device()).category == "unknown"


def test_even_conflict_between_strong_categories_is_unknown_not_a_coin_toss(
    classifier: Classifier,
) -> None:
    result = classifier.classify(
        device(
            hostname="AP-100",
            domains={"a.acme-plugs.example", "b.cams.example"},
            mdns_names={"cam.local"},
        )
    )
    assert result.scores["camera"] == pytest.approx(0.8)
    assert result.scores["plug"] == pytest.approx(0.8)
    assert result.category == "unknown"


def test_hysteresis_keeps_category_until_clearly_beaten(classifier: Classifier) -> None:
    dev = device(hostname="AP-100")  # plug 0.6
    assert classifier.apply(dev)
    assert (dev.category, dev.confidence) == ("plug", 0.6)
    dev.domains.add("a.cams.example")  # camera 0.6, a tie: plug stays, less sure
    classifier.apply(dev)
    assert (dev.category, dev.confidence) == ("plug", pytest.approx(0.6 * 0.4))
    dev.mdns_names.add("cam.local")  # camera 0.8 beats 0.6 + 0.15, but only 0.32 sure of itself
    classifier.apply(dev)
    assert (dev.category, dev.confidence) == ("plug", pytest.approx(0.6 * 0.2))
    dev.domains.add("live.cams.example")  # camera 0.96, confidence 0.384: now it switches
    classifier.apply(dev)
    assert (dev.category, dev.confidence) == ("camera", pytest.approx(0.96 * 0.4))
    assert classifier.classify(dev).category == "camera"


def test_hysteresis_blocks_a_switch_within_the_margin(classifier: Classifier) -> None:
    dev = device(vendor="Acme", hostname="AP-100")  # plug 1 - 0.7 * 0.4 = 0.72
    classifier.apply(dev)
    dev.domains.add("a.cams.example")
    dev.mdns_names.add("cam.local")  # camera 0.8 > 0.72, but less than 0.72 + 0.15
    classifier.apply(dev)
    assert dev.category == "plug"
    assert dev.confidence == pytest.approx(0.72 * (1 - 0.8))
    # From scratch, the same facts are too conflicted to name: the history made the difference.
    assert classifier.classify(dev).category == "unknown"
    assert classifier.explain(dev)[-2].startswith("decision: stays plug (confidence 0.144)")


def test_a_classified_device_does_not_fall_back_to_unknown(classifier: Classifier) -> None:
    dev = device(hostname="AP-100")  # plug 0.6
    classifier.apply(dev)
    dev.mdns_names.add("cam.local")  # camera 0.5: plug still wins, at 0.6 x 0.5 = 0.3 < 0.35
    classifier.apply(dev)
    assert (dev.category, dev.confidence) == ("plug", pytest.approx(0.3))
    assert classifier.classify(dev).category == "unknown"
    assert classifier.explain(dev)[-2].endswith(
        "below min_confidence 0.35 but already plug: it stays"
    )


def test_the_users_word_is_never_overwritten(classifier: Classifier) -> None:
    dev = device(hostname="AP-100", label="Kettle plug", user_category="appliance")
    assert classifier.apply(dev)
    assert (dev.label, dev.user_category) == ("Kettle plug", "appliance")
    assert dev.category == "plug"
    assert dev.to_record()["category"] == "appliance"
    assert dev.display_name == "Kettle plug"


def test_apply_reports_changes_only(classifier: Classifier) -> None:
    dev = device(hostname="AP-100")
    assert classifier.apply(dev) is True
    assert classifier.apply(dev) is False
    dev.mdns_txt["fn"] = "Kitchen"
    assert classifier.apply(dev) is True
    assert dev.name == "Acme AP-100 (Kitchen)"


def test_handler_classifies_on_device_events(classifier: Classifier) -> None:
    chain = HandlerChain([ClassifyHandler(classifier)])
    dev = device(hostname="AP-100")
    chain.emit(DeviceSeen(0.0, dev))
    assert dev.category == "plug"
    dev.domains.update({"live.cams.example", "a.cams.example"})  # camera 0.92, confidence 0.37
    chain.emit(DeviceUpdated(1.0, dev, frozenset({"domains"})))
    assert dev.category == "plug"  # updates are classified once per second, at the next tick
    chain.emit(Tick(2.0, 1))
    assert dev.category == "camera"
    assert not chain.errors


def test_explain_lists_signatures_scores_and_decision(classifier: Classifier) -> None:
    lines = classifier.explain(
        device(vendor="Acme Corp", hostname="AP-100", mdns_names={"cam.local"}, label="Hall")
    )
    text = "\n".join(lines)
    assert lines[0] == "device 02:00:00:00:00:01 (Acme Corp)"
    assert "the user's word: label 'Hall'" in text
    for sig_id in ("acme-plug-model", "acme-oui-plug", "acme-oui-network", "cam-name"):
        assert f"[{sig_id} at " in text
    assert "  0.60  plug      Acme plug: DHCP hostname AP-100" in text
    assert "scores (noisy-OR of weights): plug 0.720, camera 0.500, network 0.200" in text
    assert "conflicting evidence: camera 0.500" in text
    assert lines[-2] == "decision: plug with confidence 0.360 = 0.720 x (1 - 0.500 for camera)"
    assert lines[-1] == "name: Acme AP-100"
    assert "below min_confidence" in classifier.explain(device(vendor="Acme"))[-2]


def test_bad_signature_file_stops_the_classifier(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  family: X\n  category: plug\n  weight: 2\n  match: {vendor: X}\n")
    with pytest.raises(SignatureError, match=rf"{bad}:4: signature 'x': field 'weight'"):
        Classifier([bad])


def test_from_config_reads_classify_options(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "mine.yaml").write_text(
        "- id: my-lamp\n  family: Mine\n  category: light\n  weight: 0.9\n"
        "  match: {hostname: my-lamp}\n"
    )
    cfg = config_module.load(
        env={},
        cli={
            "enrich.home": "DE",
            "classify.signatures": [str(extra)],
            "classify.min_confidence": 0.5,
            "classify.switch_margin": 0.3,
        },
    )
    classifier = Classifier.from_config(cfg)
    assert (classifier.min_confidence, classifier.switch_margin) == (0.5, 0.3)
    assert classifier.classify(device(hostname="my-lamp")).category == "light"
    assert classifier.classify(device(hostname="HS110(UK)")).category == "plug"  # builtin too
    defaults = config_module.load(env={}, cli={"enrich.home": "DE"})
    assert defaults["classify.min_confidence"] == 0.35
    assert defaults["classify.switch_margin"] == 0.15


# --- builtin signatures: the evidence and names a household reads -------------------------


def test_builtin_evidence_strings(builtin: Classifier) -> None:
    kasa = builtin.classify(device(vendor="Tp-Link Technologies Co.,Ltd.", hostname="HS110(EU)"))
    assert (kasa.category, kasa.name) == ("plug", "TP-Link Kasa HS110(EU)")
    assert kasa.evidence[0] == "DHCP hostname HS110(EU)"
    nest = builtin.classify(
        device(
            vendor="Google, Inc.",
            services={"_googlecast._tcp"},
            mdns_txt={"md": "Google Nest Mini", "fn": "Kitchen"},
        )
    )
    assert (nest.category, nest.name) == ("speaker", "Google Nest Mini (Kitchen)")
    assert nest.evidence[0] == "mDNS _googlecast._tcp md=Google Nest Mini"
    wemo = builtin.classify(device(vendor="Belkin International Inc.", domains={"api.xbcs.net"}))
    assert wemo.category == "plug"
    assert "OUI Belkin International Inc." in wemo.evidence
    echo = builtin.classify(
        device(
            vendor="Amazon Technologies Inc.",
            hostname="amazon-3b1c8a2f",
            domains={"avs-alexa-4-na.amazon.com"},
        )
    )
    assert echo.category == "speaker"
    assert "contacts avs-alexa-4-na.amazon.com" in echo.evidence


def test_builtin_alexa_app_phone_is_not_a_speaker(builtin: Classifier) -> None:
    # Facts of the nDPI alexa-app trace: the companion app's domains must not make a speaker.
    phone = device(
        vendor="LG Electronics (Mobile Communications)",
        hostname="android-1c1335ec95a27318",
        dhcp_vendor_class="dhcpcd-5.5.6",
        user_agents={"Dalvik/2.1.0 (Linux; U; Android 5.1.1; LGLS751 Build/LMY47V)"},
        domains={
            "alexa.amazon.com",
            "pitangui.amazon.com",
            "skills-store.amazon.com",
            "api.amazon.com",
            "www.amazon.com",
            "fls-na.amazon.com",
        },
    )
    result = builtin.classify(phone)
    assert result.category == "phone"
    assert "speaker" not in result.scores


def test_builtin_lone_multi_product_vendors_stay_unknown(builtin: Classifier) -> None:
    for vendor in (
        "Espressif Inc.",
        "Amazon Technologies Inc.",
        "Apple, Inc.",
        "Google, Inc.",
        "Tp-Link Technologies Co.,Ltd.",
        "D-Link International",
        "Belkin International Inc.",
        "Samsung Electronics Co.,Ltd",
        "Edimax Technology Co. Ltd.",
        "Tuya Smart Inc.",
    ):
        result = builtin.classify(device(vendor=vendor))
        assert result.category == "unknown", vendor
        assert result.evidence, vendor
    single = builtin.classify(device(vendor="Sonos, Inc."))
    assert single.category == "speaker"


def test_builtin_classify_speed_on_a_rich_device(builtin: Classifier) -> None:
    """Not a timing assertion: it reports the rate (``pytest -s``) and checks the answer."""
    laptop = device(
        vendor="Apple, Inc.",
        hostname="Johns-MacBook-Pro",
        dhcp_fingerprint="1,121,3,6,15,108,114,119,252,95,44,46",
        mdns_names={"johns-macbook-pro.local"},
        services={"_companion-link._tcp", "_airplay._tcp"},
        mdns_txt={"model": "MacBookPro18,3"},
        user_agents={f"App{i}/1.0 CFNetwork/1410 Darwin/22.6.0" for i in range(16)},
        domains={f"host{i}.example{i % 37}.com" for i in range(1000)},
        tls_fingerprints={f"t13d1516h2_8daaf6152771_{i:012x}" for i in range(32)},
    )
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        result = builtin.classify(laptop)
    rate = rounds / (time.perf_counter() - start)
    print(
        f"\nclassify(): {rate:.0f}/s on a device with 1000 domains, "
        f"{len(builtin.signatures)} signatures"
    )
    assert result.category == "computer"
