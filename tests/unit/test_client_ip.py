"""Which address a request comes from: X-Forwarded-For only counts from a trusted proxy."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from bastion.http.client_ip import client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1/32", "2001:db8:ffff::/48"])


def test_without_trusted_proxies_the_socket_peer_is_the_client() -> None:
    assert client_ip("198.51.100.7", "1.2.3.4", ()) == "198.51.100.7"


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip("198.51.100.7", "1.2.3.4", PROXIES) == "198.51.100.7"


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client() -> None:
    assert client_ip("10.0.0.5", "198.51.100.7", PROXIES) == "198.51.100.7"


def test_the_rightmost_untrusted_address_wins_over_spoofed_entries_on_the_left() -> None:
    forwarded = "6.6.6.6, 198.51.100.7, 10.1.2.3"
    assert client_ip("192.0.2.1", forwarded, PROXIES) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_falls_back_to_the_leftmost_address() -> None:
    assert client_ip("10.0.0.5", "10.9.9.9, 10.0.0.6", PROXIES) == "10.9.9.9"


def test_a_garbled_forwarded_for_header_is_worth_nothing() -> None:
    assert client_ip("10.0.0.5", "198.51.100.7, not-an-ip", PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", " , ", PROXIES) == "10.0.0.5"


def test_ipv6_peers_and_hops_are_understood() -> None:
    assert client_ip("2001:db8:ffff::1", "2001:db8:1::7", PROXIES) == "2001:db8:1::7"
    assert client_ip("2001:db8:1::9", "198.51.100.7", PROXIES) == "2001:db8:1::9"


def test_no_peer_means_no_address() -> None:
    assert client_ip(None, "198.51.100.7", PROXIES) is None


def test_a_forwarded_address_with_a_zone_id_is_not_a_client_ip() -> None:
    assert client_ip("10.0.0.5", "fe80::1%eth0", PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", "fe80::1%" + "a" * 100, PROXIES) == "10.0.0.5"


def test_an_over_long_forwarded_entry_is_not_a_client_ip() -> None:
    assert client_ip("10.0.0.5", "1" * 1000, PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", "198.51.100.7:8080", PROXIES) == "10.0.0.5"


def test_junk_left_of_the_client_address_does_not_hide_it() -> None:
    assert client_ip("10.0.0.5", "fe80::1%eth0, not-an-ip, 198.51.100.7", PROXIES) == (
        "198.51.100.7"
    )


def test_addresses_are_stored_in_their_normal_form() -> None:
    assert client_ip("10.0.0.5", "2001:DB8:0:0::0001", PROXIES) == "2001:db8::1"
    assert client_ip("2001:0db8:0001::0009", None, PROXIES) == "2001:db8:1::9"


def test_an_ipv4_client_seen_through_ipv6_is_named_by_its_ipv4_address() -> None:
    assert client_ip("::ffff:198.51.100.7", None, ()) == "198.51.100.7"
    assert client_ip("10.0.0.5", "::ffff:198.51.100.8", PROXIES) == "198.51.100.8"
    assert client_ip("::ffff:10.0.0.5", "198.51.100.9", PROXIES) == "198.51.100.9"


def test_a_peer_is_named_without_its_zone_id_and_a_peer_that_is_no_address_is_none() -> None:
    assert client_ip("fe80::1%eth0", None, PROXIES) == "fe80::1"
    assert client_ip("/run/bastion.sock", "198.51.100.7", PROXIES) is None


def normal_form(address: str) -> str:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


addresses = st.ip_addresses().map(str)
hops = st.one_of(addresses, st.text(max_size=60), st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"))
headers = st.one_of(st.none(), st.lists(hops, max_size=6).map(", ".join), st.text(max_size=200))


@given(st.one_of(st.none(), addresses, st.text(max_size=60)), headers)
def test_the_client_ip_is_none_or_an_address_in_its_normal_form(
    peer: str | None, forwarded_for: str | None
) -> None:
    ip = client_ip(peer, forwarded_for, PROXIES)
    if ip is not None:
        assert ip == normal_form(ip)
        assert len(ip) <= 39 and "%" not in ip


def is_proxy(address: str) -> bool:
    return any(ipaddress.ip_address(normal_form(address)) in network for network in PROXIES)


@given(addresses.filter(lambda address: not is_proxy(address)), headers)
def test_a_client_that_is_no_trusted_proxy_cannot_choose_its_address(
    peer: str, forwarded_for: str | None
) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == normal_form(peer)


@given(st.lists(hops, max_size=4), st.ip_addresses(v=4, network="198.51.100.0/24").map(str))
def test_behind_a_trusted_proxy_whatever_the_client_wrote_left_of_its_address_is_ignored(
    spoofed: list[str], client: str
) -> None:
    forwarded = ", ".join([*spoofed, client, "10.1.2.3"])
    assert client_ip("10.0.0.5", forwarded, PROXIES) == client
