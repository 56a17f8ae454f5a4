import pytest

from crm_ml.store.normalize import normalize_consent, normalize_email, normalize_phone


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "138-0013-8000", "+86 138 0013 8000", "0086-13800138000", "8613800138000"],
)
def test_chinese_mobiles_become_e164(raw):
    assert normalize_phone(raw) == "+8613800138000"


def test_international_numbers_are_kept():
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["1.38E+10", "1.3800138E10"])
def test_spreadsheet_mangled_phone_is_rejected(raw):
    with pytest.raises(ValueError, match="scientific notation"):
        normalize_phone(raw)


@pytest.mark.parametrize("raw", ["12345", "+8612345678901", "phone"])
def test_non_phones_are_rejected(raw):
    with pytest.raises(ValueError, match="not a"):
        normalize_phone(raw)


def test_email_is_lower_cased_and_checked():
    assert normalize_email("  Li.Na@Example.COM ") == "li.na@example.com"
    with pytest.raises(ValueError, match="not an email"):
        normalize_email("li.na@")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Y", "granted"),
        ("是", "granted"),
        ("1", "granted"),
        ("granted", "granted"),
        ("N", "withdrawn"),
        ("否", "withdrawn"),
        ("0", "withdrawn"),
        ("退订", "withdrawn"),
        ("取消订阅", "withdrawn"),
        ("取消", "withdrawn"),
        ("拒绝", "withdrawn"),
        ("Revoked", "withdrawn"),
        ("Opt-Out", "withdrawn"),
        ("opt out", "withdrawn"),
        ("optout", "withdrawn"),
        ("unsubscribe", "withdrawn"),
        (" Unsubscribed ", "withdrawn"),
        ("", "unknown"),
        (None, "unknown"),
        (float("nan"), "unknown"),
        ("maybe", "unknown"),
        ("ok", "unknown"),
    ],
)
def test_consent_answers_map_explicitly_and_unknown_means_no(raw, expected):
    assert normalize_consent(raw) == expected
