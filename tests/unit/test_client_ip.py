"""Which address a request comes from: X-Forwarded-For only counts from a trusted proxy."""

from __future__ import annotations

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
