"""The demo's audiences: every rule kind, the seed page's own example bodies among them."""

from __future__ import annotations

from typing import Any

Audience = tuple[str, dict[str, Any]]

DEMO_AUDIENCES: list[Audience] = [
    ("cryptopunks", {"name": "Earring", "tags": "Earring", "tagRule": "or"}),
    (
        "cryptopunks",
        {
            "name": "Earring and Cigarette, one per owner",
            "tags": ["Earring", "Cigarette"],
            "tagRule": "all",
            "uniqueOwner": True,
        },
    ),
    (
        "cryptopunks",
        {
            "name": "Custodial in France or Spain, active in the last year",
            "tagRule": "or",
            "countries": "France|Spain",
            "custodialWallet": "yes",
            "isWalletActiveSinceNumberOfDays": 365,
        },
    ),
    (
        "cryptopunks",
        {
            "name": "Non-custodial, inactive for a year",
            "custodialWallet": "no",
            "isWalletActiveSinceNumberOfDays": 365,
            "walletActivity": "inactive",
        },
    ),
    (
        "cryptopunks",
        {
            "name": "Aliens, apes and zombies",
            "tagRule": "productIds",
            "productIds": ["punk-alien", "punk-ape", "punk-zombie"],
        },
    ),
    (
        "cryptopunks",
        {
            "name": "Token ids as text",
            "tagRule": "tokenIds",
            "tokenIds": "6548, 5719,1841,5916,4641,9999",
        },
    ),
    # The seed page's create example, as it stands.
    (
        "cryptopunks",
        {
            "name": "Audience test",
            "tagRule": "all",
            "tags": "test",
            "uniqueOwner": False,
            "custodialWallet": "yes",
            "isWalletActiveSinceNumberOfDays": 30,
            "countries": ["France", "Spain"],
        },
    ),
    # The seed page's fetched document, sent back as a create body.
    (
        "cryptopunks",
        {
            "name": "name",
            "tags": [],
            "description": "this is the description",
            "uniqueOwner": True,
            "tagRule": "tokenIds",
            "isWalletActiveSinceNumberOfDays": 30,
            "custodialWallet": "all",
            "countries": ["France", "Middle-earth", "Taiwan", "Belgium"],
            "walletActivity": "inactive",
            "tokenIds": {"type": "Buffer", "data": [51, 52, 51]},
        },
    ),
    (
        "poap-devcon",
        {"name": "Two POAP events", "tagRule": "productIds", "productIds": ["67378", "67695"]},
    ),
    ("poap-devcon", {"name": "Every holder, one per owner", "uniqueOwner": True}),
    (
        "poap-devcon",
        {
            "name": "Token ids as numbers, burned ones among them",
            "tagRule": "tokenIds",
            # 5685504 and 5686458 belong to the zero address: burned, never counted.
            "tokenIds": [5730384, 5730386, 5730390, 5685504, 5686458],
        },
    ),
]


def describe(body: dict[str, Any]) -> str:
    """A short account of an audience's rule for the demo's table."""
    rule = body.get("tagRule", "or")
    parts = [rule]
    for field in ("tags", "productIds", "tokenIds", "countries"):
        value = body.get(field)
        if value:
            shown = "Buffer" if isinstance(value, dict) else value
            parts.append(f"{field}={shown}")
    for field in ("custodialWallet", "isWalletActiveSinceNumberOfDays", "walletActivity"):
        if field in body:
            parts.append(f"{field}={body[field]}")
    if body.get("uniqueOwner"):
        parts.append("uniqueOwner")
    return " ".join(str(p) for p in parts)
