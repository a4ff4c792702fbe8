"""Hand-built hostile tokens: what an attacker can send, built without our signing code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segments(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())


def rs256(header: dict[str, Any], payload: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    signing_input = segments(header, payload)
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(signature)


def alg_none(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return segments({**header, "alg": "none"}, payload) + "." + signature


def hs256_with_public_key(header: dict[str, Any], payload: dict[str, Any], public_key: rsa.RSAPublicKey) -> str:
    """The classic key-confusion attack: HMAC keyed with the server's public PEM."""
    secret = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = segments({**header, "alg": "HS256"}, payload)
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def with_payload(token: str, **changes: Any) -> str:
    """Same header and signature, edited claims."""
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    claims.update(changes)
    return header + "." + b64(json.dumps(claims).encode()) + "." + signature


def flip_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    return header + "." + payload + "." + b64(bytes(raw))
