"""Properties of every input normalizer, over generated input (hypothesis)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.audience.fields import AudienceCreate, AudiencePatch

# Items as stored: non-empty, no surrounding white space, within 200 characters.
printable = st.characters(blacklist_categories=("Cc", "Cs"))
item = st.text(printable, min_size=1, max_size=200).map(str.strip).filter(bool)
plain_item = item.filter(lambda text: "," not in text and "|" not in text)
items = st.lists(item, max_size=20)
plain_items = st.lists(plain_item, max_size=20)
padding = st.sampled_from(["", " ", "\t", "  \n"])


def stored(**fields: Any) -> dict[str, Any]:
    return AudienceCreate.model_validate({"name": "n", **fields}).stored()


@given(items, padding)
def test_tags_and_product_ids_keep_items_and_trim_them(values: list[str], pad: str) -> None:
    padded = [pad + value + pad for value in values]
    assert stored(tags=padded)["tags"] == values
    assert stored(tagRule="productIds", productIds=padded or ["p"])["productIds"] == (
        values or ["p"]
    )


@given(item, padding)
def test_one_string_is_a_one_item_list(value: str, pad: str) -> None:
    assert stored(tags=pad + value + pad)["tags"] == [value]


@given(plain_items.filter(bool))
def test_countries_joined_by_pipes_split_back(values: list[str]) -> None:
    assert stored(countries="|".join(values))["countries"] == values
    assert stored(countries=values)["countries"] == values


@given(plain_items.filter(bool))
def test_every_token_id_form_gives_the_same_list(values: list[str]) -> None:
    text = ",".join(values)
    buffer = {"type": "Buffer", "data": list(text.encode("utf-8"))}
    forms = [values, text, buffer]
    results = [stored(tagRule="tokenIds", tokenIds=form)["tokenIds"] for form in forms]
    assert results == [values, values, values]


@given(st.lists(st.integers(min_value=0, max_value=10**30), min_size=1, max_size=20))
def test_integer_token_ids_become_their_decimal_text(values: list[int]) -> None:
    assert stored(tagRule="tokenIds", tokenIds=values)["tokenIds"] == [str(v) for v in values]


@given(st.text(max_size=300))
def test_a_name_is_stored_trimmed_or_refused(name: str) -> None:
    try:
        result = AudienceCreate.model_validate({"name": name}).stored()["name"]
    except ValidationError:
        visible = any(unicodedata.category(c)[0] not in "ZC" for c in name)
        controls = any(unicodedata.category(c) == "Cc" for c in name)
        assert not 1 <= len(name.strip()) <= 200 or not visible or controls
    else:
        assert result == name.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(list(AudiencePatch.model_fields)), json_values))
def test_any_json_is_accepted_normalized_or_refused_never_an_error(body: dict[str, Any]) -> None:
    try:
        patch = AudiencePatch.model_validate(body)
    except ValidationError:
        return
    sent = patch.sent()
    # What is accepted is stored as plain JSON and normalizes to itself.
    assert AudiencePatch.model_validate(json.loads(json.dumps(sent))).sent() == sent
