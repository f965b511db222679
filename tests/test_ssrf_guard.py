"""The SSRF guard by itself (no server, no fetch): what each refusal tells the reader, which IPv6
forms stand for which IPv4 address, the deny list, and how names are resolved. tests/test_fetch.py
proves the same guard around real fetches."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from backstory import errors
from backstory.config import Settings
from backstory.ssrf_guard import blocked_reason, checked_addresses, parse_target

# 2001:0::/32 is Teredo; its last 32 bits are the client's IPv4 address with every bit flipped.
TEREDO_OF_10_0_0_1 = "2001:0:4136:e378:8000:63bf:f5ff:fffe"
TEREDO_OF_8_8_8_8 = "2001:0:4136:e378:8000:63bf:f7f7:f7f7"


@pytest.mark.parametrize(("url", "detail"), [
    ("http://example.com/" + "a" * 2030, "URL longer than 2,048 characters"),
    ("http://example.com/ a", "URL contains whitespace or control characters"),
    ("http://example.com/\x7f", "URL contains whitespace or control characters"),
    ("http://example.com/\x00", "URL contains whitespace or control characters"),
    ("ftp://example.com/", "only http and https URLs can be fetched, not 'ftp'"),
    ("example.com/page", "only http and https URLs can be fetched, not 'a relative URL'"),
    ("http://user:pw@example.com/", "URLs with a user name or password are not fetched"),
    ("http://@example.com/", "URLs with a user name or password are not fetched"),
    ("http:///path", "URL has no host"),
    ("http://example.com:0/", "invalid port 0"),
    ("http://example.com:65536/", "invalid port 65536"),
    # numeric, but no IPv4 address in any spelling the C library reads
    ("http://99999999999/", "invalid numeric host '99999999999'"),
    ("http://a..b/", "invalid host name 'a..b'"),
    ("http://[::1/", "not a valid URL: Invalid port: ':1'"),
])
def test_each_refused_url_says_why(url: str, detail: str) -> None:
    with pytest.raises(errors.InvalidUrl) as info:
        parse_target(url)
    assert info.value.detail == detail


def test_the_longest_url_and_the_first_printable_characters_are_accepted() -> None:
    longest = "http://example.com/" + "a" * (2048 - len("http://example.com/"))
    assert len(longest) == 2048 and parse_target(longest).host == "example.com"
    assert parse_target("http://example.com/wow!").url.path == "/wow!"  # "!" is 0x21, the first after space


@pytest.mark.parametrize(("host", "address"), [
    ("127.1", "127.0.0.1"), ("127.1.", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("1.2.300", "1.2.1.44"),
])
def test_a_numeric_host_is_refused_with_the_address_it_means(host: str, address: str) -> None:
    with pytest.raises(errors.BlockedAddress) as info:
        parse_target(f"http://{host}/")
    assert info.value.detail == f"numeric host {host!r} means {address}; write it as {address}"


def test_ports_1_to_65535_are_ports() -> None:
    assert parse_target("http://example.com:1/").port == 1
    assert parse_target("http://example.com:65535/").port == 65535


def test_the_default_port_follows_the_scheme() -> None:
    assert parse_target("https://example.com/").port == 443
    assert parse_target("http://example.com/").port == 80
    assert parse_target("https://example.com:8443/").port == 8443


@pytest.mark.parametrize(("address", "reason"), [
    ("::ffff:10.0.0.1", "an IPv4-mapped IPv6 address of 10.0.0.1 (private (RFC 1918))"),
    ("::10.0.0.1", "an IPv4-compatible IPv6 address of 10.0.0.1 (private (RFC 1918))"),
    ("::2", "an IPv4-compatible IPv6 address of 0.0.0.2 (unspecified ('this network'))"),
    ("64:ff9b::a00:1", "a NAT64 IPv6 address of 10.0.0.1 (private (RFC 1918))"),
    ("2002:a00:1::1", "a 6to4 IPv6 address of 10.0.0.1 (private (RFC 1918))"),
    (TEREDO_OF_10_0_0_1, "a Teredo IPv6 address of 10.0.0.1 (private (RFC 1918))"),
    # Teredo is refused even around a public address: the tunnel is not globally routable.
    (TEREDO_OF_8_8_8_8, "a Teredo tunnel"),
    # Not in our table, not embedding IPv4, refused by the IANA registry's "globally reachable".
    ("2001:2::1", "not globally routable"),
    ("::1", "loopback"),
])
def test_the_reason_names_the_ipv4_address_an_ipv6_address_stands_for(address: str, reason: str) -> None:
    assert blocked_reason(address, Settings()) == reason


def test_loopback_ipv6_is_not_read_as_the_ipv4_address_0_0_0_1() -> None:
    # ::1 is inside ::/96 but is IPv6's own loopback, not an IPv4-compatible form of 0.0.0.1.
    assert blocked_reason("::1", Settings(denied_networks=["0.0.0.0/8"])) == "loopback"


def test_a_deny_list_refuses_only_its_own_networks() -> None:
    deny = Settings(denied_networks=["93.184.0.0/16", "2001:db9::/32"])
    assert blocked_reason("93.184.216.34", deny) == "in denied network 93.184.0.0/16"
    assert blocked_reason("8.8.8.8", deny) is None
    assert blocked_reason("2606:4700:4700::1111", deny) is None
    assert blocked_reason(ipaddress.ip_address("8.8.4.4"), deny) is None  # an address object, not text


async def test_a_refused_literal_is_named_as_written_and_a_name_with_its_address() -> None:
    with pytest.raises(errors.BlockedAddress) as info:
        await checked_addresses(parse_target("http://10.0.0.1/"), Settings(), None)
    assert info.value.detail == "refusing to fetch from 10.0.0.1: the address is private (RFC 1918)"

    def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.5"]

    with pytest.raises(errors.BlockedAddress) as info:
        await checked_addresses(parse_target("http://intranet.example/"), Settings(), resolver)
    assert info.value.detail == (
        "refusing to fetch from intranet.example (resolves to 10.0.0.5): the address is private (RFC 1918)"
    )


async def test_a_plain_function_resolves_too_and_is_asked_for_the_host_without_its_dot_and_the_port() -> None:
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:  # not a coroutine: the Resolver type allows both
        calls.append((host, port))
        return ["93.184.216.34", "93.184.216.34", "2606:2800:220:1::"]

    addresses = await checked_addresses(parse_target("https://news.example./a"), Settings(), resolver)
    assert calls == [("news.example", 443)]
    assert addresses == [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:2800:220:1::")]


@pytest.mark.parametrize(("answers", "detail"), [
    (["not-an-ip"], "resolver gave 'not-an-ip' for 'odd.example', not an IP address"),
    ([], "'odd.example' has no address"),
])
async def test_a_resolver_answer_that_is_no_address_is_an_upstream_error(answers: list[str], detail: str) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return answers

    with pytest.raises(errors.UpstreamError) as info:
        await checked_addresses(parse_target("http://odd.example/"), Settings(), resolver)
    assert info.value.detail == detail


async def test_the_system_resolver_looks_up_the_name_it_is_given() -> None:
    # .invalid never resolves (RFC 6761): a lookup of anything else (such as no name, which
    # getaddrinfo answers with loopback) would not fail.
    with pytest.raises(errors.UpstreamError, match=r"could not resolve 'nowhere\.invalid'"):
        await asyncio.wait_for(checked_addresses(parse_target("http://nowhere.invalid/"), Settings(), None), 60)
