"""encryption_key_file / previous_encryption_key_files (issue 16 item 5): config problems at load time and
key problems when the key files are read (runtime.load_key_files, which check-config also runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway import keys
from gateway.config import load_settings
from gateway.errors import ConfigError
from gateway.runtime import load_key_files
from tests.unit.test_config import ENV, minimal, problems, provider


def pem_of(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def write(path: Path, pem: bytes) -> str:
    path.write_bytes(pem)
    return path.name


def jwt_provider(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    if not (tmp_path / "client.pem").exists():
        write(tmp_path / "client.pem", keys.generate_ec_pem())
    return provider(client_auth="private_key_jwt", client_secret=None, private_key_file="client.pem", **changes)


def key_problems(document: dict[str, Any], tmp_path: Path) -> list[str]:
    settings = load_settings(document, ENV, base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        load_key_files(settings)
    return info.value.problems


def test_encryption_keys_load_and_are_resolved(tmp_path: Path) -> None:
    write(tmp_path / "enc.pem", keys.generate_rsa_pem())
    write(tmp_path / "enc-old.pem", keys.generate_ec_pem())
    document = minimal(providers=[jwt_provider(tmp_path, encryption_key_file="enc.pem",
                                               previous_encryption_key_files=["enc-old.pem"])])
    settings = load_settings(document, ENV, base_dir=tmp_path)
    assert settings.providers[0].encryption_key_file == str(tmp_path / "enc.pem")
    assert settings.providers[0].previous_encryption_key_files == (str(tmp_path / "enc-old.pem"),)
    material = load_key_files(settings)
    current, old = material.encryption_keys["idp"]
    assert (current.public.kty, old.public.kty) == ("RSA", "EC")
    assert current.kid == keys.thumbprint(dict(current.public.jwk))


def test_defaults_are_off(tmp_path: Path) -> None:
    settings = load_settings(minimal(), ENV, base_dir=tmp_path)
    assert settings.providers[0].encryption_key_file is None
    assert settings.providers[0].previous_encryption_key_files == ()
    assert load_key_files(settings).encryption_keys == {}


def test_client_secret_providers_may_have_an_encryption_key(tmp_path: Path) -> None:
    write(tmp_path / "enc.pem", keys.generate_rsa_pem())
    settings = load_settings(minimal(providers=[provider(encryption_key_file="enc.pem")]), ENV, base_dir=tmp_path)
    assert len(load_key_files(settings).encryption_keys["idp"]) == 1


def test_missing_files_are_named(tmp_path: Path) -> None:
    document = minimal(providers=[provider(encryption_key_file="absent.pem",
                                           previous_encryption_key_files=["old.pem"])])
    assert problems(document, tmp_path) == [
        f"providers[0].encryption_key_file: file {tmp_path / 'absent.pem'} does not exist",
        f"providers[0].previous_encryption_key_files[0]: file {tmp_path / 'old.pem'} does not exist",
    ]


def test_previous_keys_need_a_current_one(tmp_path: Path) -> None:
    write(tmp_path / "old.pem", keys.generate_rsa_pem())
    document = minimal(providers=[provider(previous_encryption_key_files=["old.pem"])])
    assert problems(document, tmp_path) == [
        "providers[0].previous_encryption_key_files: needs encryption_key_file (the key the provider encrypts to now)"
    ]


@pytest.mark.parametrize("value", [7, ["a.pem"], {"file": "a.pem"}])
def test_wrong_types(tmp_path: Path, value: Any) -> None:
    found = problems(minimal(providers=[provider(encryption_key_file=value)]), tmp_path)
    assert found == ["providers[0].encryption_key_file: must be a string"]
    found = problems(minimal(providers=[provider(previous_encryption_key_files="a.pem")]), tmp_path)
    assert found[0].startswith("providers[0].previous_encryption_key_files: must be a list of strings")


def test_same_file_as_private_key_file_is_refused(tmp_path: Path) -> None:
    for name in ("client.pem", "./client.pem"):
        document = minimal(providers=[jwt_provider(tmp_path, encryption_key_file=name)])
        assert problems(document, tmp_path) == [
            "providers[0].encryption_key_file: must not be the private_key_file: use a separate key for encryption "
            "(eid-gateway keygen --rsa --out enc-key.pem)"
        ]
    document = minimal(providers=[jwt_provider(tmp_path, encryption_key_file="enc.pem",
                                               previous_encryption_key_files=["client.pem"])])
    write(tmp_path / "enc.pem", keys.generate_rsa_pem())
    assert [p.split(":")[0] for p in problems(document, tmp_path)] == ["providers[0].previous_encryption_key_files[0]"]


def test_same_key_material_under_another_name_is_refused(tmp_path: Path) -> None:
    client_pem = keys.generate_rsa_pem()
    write(tmp_path / "client.pem", client_pem)
    # The same key pair in another encoding (traditional PEM instead of PKCS#8), another file name.
    same = serialization.load_pem_private_key(client_pem, None)
    assert isinstance(same, rsa.RSAPrivateKey)
    write(tmp_path / "copy.pem", same.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                                    serialization.NoEncryption()))
    document = minimal(providers=[jwt_provider(tmp_path, encryption_key_file="copy.pem")])
    assert key_problems(document, tmp_path) == [
        "providers[0].encryption_key_file: is the same key as providers[0].private_key_file; "
        "generate a separate encryption key"
    ]


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        pytest.param(pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
                     "RSA keys must have at least 2048 bits", id="rsa-1024"),
        pytest.param(pem_of(ec.generate_private_key(ec.SECP384R1())),
                     "EC curve secp384r1 is not supported for encryption (use P-256 or RSA 2048+)", id="p-384"),
        pytest.param(pem_of(ec.generate_private_key(ec.SECP256K1())),
                     "EC curve secp256k1 is not supported for encryption (use P-256 or RSA 2048+)", id="secp256k1"),
        pytest.param(pem_of(ed25519.Ed25519PrivateKey.generate()), "only RSA and EC private keys are supported",
                     id="ed25519"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                     "not an unencrypted PEM private key (PKCS#8 or traditional)", id="not-a-key"),
    ],
)
def test_wrong_key_files_are_clear_start_up_errors(tmp_path: Path, pem: bytes, message: str) -> None:
    write(tmp_path / "enc.pem", pem)
    document = minimal(providers=[provider(encryption_key_file="enc.pem")])
    assert key_problems(document, tmp_path) == [f"providers[0].encryption_key_file: {message}"]


def test_a_wrong_previous_key_is_named_with_its_index(tmp_path: Path) -> None:
    write(tmp_path / "enc.pem", keys.generate_rsa_pem())
    write(tmp_path / "old.pem", pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    document = minimal(providers=[provider(encryption_key_file="enc.pem",
                                           previous_encryption_key_files=["enc.pem", "old.pem"])])
    assert key_problems(document, tmp_path) == [
        "providers[0].previous_encryption_key_files[1]: RSA keys must have at least 2048 bits"
    ]


def test_encryption_public_jwk_shape(tmp_path: Path) -> None:
    key = keys.encryption_key_from_pem(keys.generate_rsa_pem())
    jwk = keys.encryption_public_jwk(key)
    assert jwk == {"kty": "RSA", "n": key.public.jwk["n"], "e": "AQAB", "kid": key.kid, "use": "enc"}
    ec_key = keys.encryption_key_from_pem(keys.generate_ec_pem())
    assert set(keys.encryption_public_jwk(ec_key)) == {"kty", "crv", "x", "y", "kid", "use"}
    assert "d" not in keys.encryption_public_jwk(ec_key)
