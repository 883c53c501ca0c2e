"""JWE in the JOSE module (issue 16 item 5): decrypt / unwrap_nested / open_nested / encrypt, the encryption
JWKS, the request-object chooser, and the attack cases (attacks.md T34 and the rows added in docs/security.md).

Besides round trips through the module, tokens are forged here with cryptography alone (RSA-OAEP, RSA1_5,
AES-GCM, AES-CBC-HMAC), so a bug in joserfc cannot hide a bug in the module, and refusals are shown to hold
for tokens that the key could really decrypt.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway import keys
from gateway.protocol import jws
from gateway.protocol.jws import DecryptionKey, JoseError

RSA_ENC = keys.encryption_key_from_pem(keys.generate_rsa_pem())
EC_ENC = keys.encryption_key_from_pem(keys.generate_ec_pem())
OTHER_RSA_ENC = keys.encryption_key_from_pem(keys.generate_rsa_pem())
OUR_KEYS = (RSA_ENC, EC_ENC)

IDP_SIGNING = keys.signing_key_from_pem(keys.generate_ec_pem(), kid="idp-ec")
NOW = int(time.time())
CLAIMS = {"iss": "https://idp.test", "aud": "gw", "sub": "u1", "iat": NOW, "exp": NOW + 300}
INNER = jws.sign(CLAIMS, IDP_SIGNING)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(value: Any) -> str:
    return b64(json.dumps(value).encode())


def rsa_public(key: DecryptionKey) -> rsa.RSAPublicKey:
    n = int.from_bytes(base64.urlsafe_b64decode(key.public.jwk["n"] + "=="), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(key.public.jwk["e"] + "=="), "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def forge_jwe(header: dict[str, Any], plaintext: bytes, *, to: DecryptionKey | None = RSA_ENC,
              cek: bytes | None = None) -> str:
    """A compact JWE made with cryptography only (RFC 7516 §5.1, RFC 7518 §4.2-4.3, §5.2-5.3)."""
    enc = header["enc"]
    size = {"A128GCM": 16, "A256GCM": 32, "A128CBC-HS256": 32, "A256CBC-HS512": 64}.get(enc, 32)
    cek = cek if cek is not None else os.urandom(size)
    alg = header["alg"]
    if alg == "dir" or to is None:
        encrypted_key = b""
    elif alg == "RSA1_5":
        encrypted_key = rsa_public(to).encrypt(cek, padding.PKCS1v15())
    else:
        digest = hashes.SHA256() if alg == "RSA-OAEP-256" else hashes.SHA1()
        encrypted_key = rsa_public(to).encrypt(cek, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest,
                                                                 label=None))
    protected = seg(header)
    aad = protected.encode("ascii")
    if enc.endswith("GCM"):
        iv = os.urandom(12)
        sealed = AESGCM(cek).encrypt(iv, plaintext, aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
    else:
        half = len(cek) // 2
        mac_key, enc_key = cek[:half], cek[half:]
        iv = os.urandom(16)
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        al = (len(aad) * 8).to_bytes(8, "big")
        digest_mod = hashlib.sha256 if enc == "A128CBC-HS256" else hashlib.sha512
        tag = hmac.new(mac_key, aad + iv + ciphertext + al, digest_mod).digest()[:half]
    return ".".join([protected, b64(encrypted_key), b64(iv), b64(ciphertext), b64(tag)])


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a token reaches joserfc: these refusals must come from our own parse of the header."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the token reached joserfc")

    monkeypatch.setattr(jws.rfc_jwe, "decrypt_compact", refuse)


def refusal(token: Any, keys_: tuple[DecryptionKey, ...] = OUR_KEYS, **kwargs: Any) -> str:
    with pytest.raises(JoseError) as caught:
        jws.decrypt(token, keys_, **kwargs)
    return caught.value.reason


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("enc", sorted(jws.JWE_ENCRYPTIONS))
@pytest.mark.parametrize("alg", sorted(jws.JWE_ALGORITHMS))
def test_round_trip_every_allowed_alg_and_enc(alg: str, enc: str) -> None:
    recipient = RSA_ENC if alg.startswith("RSA") else EC_ENC
    token = jws.encrypt(INNER.encode(), recipient.public, alg=alg, enc=enc)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": alg, "enc": enc, "cty": "JWT", "kid": recipient.kid, **(
        {"epk": header["epk"]} if alg.startswith("ECDH") else {})}
    assert jws.decrypt(token, OUR_KEYS) == INNER.encode()
    assert jws.open_nested(token, OUR_KEYS, [IDP_SIGNING.public], algorithms=["ES256"]) == CLAIMS


@pytest.mark.parametrize("enc", sorted(jws.JWE_ENCRYPTIONS))
@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256"])
def test_independently_forged_jwe_decrypts(alg: str, enc: str) -> None:
    token = forge_jwe({"alg": alg, "enc": enc, "kid": RSA_ENC.kid, "cty": "JWT"}, INNER.encode())
    assert jws.decrypt(token, OUR_KEYS) == INNER.encode()
    assert jws.unwrap_nested(token, OUR_KEYS) == INNER


def test_without_kid_each_key_of_the_right_type_is_tried() -> None:
    token = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, b"a.b.c")
    assert jws.decrypt(token, (OTHER_RSA_ENC, EC_ENC, RSA_ENC)) == b"a.b.c"


def test_rollover_previous_key_still_decrypts() -> None:
    old = keys.encryption_key_from_pem(keys.generate_rsa_pem())
    token = jws.encrypt(INNER.encode(), old.public, alg="RSA-OAEP-256", enc="A256GCM")
    new = RSA_ENC
    assert jws.decrypt(token, (new, old)) == INNER.encode()
    assert refusal(token, (new,)) == "jwe_unknown_key"  # once the old key is dropped, its tokens are not


def test_a_signed_token_passes_unwrap_unchanged() -> None:
    assert jws.unwrap_nested(INNER, ()) == INNER
    assert jws.unwrap_nested(INNER, OUR_KEYS) == INNER


def test_cty_spellings() -> None:
    for cty in ("JWT", "jwt", "application/jwt", None):
        header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", **({"cty": cty} if cty else {})}
        assert jws.unwrap_nested(forge_jwe(header, INNER.encode()), OUR_KEYS) == INNER
    token = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "application/json"}, INNER.encode())
    with pytest.raises(JoseError, match="jwe_unexpected_content_type"):
        jws.unwrap_nested(token, OUR_KEYS)


def test_decrypt_is_fast_enough() -> None:
    """A ~2 KB RSA-OAEP-256/A256GCM ID token: measured about 0.35-0.5 ms; 20 ms leaves room for CI."""
    token = jws.encrypt(jws.sign({**CLAIMS, "pad": "x" * 600}, IDP_SIGNING).encode(), RSA_ENC.public,
                        alg="RSA-OAEP-256", enc="A256GCM")
    assert 1800 < len(token) < 3000
    jws.decrypt(token, OUR_KEYS)
    start = time.perf_counter()
    for _ in range(20):
        jws.decrypt(token, OUR_KEYS)
    assert (time.perf_counter() - start) / 20 < 0.02


# --- refusals before the library ----------------------------------------------------------------------


def _shell(header: dict[str, Any], ek: str = "AAAA") -> str:
    return ".".join([seg(header), ek, "AAAAAAAAAAAAAAAA", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA"])


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(_shell({"alg": "RSA1_5", "enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="rsa1_5"),
        pytest.param(_shell({"alg": "dir", "enc": "A256GCM"}, ek=""), "jwe_algorithm_not_allowed", id="dir"),
        pytest.param(_shell({"alg": "A256KW", "enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="aes-kw"),
        pytest.param(_shell({"alg": "A256GCMKW", "enc": "A256GCM", "iv": "AAAA", "tag": "AAAA"}),
                     "jwe_algorithm_not_allowed", id="aes-gcm-kw"),
        pytest.param(_shell({"alg": "PBES2-HS256+A128KW", "enc": "A128GCM", "p2c": 2147483647, "p2s": "AAAA"}),
                     "jwe_algorithm_not_allowed", id="pbes2"),
        pytest.param(_shell({"alg": "none", "enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="none"),
        pytest.param(_shell({"alg": "rsa-oaep-256", "enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="case"),
        pytest.param(_shell({"enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="no-alg"),
        pytest.param(_shell({"alg": ["RSA-OAEP"], "enc": "A256GCM"}), "jwe_algorithm_not_allowed", id="alg-list"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A192GCM"}), "jwe_encryption_not_allowed", id="a192gcm"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A128CBC"}), "jwe_encryption_not_allowed", id="bad-enc"),
        pytest.param(_shell({"alg": "RSA-OAEP-256"}), "jwe_encryption_not_allowed", id="no-enc"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF"}), "jwe_unsupported_header",
                     id="zip"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "crit": ["exp"], "exp": 1}),
                     "jwe_unsupported_header", id="crit"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "jku": "https://canary.test/jwks.json"}),
                     "jwe_unsupported_header", id="jku"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "jwk": dict(RSA_ENC.public.jwk)}),
                     "jwe_unsupported_header", id="jwk"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "x5u": "https://canary.test/c.pem"}),
                     "jwe_unsupported_header", id="x5u"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "x5c": ["AAAA"]}), "jwe_unsupported_header",
                     id="x5c"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "x" * 257}), "malformed_kid",
                     id="long-kid"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": 7}), "malformed_kid", id="int-kid"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "nobody"}), "jwe_unknown_key",
                     id="unknown-kid"),
        pytest.param(_shell({"alg": "ECDH-ES", "enc": "A256GCM"}, ek=""), "jwe_malformed", id="ecdh-no-epk"),
        pytest.param(_shell({"alg": "ECDH-ES", "enc": "A256GCM", "epk": {**EC_ENC.private_jwk}}, ek=""),
                     "jwe_malformed", id="ecdh-private-epk"),
        pytest.param(_shell({"alg": "ECDH-ES", "enc": "A256GCM", "epk": dict(EC_ENC.public.jwk)}),
                     "jwe_malformed", id="ecdh-es-with-encrypted-key"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, ek=""), "jwe_malformed",
                     id="oaep-without-encrypted-key"),
        pytest.param(_shell({"alg": "ECDH-ES+A128KW", "enc": "A256GCM",
                             "epk": {"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"}}),
                     "jwe_unknown_key", id="ecdh-other-curve"),
        pytest.param(_shell({"alg": "ECDH-ES+A128KW", "enc": "A256GCM",
                             "epk": {"kty": "OKP", "crv": "X25519", "x": "AAAA"}}), "jwe_malformed",
                     id="ecdh-okp-epk"),
        pytest.param(".".join([b64(b"[1]"), "AAAA", "AAAA", "AAAA", "AAAA"]), "jwe_malformed", id="header-array"),
        pytest.param(".".join([b64(b"{nope"), "AAAA", "AAAA", "AAAA", "AAAA"]), "jwe_malformed",
                     id="header-not-json"),
        pytest.param(".".join([b64(b'{"alg":"RSA-OAEP","alg":"RSA1_5","enc":"A256GCM"}'), "AAAA", "AAAA", "AAAA",
                               "AAAA"]), "jwe_algorithm_not_allowed", id="duplicate-alg-last-wins"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM"}).rsplit(".", 1)[0] + ".", "jwe_malformed",
                     id="empty-tag"),
        pytest.param(_shell({"alg": "RSA-OAEP-256", "enc": "A256GCM"}) + ".AAAA", "jwe_malformed", id="six-segments"),
        pytest.param(INNER, "jwe_malformed", id="a-jws"),
    ],
)
def test_refused_before_the_library(token: str, reason: str, no_library: None) -> None:
    assert refusal(token) == reason


@pytest.mark.parametrize(
    "alg_header",
    [
        pytest.param({"alg": "RSA1_5", "enc": "A256GCM"}, id="rsa1_5"),
        pytest.param({"alg": "RSA1_5", "enc": "A128CBC-HS256"}, id="rsa1_5-cbc"),
        pytest.param({"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF"}, id="zip"),
        pytest.param({"alg": "RSA-OAEP-256", "enc": "A256GCM", "crit": ["b64"], "b64": True}, id="crit"),
        pytest.param({"alg": "RSA-OAEP-256", "enc": "A256GCM", "jku": "https://canary.test/k"}, id="jku"),
    ],
)
def test_refused_even_when_the_key_could_decrypt_it(alg_header: dict[str, Any], no_library: None) -> None:
    token = forge_jwe({**alg_header, "kid": RSA_ENC.kid}, INNER.encode())
    assert refusal(token).startswith("jwe_")


def test_dir_with_a_real_key_is_refused(no_library: None) -> None:
    token = forge_jwe({"alg": "dir", "enc": "A256GCM"}, INNER.encode(), to=None)
    assert refusal(token) == "jwe_algorithm_not_allowed"


def test_caller_allow_list_narrows_the_module_list(no_library: None) -> None:
    token = _shell({"alg": "RSA-OAEP", "enc": "A256GCM"})
    assert refusal(token, algorithms=["RSA-OAEP-256"]) == "jwe_algorithm_not_allowed"
    assert refusal(_shell({"alg": "RSA-OAEP-256", "enc": "A128GCM"}), encryptions=["A256GCM"]) == (
        "jwe_encryption_not_allowed"
    )
    # A caller cannot widen it: RSA1_5 named by the caller is still refused.
    assert refusal(_shell({"alg": "RSA1_5", "enc": "A256GCM"}), algorithms=["RSA1_5"]) == "jwe_algorithm_not_allowed"


def test_oversize_refused_before_decoding(monkeypatch: pytest.MonkeyPatch, no_library: None) -> None:
    calls: list[str] = []
    monkeypatch.setattr(jws, "b64url_decode", lambda s: calls.append(s) or b"")
    token = _shell({"alg": "RSA-OAEP-256", "enc": "A256GCM", "pad": "x" * 40_000})
    start = time.perf_counter()
    assert refusal(token) == "too_large"
    assert time.perf_counter() - start < 0.05
    assert calls == []
    assert jws.DEFAULT_MAX_JWE_BYTES == 32 * 1024


def test_size_cap_is_exact() -> None:
    token = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    assert jws.decrypt(token, OUR_KEYS, max_bytes=len(token)) == INNER.encode()
    assert refusal(token, max_bytes=len(token) - 1) == "too_large"


@pytest.mark.parametrize("part", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("trick", ["padding", "standard-alphabet", "trailing-bits", "whitespace"])
def test_non_canonical_base64url_refused(part: int, trick: str, no_library: None) -> None:
    token = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    parts = token.split(".")
    segment = parts[part]
    if trick == "padding":
        segment += "=" * (-len(segment) % 4 or 4)
    elif trick == "standard-alphabet":
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        standard = base64.b64encode(raw).rstrip(b"=").decode()
        if standard == segment:  # no - or _ in this segment: force one
            standard = segment[:-1] + "+"
        segment = standard
    elif trick == "trailing-bits":
        if len(segment) % 4 == 0:
            # No unused bits to set (e.g. the 12-byte IV): the canonical segment itself must still decode.
            assert jws.b64url_decode(segment)
            return
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        segment = segment[:-1] + alphabet[alphabet.index(segment[-1]) ^ 1]
    else:
        segment = segment[:4] + " " + segment[4:]
    parts[part] = segment
    assert refusal(".".join(parts)) in {"jwe_malformed", "jwe_algorithm_not_allowed"}


def test_non_strings_refused() -> None:
    assert refusal(None) == "jwe_malformed"
    assert refusal(b"a.b.c.d.e") == "jwe_malformed"


# --- refusals by decryption ---------------------------------------------------------------------------


def test_jwe_for_another_key_is_refused() -> None:
    by_kid = jws.encrypt(INNER.encode(), OTHER_RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    assert refusal(by_kid) == "jwe_unknown_key"
    without_kid = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, INNER.encode(), to=OTHER_RSA_ENC)
    assert refusal(without_kid) == "jwe_decrypt_failed"
    # The right kid but another key's ciphertext: the kid is a lookup, not a proof.
    lying = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": RSA_ENC.kid}, INNER.encode(),
                      to=OTHER_RSA_ENC)
    assert refusal(lying) == "jwe_decrypt_failed"


def test_ec_token_for_another_ec_key() -> None:
    other = keys.encryption_key_from_pem(keys.generate_ec_pem())
    token = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, b"x", to=RSA_ENC)
    assert jws.decrypt(token, OUR_KEYS) == b"x"
    ecdh = jws.encrypt(b"a.b.c", other.public, alg="ECDH-ES+A256KW", enc="A256GCM")
    assert refusal(ecdh) == "jwe_unknown_key"
    stripped = ".".join([seg({k: v for k, v in json.loads(base64.urlsafe_b64decode(
        ecdh.split(".")[0] + "==")).items() if k != "kid"}), *ecdh.split(".")[1:]])
    assert refusal(stripped) == "jwe_decrypt_failed"  # the header is authenticated, and the key is wrong


@pytest.mark.parametrize("enc", sorted(jws.JWE_ENCRYPTIONS))
@pytest.mark.parametrize("part", [1, 2, 3, 4, 0])
def test_tampered_token_is_refused(part: int, enc: str) -> None:
    token = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc=enc)
    parts = token.split(".")
    if part == 0:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=="))
        parts[0] = seg({**header, "typ": "JWT"})  # a changed header is changed additional data
    else:
        raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
        raw[len(raw) // 2] ^= 0x01
        parts[part] = b64(bytes(raw))
    assert refusal(".".join(parts)) == "jwe_decrypt_failed"


def test_truncated_tag_is_refused() -> None:
    token = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    parts = token.split(".")
    parts[4] = b64(base64.urlsafe_b64decode(parts[4] + "==")[:8])
    assert refusal(".".join(parts)) == "jwe_decrypt_failed"


# --- nested tokens -------------------------------------------------------------------------------------


def test_jwe_with_plain_claims_inside_is_refused() -> None:
    token = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, json.dumps(CLAIMS).encode())
    assert jws.decrypt(token, OUR_KEYS) == json.dumps(CLAIMS).encode()  # decryptable: refusal is a decision
    with pytest.raises(JoseError, match="jwe_plain_claims"):
        jws.unwrap_nested(token, OUR_KEYS)
    with pytest.raises(JoseError, match="jwe_plain_claims"):
        jws.open_nested(token, OUR_KEYS, [IDP_SIGNING.public], algorithms=["ES256"])


def test_jwe_nested_twice_is_refused() -> None:
    once = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    twice = jws.encrypt(once.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    with pytest.raises(JoseError, match="jwe_nested_twice"):
        jws.unwrap_nested(twice, OUR_KEYS)


def test_jwe_with_other_content_is_refused() -> None:
    for content in (b"\xff\xfe binary", b"hello", b"a.b", b"[1, 2]", INNER.encode() + b"\n",
                    b" " + INNER.encode(), INNER.encode() + b".", b"..", INNER.replace(".", "=.", 1).encode()):
        token = forge_jwe({"alg": "RSA-OAEP-256", "enc": "A256GCM"}, content)
        with pytest.raises(JoseError, match="jwe_malformed_content"):
            jws.unwrap_nested(token, OUR_KEYS)


def test_inner_jws_gets_every_check_of_verify() -> None:
    attacker = keys.signing_key_from_pem(keys.generate_ec_pem(), kid="idp-ec")
    forged_inner = jws.sign(CLAIMS, attacker)
    token = jws.encrypt(forged_inner.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    with pytest.raises(JoseError, match="bad_signature"):
        jws.open_nested(token, OUR_KEYS, [IDP_SIGNING.public], algorithms=["ES256"])
    none_inner = seg({"alg": "none"}) + "." + seg(CLAIMS) + "."
    token = jws.encrypt(none_inner.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    with pytest.raises(JoseError, match="algorithm_not_allowed"):
        jws.open_nested(token, OUR_KEYS, [IDP_SIGNING.public], algorithms=["ES256"])


def test_jwe_without_our_key_is_refused_as_before(no_library: None) -> None:
    token = jws.encrypt(INNER.encode(), RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    with pytest.raises(JoseError, match="encrypted_token_without_key"):
        jws.unwrap_nested(token, ())
    # verify (the JWS path) still refuses five segments outright, whatever keys it has.
    with pytest.raises(JoseError, match="malformed"):
        jws.verify(token, [IDP_SIGNING.public], algorithms=["ES256"])


# --- encrypt, encryption JWKS, chooser -------------------------------------------------------------------


def test_encrypt_refuses_what_we_would_not_accept() -> None:
    with pytest.raises(JoseError, match="jwe_algorithm_not_allowed"):
        jws.encrypt(b"x", RSA_ENC.public, alg="RSA1_5", enc="A256GCM")
    with pytest.raises(JoseError, match="jwe_algorithm_not_allowed"):
        jws.encrypt(b"x", RSA_ENC.public, alg="dir", enc="A256GCM")
    with pytest.raises(JoseError, match="jwe_encryption_not_allowed"):
        jws.encrypt(b"x", RSA_ENC.public, alg="RSA-OAEP-256", enc="A192GCM")
    with pytest.raises(JoseError, match="no_matching_key"):
        jws.encrypt(b"x", RSA_ENC.public, alg="ECDH-ES", enc="A256GCM")
    pinned = jws.encryption_public_key_from_jwk({**RSA_ENC.public.jwk, "use": "enc", "alg": "RSA-OAEP"})
    with pytest.raises(JoseError, match="no_matching_key"):
        jws.encrypt(b"x", pinned, alg="RSA-OAEP-256", enc="A256GCM")


def test_encrypt_cty_and_independent_decrypt() -> None:
    token = jws.encrypt(b"a.b.c", RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM")
    protected, ek, iv, ciphertext, tag = token.split(".")
    numbers = RSA_ENC.private_jwk

    def num(name: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(numbers[name] + "=="), "big")

    public_numbers = rsa.RSAPublicNumbers(num("e"), num("n"))
    key = rsa.RSAPrivateNumbers(num("p"), num("q"), num("d"), num("dp"), num("dq"), num("qi"),
                                public_numbers).private_key()
    cek = key.decrypt(base64.urlsafe_b64decode(ek + "=="), padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    raw = base64.urlsafe_b64decode
    plain = AESGCM(cek).decrypt(raw(iv + "=="), raw(ciphertext + "==") + raw(tag + "=="), protected.encode())
    assert plain == b"a.b.c"
    assert json.loads(raw(protected + "=="))["cty"] == "JWT"
    no_cty = jws.encrypt(b"a.b.c", RSA_ENC.public, alg="RSA-OAEP-256", enc="A256GCM", cty=None)
    assert "cty" not in json.loads(raw(no_cty.split(".")[0] + "=="))


OP_JWKS = {
    "keys": [
        {**dict(IDP_SIGNING.public.jwk), "kid": "sig-1", "use": "sig", "alg": "ES256"},
        {**dict(RSA_ENC.public.jwk), "kid": "enc-rsa", "use": "enc"},
        {**dict(EC_ENC.public.jwk), "kid": "enc-ec", "use": "enc", "alg": "ECDH-ES+A128KW"},
        {**dict(RSA_ENC.public.jwk), "kid": "enc-no-use", "alg": "RSA-OAEP-256"},
        {**dict(RSA_ENC.public.jwk), "kid": "sig-no-use"},
        {"kty": "oct", "k": "AAAA", "use": "enc", "kid": "symmetric"},
        {**dict(RSA_ENC.private_jwk), "kid": "leaked", "use": "enc"},
        {**dict(RSA_ENC.public.jwk), "kid": "rsa1_5", "use": "enc", "alg": "RSA1_5"},
        {"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA", "use": "enc", "kid": "k1"},
        "not a key",
    ]
}


def test_parse_encryption_jwks_takes_only_usable_encryption_keys() -> None:
    parsed = jws.parse_encryption_jwks(OP_JWKS)
    assert [k.kid for k in parsed] == ["enc-rsa", "enc-ec", "enc-no-use"]
    assert all("d" not in k.jwk for k in parsed)
    # and the signature side still ignores them all but the signing keys
    assert [k.kid for k in jws.parse_jwks(OP_JWKS)] == ["sig-1", "sig-no-use"]


@pytest.mark.parametrize("document", [None, [], {}, {"keys": {}}, {"keys": "x"}])
def test_parse_encryption_jwks_malformed(document: Any) -> None:
    with pytest.raises(JoseError, match="malformed_jwks"):
        jws.parse_encryption_jwks(document)


def test_choose_request_encryption_prefers_rsa_oaep_256_and_a256gcm() -> None:
    parsed = jws.parse_encryption_jwks(OP_JWKS)
    key, alg, enc = jws.choose_request_encryption(
        parsed, ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256", "ECDH-ES+A128KW"], ["A128CBC-HS256", "A256GCM", "A128GCM"]
    )
    assert (key.kid, alg, enc) == ("enc-rsa", "RSA-OAEP-256", "A256GCM")
    key, alg, enc = jws.choose_request_encryption(parsed, ["ECDH-ES+A128KW", "RSA1_5"], ["A128CBC-HS256"])
    assert (key.kid, alg, enc) == ("enc-ec", "ECDH-ES+A128KW", "A128CBC-HS256")
    # the chosen triple really encrypts to that key
    token = jws.encrypt(b"a.b.c", key, alg=alg, enc=enc)
    assert jws.decrypt(token, (dataclasses.replace(EC_ENC, kid="enc-ec"),)) == b"a.b.c"


@pytest.mark.parametrize(
    ("algs", "encs", "reason"),
    [
        (None, ["A256GCM"], "request_encryption_alg_unsupported"),
        ([], ["A256GCM"], "request_encryption_alg_unsupported"),
        (["RSA1_5", "dir", "A256KW"], ["A256GCM"], "request_encryption_alg_unsupported"),
        (["RSA-OAEP-256"], None, "request_encryption_enc_unsupported"),
        (["RSA-OAEP-256"], ["A192GCM"], "request_encryption_enc_unsupported"),
        (["ECDH-ES+A256KW"], ["A256GCM"], "request_encryption_no_key"),  # the EC key pins ECDH-ES+A128KW
    ],
)
def test_choose_request_encryption_refusals(algs: Any, encs: Any, reason: str) -> None:
    with pytest.raises(JoseError, match=reason):
        jws.choose_request_encryption(jws.parse_encryption_jwks(OP_JWKS), algs, encs)
    with pytest.raises(JoseError, match="request_encryption_"):
        jws.choose_request_encryption((), ["RSA-OAEP-256"], ["A256GCM"])


def test_public_encryption_key_refusals() -> None:
    for jwk, reason in [
        ({"kty": "oct", "k": "AAAA", "use": "enc"}, "unsupported_key_type"),
        ({**RSA_ENC.public.jwk, "use": "sig"}, "key_not_for_encryption"),
        ({**RSA_ENC.public.jwk}, "key_not_for_encryption"),
        ({**RSA_ENC.private_jwk, "use": "enc"}, "private_key_in_jwks"),
        ({**RSA_ENC.public.jwk, "use": "enc", "alg": "RSA1_5"}, "jwe_algorithm_not_allowed"),
        ({"kty": "RSA", "n": 5, "e": "AQAB", "use": "enc"}, "malformed_key"),
        ({**EC_ENC.public.jwk, "crv": "P-192", "use": "enc"}, "unsupported_curve"),
        ({**RSA_ENC.public.jwk, "use": "enc", "kid": ["x"]}, "malformed_kid"),
    ]:
        with pytest.raises(JoseError) as caught:
            jws.encryption_public_key_from_jwk(jwk)
        assert caught.value.reason == reason, jwk


def test_reasons_are_metric_safe() -> None:
    """Every reason this module gives for a JWE is a short lowercase word (it becomes a metric label)."""
    import re

    source = Path(jws.__file__).read_text(encoding="utf-8")
    reasons = set(re.findall(r'JoseError\("([^"]+)"', source))
    assert {"jwe_algorithm_not_allowed", "jwe_unknown_key", "jwe_decrypt_failed", "jwe_plain_claims",
            "encrypted_token_without_key", "jwe_nested_twice"} <= reasons
    assert all(re.fullmatch(r"[a-z0-9_]{1,40}", r) for r in reasons)


def test_ec_key_curve_mismatch_on_our_side() -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with pytest.raises(keys.KeyFileError, match="P-256"):
        keys.encryption_key_from_pem(pem)


def test_jose_libraries_are_imported_only_by_the_jose_module() -> None:
    """jws.py is the one JOSE module: no other gateway module imports joserfc or python-jose."""
    import ast
    import gc

    package = Path(jws.__file__).resolve().parents[1]
    importers: set[str] = set()
    for path in package.rglob("*.py"):
        # CPython 3.11.7 once raised "SystemError: AST constructor recursion depth mismatch" here in the full
        # suite (a collection running finalizers in the middle of the AST's construction); none runs now.
        gc.disable()
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        finally:
            gc.enable()
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("joserfc", "jose") for n in names):
                importers.add(str(path.relative_to(package)))
    assert importers == {"protocol/jws.py"}
