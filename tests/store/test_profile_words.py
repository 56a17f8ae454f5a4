"""Chinese channel and gender words are stored as the codes the features read (review M4).

门店 and 小程序 used to load as given and become ``other`` in the features, 先生 and
女士 ``unknown``. One table (:mod:`crm_ml.store.normalize`) now maps them at
import and in the features, and the import warns about values no feature reads.
"""

import pytest
from import_files import rows, write

from crm_ml.features.build import customer_features
from crm_ml.features.profile import ACQUISITION_CHANNELS, GENDERS
from crm_ml.features.spec import VALUE_LABELS
from crm_ml.store.loading import import_file
from crm_ml.store.normalize import CHANNEL_WORDS, GENDER_WORDS

AS_OF = "2026-01-01"
CUSTOMERS = (
    "customer_id,gender,acquisition_channel,created_at\n"
    "C1,先生,门店,2025-01-01\n"
    "C2,女士,小程序,2025-01-01\n"
    "C3,女,APP,2025-01-01\n"
    "C4,男,官网,2025-01-01\n"
    "C5, Female ,推荐,2025-01-01\n"
    "C6,,转介绍,2025-01-01\n"
    "C7,保密,抖音,2025-01-01\n"
    "C8,不详,抖音,2025-01-01\n"
    "C9,M,,2025-01-01\n"
)
EXPECTED = {
    "C1": ("male", "store"),
    "C2": ("female", "mini_program"),
    "C3": ("female", "app"),
    "C4": ("male", "web"),
    "C5": ("female", "referral"),
    "C6": ("unknown", "referral"),
    "C7": ("unknown", "other"),
    "C8": ("unknown", "other"),
    "C9": ("male", "unknown"),
}


ORDER = (
    "order_id,customer_id,ordered_at,channel,gross_amount,net_amount\nO1,C1,2025-12-01,online,9,9\n"
)


def load(store, folder):
    """Load the customers, and an order so that the features have a data window."""
    result = import_file(store, "customer", write(folder, "c.csv", CUSTOMERS), as_of=AS_OF)
    import_file(store, "orders", write(folder, "o.csv", ORDER), as_of=AS_OF)
    return result


@pytest.fixture
def loaded(store, tmp_path):
    return store, load(store, tmp_path)


def test_words_are_stored_as_codes_and_others_as_given(loaded):
    store, _ = loaded
    stored = rows(store, "select customer_id, gender, acquisition_channel from customer")
    assert sorted(stored) == [
        ("C1", "male", "store"),
        ("C2", "female", "mini_program"),
        ("C3", "female", "app"),
        ("C4", "male", "web"),
        ("C5", "female", "referral"),
        ("C6", None, "referral"),
        ("C7", "unknown", "抖音"),
        ("C8", "不详", "抖音"),
        ("C9", "male", None),
    ]


def test_values_no_feature_reads_are_named_with_lines_and_counts(loaded):
    _, result = loaded
    channel, gender = result.warnings
    assert channel.startswith(
        "2 customer(s) have a value of acquisition_channel that no feature reads: "
        "'抖音' (2: lines 8, 9). They were stored as given and count as 'other' in the "
        "acquisition_channel feature."
    )
    assert "store: store, 门店, 线下门店, 实体店, 线下;" in channel
    assert gender.startswith(
        "1 customer(s) have a value of gender that no feature reads: '不详' (1: line 9). "
        "They were stored as given and count as 'unknown' in the gender feature."
    )


def test_the_features_read_what_the_import_stored(loaded):
    store, _ = loaded
    features = customer_features(store, AS_OF, groups=["profile"])
    found = features[["gender", "acquisition_channel"]]
    assert {c: tuple(v) for c, v in found.astype("str").iterrows()} == EXPECTED


def test_the_features_read_words_stored_before_the_import_mapped_them(store, tmp_path):
    load(store, tmp_path)
    with store.begin() as conn:  # as a store loaded by an earlier release holds them
        conn.exec_driver_sql(
            "update customer set gender = '先生', acquisition_channel = '门店' "
            "where customer_id = 'C1'"
        )
    features = customer_features(store, AS_OF, groups=["profile"])
    assert tuple(features.loc["C1", ["gender", "acquisition_channel"]]) == ("male", "store")


def test_the_words_name_exactly_the_feature_codes_and_their_chinese_labels():
    assert set(CHANNEL_WORDS.values()) == set(VALUE_LABELS["acquisition_channel"])
    assert set(CHANNEL_WORDS.values()) == set(ACQUISITION_CHANNELS)
    assert set(GENDER_WORDS.values()) == set(VALUE_LABELS["gender"]) == set(GENDERS)
    for column, words in (("acquisition_channel", CHANNEL_WORDS), ("gender", GENDER_WORDS)):
        for code, (_english, chinese) in VALUE_LABELS[column].items():
            assert words[code] == code
            assert words[chinese.lower()] == code, chinese
