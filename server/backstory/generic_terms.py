"""Generic terms written in capitals: acronyms that are common nouns, never a name.

spaCy's small model takes a short word in capitals for an organisation ("AI" eleven times in a
story about AI, "CEO", "GPU"). These are the acronyms of ordinary English for job titles,
technology, finance and everyday things, the kind a dictionary lists as common nouns; names
(of bodies, companies, places or products) are never in it, however often news mentions them.
Used by the entity repairs (no such mention is an entity) and by the keyphrases (such a word is
not a proper noun, so "CEO Sam Altman" is a title before a name, not one name).
"""

from __future__ import annotations

__all__ = ["GENERIC_ACRONYMS", "is_generic_term"]

GENERIC_ACRONYMS = frozenset(
    # job titles and roles
    """
    CEO CFO COO CTO CIO CMO CPO CISO CRO CDO CSO VP SVP EVP MD GM HR PR
    """.split()
    # technology
    + """
    AI AGI ASI ML LLM GPU CPU TPU NPU RAM SSD HDD OS PC API SDK UI UX VR AR XR IoT SaaS PaaS
    IaaS URL PDF QR SMS MMS GPS SIM USB LED OLED LCD HDMI WiFi VPN DNS IP ISP CCTV TV DVD CD EV
    EVs UAV DNA RNA mRNA HTML CSS JSON
    """.split()
    # finance, economy and business
    + """
    GDP GNP CPI PPI IPO SPAC ETF ESG ROI EPS VAT FX M&A R&D KPI B2B B2C P2P NFT ATM
    """.split()
    # everyday abbreviations
    + """
    ID PIN FAQ DIY ICU ER PhD MBA MP MEP
    """.split()
)


def is_generic_term(name: str) -> bool:
    """Whether ``name`` is one generic acronym, or its plural ("GPUs")."""
    return name in GENERIC_ACRONYMS or (name.endswith("s") and name[:-1] in GENERIC_ACRONYMS)
