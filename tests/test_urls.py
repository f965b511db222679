"""urls.py by itself: the check a client's URL must pass (and what a refusal says), the form URLs are
compared in, and which canonical URL a page may be archived under. tests/hardening/test_identity.py
covers the same rules through the API."""

from __future__ import annotations

import pytest

from backstory import errors
from backstory.schemas import URL_RULE
from backstory.urls import check_url, identity_url, normalize_url

PATTERN_REFUSAL = f"the URL: must be {URL_RULE}"


def label(n: int, char: str = "a") -> str:
    return char * n


HOST_253 = ".".join([label(63)] * 3 + [label(61)])  # as long as a DNS name may be
assert len(HOST_253) == 253


@pytest.mark.parametrize(("url", "checked"), [
    ("  https://news.example/a \n", "https://news.example/a"),  # surrounding white space goes
    ("https://news.example/a", "https://news.example/a"),
    ("https://münchen.example/", "https://münchen.example/"),  # an international name is checked, kept as given
    ("https://exa_mple.example/", "https://exa_mple.example/"),
    ("https://[::1]:8080/x", "https://[::1]:8080/x"),
    ("https://127.0.0.1/", "https://127.0.0.1/"),
    ("https://news.example./", "https://news.example./"),
    (f"https://{HOST_253}/", f"https://{HOST_253}/"),
])
def test_acceptable_urls_pass_stripped(url: str, checked: str) -> None:
    assert check_url(url) == checked


@pytest.mark.parametrize(("url", "detail"), [
    ("ftp://x.example/", PATTERN_REFUSAL),
    ("https://-a.example/", PATTERN_REFUSAL),
    ("https://[1:2:3]/", "invalid URL: '1:2:3' does not appear to be an IPv4 or IPv6 address"),
    # a soft hyphen is a valid character of the pattern's, and nothing in IDNA (the host is shown escaped)
    ("https://\u00ad.example/", "the host '\\xad.example' is not a valid domain name"),
    # 254 characters: one more than DNS allows (the pattern checks only each label)
    (f"https://{HOST_253}a/", f"the host '{HOST_253}a' is not a valid domain name"),
    # a label that is 63 characters only once its IDNA (xn--) form is taken
    (f"https://{label(60, 'ü')}.example/", f"the host '{label(60, 'ü')}.example' is not a valid domain name"),
])
def test_each_refused_url_says_why(url: str, detail: str) -> None:
    with pytest.raises(errors.InvalidUrl) as info:
        check_url(url)
    assert info.value.detail == detail


@pytest.mark.parametrize(("url", "normal"), [
    ("HTTPS://News.Example.:443/a?utm_source=x&id=3#frag", "https://news.example/a?id=3"),
    ("http://news.example:80/a", "http://news.example/a"),
    ("http://news.example:81/a", "http://news.example:81/a"),
    ("https://news.example:80/a", "https://news.example:80/a"),  # 80 is the default of http only
    ("http://news.example:443/a", "http://news.example:443/a"),
    ("http://news.example:99999/a", "http://news.example/a"),  # a port that is no port is dropped
    ("https://news.example", "https://news.example/"),
    ("https://editor@news.example/a", "https://editor@news.example/a"),
    ("https://[::1]:8443/a", "https://[::1]:8443/a"),
    ("https://news.example/a?b=&a=1&fbclid=z&c", "https://news.example/a?b=&a=1&c="),  # blank values kept
    ("not a url", "not a url"),  # no host: kept as written
])
def test_normal_form(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


def test_a_canonical_written_with_a_final_dot_is_on_the_pages_site() -> None:
    assert identity_url("https://news.example./a", "https://www.news.example/b") == "https://news.example/a"
    assert identity_url("https://news.example/a", "https://www.news.example./b") == "https://news.example/a"
