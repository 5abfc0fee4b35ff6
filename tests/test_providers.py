"""The provider table: relay host names to a short, fixed list of providers."""

import pytest

from exporter.providers import BUNDLED, OTHER, ProviderTable

TABLE = ProviderTable.bundled()


@pytest.mark.parametrize(
    "host,provider",
    [
        ("gmail-smtp-in.l.google.com", "google"),
        ("alt4.aspmx.l.google.com.", "google"),  # trailing dot of a DNS name
        ("ASPMX.L.GOOGLE.COM", "google"),
        ("example-com.mail.protection.outlook.com", "microsoft"),
        ("hotmail-com.olc.protection.outlook.com", "microsoft"),
        ("mta7.am0.yahoodns.net", "yahoo"),
        ("mx-aol.mail.gm0.yahoodns.net", "yahoo"),
        ("mx01.mail.icloud.com", "apple"),
        ("mailsec.protonmail.ch", "proton"),
        ("mx.zoho.eu", "zoho"),
        ("in1-smtp.messagingengine.com", "fastmail"),
        ("mx00.emig.gmx.net", "gmx"),
        ("mx-ha03.web.de", "gmx"),
        ("mx00.ionos.de", "ionos"),
        ("mx.yandex.ru", "yandex"),
        ("mxs.mail.ru", "mailru"),
        ("mx1.qq.com", "qq"),
        ("mx1a1.comcast.net", "comcast"),
        ("al-ip4-mx-vip1.prodigy.net", "att"),
        ("eu-smtp-inbound-1.mimecast.com", "mimecast"),
        ("mx0a-00123401.pphosted.com", "proofpoint"),
        ("d123456a.ess.barracudanetworks.com", "barracuda"),
        ("inbound-smtp.us-east-1.amazonaws.com", "amazon"),
        ("mx.example.org", OTHER),
        ("google.com.attacker.example", OTHER),  # a suffix, not a substring
        ("notgoogle.com", OTHER),
        ("", OTHER),
        ("127.0.0.1", OTHER),
    ],
)
def test_bundled_table(host, provider):
    assert TABLE.provider_of(host) == provider


def test_label_values_are_bounded_by_the_table():
    assert set(TABLE.providers) == set(BUNDLED)
    seen = {TABLE.provider_of(f"mx{i}.random{i}.example") for i in range(10_000)}
    assert seen == {OTHER}


def test_config_adds_and_replaces_providers():
    table = ProviderTable.from_config({"acme": ["acme-mail.example"], "google": ["gsuite-relay.example"]})
    assert table.provider_of("mx1.acme-mail.example") == "acme"
    assert table.provider_of("smtp.gsuite-relay.example") == "google"
    assert table.provider_of("gmail-smtp-in.l.google.com") == OTHER  # google's suffixes replaced
    assert table.provider_of("mx01.mail.icloud.com") == "apple"  # the rest kept


def test_longest_suffix_wins():
    table = ProviderTable.from_config({"acme": ["example.net"], "acme_eu": ["eu.example.net"]})
    assert table.provider_of("mx.eu.example.net") == "acme_eu"
    assert table.provider_of("mx.us.example.net") == "acme"
