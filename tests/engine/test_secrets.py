"""The pure parts of secrets: the Masker, live-output masking, `${secret.NAME}` references
and substitution, secret variables, and the secrets and token files' formats."""

from __future__ import annotations

import pytest

from synthesis.engine.secrets import (
    MASK,
    NO_MASK,
    Masker,
    OutputMasker,
    SecretScope,
    check_secrets,
    looks_secret,
    parse_secrets,
    parse_tokens,
    references,
    unknown_references,
)
from synthesis.engine.substitution import UnknownSecret, UnknownVariable, substitute


def test_masker_masks_every_occurrence_at_any_depth_longest_first() -> None:
    masker = Masker(["abcd", "abcdef-long", "xy"])
    value = {
        "a": "Bearer abcdef-long and abcd",
        "list": [1, "abcdabcd", {"abcd": None}],
        "n": 7,
        "short": "xy is too short to mask",
    }
    assert masker.mask(value) == {
        "a": f"Bearer {MASK} and {MASK}",
        "list": [1, MASK + MASK, {MASK: None}],
        "n": 7,
        "short": "xy is too short to mask",
    }
    assert masker.text("regex [.*] safe") == "regex [.*] safe"
    assert Masker(["a.c+"]).text("abc a.c+") == f"abc {MASK}"
    assert not NO_MASK and NO_MASK.mask({"a": "b"}) == {"a": "b"}


def test_output_masker_masks_a_secret_split_between_chunks() -> None:
    stream = OutputMasker(Masker(["s3cret-value"]))
    shown = [stream.feed("out", "line one s3cr"), stream.feed("out", "et-value line two\n")]
    shown += [text for _, text in stream.drain()]
    assert "".join(shown) == f"line one {MASK} line two\n"
    assert all("s3cr" not in part for part in shown)
    assert stream.feed("err", "plain") + "".join(t for _, t in stream.drain()) == "plain"
    # only an end that could begin a secret waits; the rest goes out at once
    assert stream.feed("out", "aaas3cret-valueb") == f"aaa{MASK}b"
    assert stream.feed("out", "first\n") == "first\n"
    assert stream.feed("out", "then s3") == "then " and stream.drain() == [("out", "s3")]


def test_output_masker_without_secrets_passes_text_through_at_once() -> None:
    stream = OutputMasker(NO_MASK)
    assert stream.feed("out", "abc") == "abc"
    assert stream.drain() == []


def test_references_and_unknown_references_with_their_fields() -> None:
    params = {
        "url": "https://x/${secret.API}",
        "headers": {"Authorization": "Bearer ${secret.TOKEN}"},
        "body": ["$${secret.LITERAL}", "${secret.NOPE}"],
    }
    assert references(params) == {"API", "TOKEN", "NOPE"}
    assert unknown_references(params, {"API": "v", "TOKEN": "v"}, "steps[0].parameters") == [
        ("steps[0].parameters.body[1]", "NOPE")
    ]


def test_substitution_reads_secrets_only_when_given() -> None:
    secrets = {"API": "the-key"}
    assert substitute("Bearer ${secret.API}", {}, secrets) == "Bearer the-key"
    assert substitute("${secret.API}", {}, secrets) == "the-key"
    assert substitute("$${secret.API}", {}, secrets) == "${secret.API}"
    with pytest.raises(UnknownSecret, match="unknown secret 'NOPE'"):
        substitute("${secret.NOPE}", {}, secrets)
    with pytest.raises(UnknownVariable):  # without secrets, `secret` is a variable name
        substitute("${secret.API}", {}, None)


def test_secret_variables_are_masked_by_name_and_by_value() -> None:
    scope = SecretScope({"pin"})
    scope.declare((), ["password", "db_token", "region", "API_KEY"])
    assert scope.names == {"pin", "password", "db_token", "API_KEY"}
    variables = {"pin": 12345678, "password": "hunter22", "region": "eu", "log": "pw hunter22"}
    masker = scope.masker(variables, Masker(["named-secret"]))
    assert masker.values == {"12345678", "hunter22", "named-secret"}
    assert scope.view(variables, masker) == {
        "pin": MASK,
        "password": MASK,
        "region": "eu",
        "log": f"pw {MASK}",
    }
    # what is kept to run again never holds a named secret
    assert scope.kept({"password": "x named-secret"}, Masker(["named-secret"])) == {
        "password": f"x {MASK}"
    }


def test_names_that_look_secret() -> None:
    for name in ("password", "DB_PASSWORD", "passwd", "api_key", "apikey", "GH_TOKEN", "secret"):
        assert looks_secret(name), name
    for name in ("region", "user", "count", "passage"):
        assert not looks_secret(name), name


def test_secrets_file_formats_and_errors_never_show_a_value() -> None:
    text = "# comment\n\nAPI_KEY = abcd-1234\nDB=pa=ss=word\n"
    assert parse_secrets(text, "f") == {"API_KEY": "abcd-1234", "DB": "pa=ss=word"}
    assert parse_secrets('{"A": " spaced value "}', "f") == {"A": " spaced value "}
    for bad, message in (
        ("no equals sign here-secretvalue", "f line 1: expected NAME=value"),
        ("A=one\nA=two-secretvalue", "f line 2: secret 'A' is defined twice"),
        ("bad name=secretvalue", "f line 1: expected NAME=value"),
        ('{"A": 1}', "f: a JSON secrets file is an object of strings"),
        ('{"A": "secretvalue"', "f: not valid JSON"),
    ):
        with pytest.raises(ValueError) as caught:
            parse_secrets(bad, "f")
        assert str(caught.value) == message
        assert "secretvalue" not in str(caught.value)


def test_secret_values_too_short_to_mask_are_refused() -> None:
    check_secrets({"OK": "abcd"})
    with pytest.raises(ValueError, match="at least 4 characters"):
        check_secrets({"SHORT": "abc"})
    with pytest.raises(ValueError, match="letters, digits and '_'"):
        check_secrets({"with-dash": "abcd"})


def test_token_file_format() -> None:
    assert parse_tokens("# ops\none\n\ntwo:read\n", "f") == ("one", "two:read")
    with pytest.raises(ValueError, match="f line 1: expected one token"):
        parse_tokens("two words\n", "f")
    with pytest.raises(ValueError, match="no token"):
        parse_tokens("# nothing\n", "f")


def test_a_secret_is_masked_as_it_stands_inside_json_too() -> None:
    """Outputs often carry JSON: a secret with a quote, a backslash or a newline (a PEM
    key) is written there escaped, and must be masked in that form as well."""
    secret = 'pa"ss\\wd\nline-7788'
    masker = Masker([secret])
    shown = masker.text('{"k":"pa\\"ss\\\\wd\\nline-7788"} and ' + secret)
    assert shown == '{"k":"***"} and ***'
