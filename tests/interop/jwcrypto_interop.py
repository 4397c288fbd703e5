#!/usr/bin/env python3
"""Interoperability test: tfcctl <-> jwcrypto (an independent JOSE implementation).

Proves both directions of the vc+jwt / vp+jwt contract:
  * tokens minted here with jwcrypto are accepted (and tampered ones rejected
    with the right error code) by `tfcctl ... verify --json`;
  * keys, credentials and presentations produced by tfcctl verify here with
    jwcrypto, resolving did:key ourselves (no tfcctl code on this side).

Usage:
  python3 tests/interop/jwcrypto_interop.py --tfcctl /path/to/tfcctl
  python3 tests/interop/jwcrypto_interop.py --self-test   # Python side only

Prints `ok  <name>` or `FAIL <name>: <reason>` per check, then the line
`N passed, M failed`. Exits 0 only when M == 0.

Dependencies: jwcrypto (see tests/requirements.txt) and the standard library.
"""

import argparse
import base64
import datetime as dt
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import tempfile
import time
import uuid

from jwcrypto import jwk, jws

# ---------------------------------------------------------------------------
# Contract constants
# ---------------------------------------------------------------------------

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
SCHEMA_BASE = "https://schemas.tfc.example"
MAX_VP_LIFETIME = 300  # seconds a presentation may live (exp - iat)
VP_LIFETIME = 120  # what we mint

CREDIT_RATING = ("CreditRatingCredential",
                 {"grade": "B", "score": 72, "assessedOn": "2026-04-01"})
# Non-ASCII claims on purpose: the signed bytes must be UTF-8 on both sides.
ORG_IDENTITY = ("OrganizationIdentityCredential",
                {"corporateNumber": "7000012050002",
                 "legalName": "株式会社テスト建設",
                 "address": "東京都千代田区霞が関3-1-1",
                 "representative": "山田 太郎"})

# Multicodec varint prefixes of the public key inside a did:key.
ED25519_PREFIX = bytes([0xED, 0x01])  # ed25519-pub (0xed)
P256_PREFIX = bytes([0x80, 0x24])  # p256-pub (0x1200)

# NIST P-256: y^2 = x^3 - 3x + b (mod p)
P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Failure(Exception):
    """A check's expectation did not hold."""


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------------------
# Encodings: base64url, base58btc, did:key
# ---------------------------------------------------------------------------

def b64u_enc(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_dec(text):
    # JWS uses unpadded base64url; reject anything else instead of guessing.
    expect(re.fullmatch(r"[A-Za-z0-9_-]*", text) is not None,
           f"not base64url: {text[:40]!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b58_encode(data):
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58_ALPHABET[r] + out
    # Each leading zero byte is written as a leading '1'.
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def b58_decode(text):
    n = 0
    for ch in text:
        idx = B58_ALPHABET.find(ch)
        expect(idx >= 0, f"invalid base58btc character {ch!r}")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + body


def p256_compress(x, y):
    """SEC1 compressed point: 0x02/0x03 (parity of y) + 32-byte x."""
    return bytes([2 + (int.from_bytes(y, "big") & 1)]) + x


def p256_decompress(point):
    """Recover (x, y) as 32-byte strings from a 33-byte SEC1 compressed point.

    Done by hand so the did:key resolution does not depend on any library's
    point parsing: y = sqrt(x^3 - 3x + b); p = 3 mod 4, so sqrt = a^((p+1)/4).
    """
    expect(len(point) == 33 and point[0] in (2, 3),
           f"not a compressed P-256 point ({len(point)} bytes)")
    x = int.from_bytes(point[1:], "big")
    expect(x < P256_P, "x coordinate out of range")
    rhs = (pow(x, 3, P256_P) - 3 * x + P256_B) % P256_P
    y = pow(rhs, (P256_P + 1) // 4, P256_P)
    expect(y * y % P256_P == rhs, "x is not on the P-256 curve")
    if (y & 1) != (point[0] & 1):
        y = P256_P - y
    return point[1:], y.to_bytes(32, "big")


def did_from_jwk(key):
    pub = key.export_public(as_dict=True)
    if pub["kty"] == "OKP" and pub["crv"] == "Ed25519":
        raw = ED25519_PREFIX + b64u_dec(pub["x"])
    elif pub["kty"] == "EC" and pub["crv"] == "P-256":
        raw = P256_PREFIX + p256_compress(b64u_dec(pub["x"]), b64u_dec(pub["y"]))
    else:
        raise Failure(f"unsupported key type {pub['kty']}/{pub.get('crv')}")
    return "did:key:z" + b58_encode(raw)


def jwk_from_did(did):
    """Resolve a did:key (Ed25519 or P-256) to a public jwcrypto JWK."""
    expect(did.startswith("did:key:z"), f"not a base58btc did:key: {did!r}")
    raw = b58_decode(did[len("did:key:z"):])
    if raw[:2] == ED25519_PREFIX:
        expect(len(raw) == 34, f"Ed25519 did:key has {len(raw) - 2} key bytes")
        return jwk.JWK(kty="OKP", crv="Ed25519", x=b64u_enc(raw[2:]))
    if raw[:2] == P256_PREFIX:
        x, y = p256_decompress(raw[2:])
        return jwk.JWK(kty="EC", crv="P-256", x=b64u_enc(x), y=b64u_enc(y))
    raise Failure(f"unknown multicodec prefix {raw[:2].hex()} in {did}")


def kid_for(did):
    # Verification method id = <did>#<multibase part of the did>.
    return did + "#" + did[len("did:key:"):]


def alg_for(key):
    return {"OKP": "EdDSA", "EC": "ES256"}[key.export_public(as_dict=True)["kty"]]


# ---------------------------------------------------------------------------
# Time helpers (RFC 3339 UTC <-> unix seconds)
# ---------------------------------------------------------------------------

def rfc3339(ts):
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


RFC3339_UTC = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)")


def parse_rfc3339(text):
    expect(isinstance(text, str) and RFC3339_UTC.fullmatch(text) is not None,
           f"not an RFC 3339 UTC timestamp: {text!r}")
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def kebab(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


# ---------------------------------------------------------------------------
# Minting with jwcrypto
# ---------------------------------------------------------------------------

def new_key(kind):
    if kind == "ed25519":
        return jwk.JWK.generate(kty="OKP", crv="Ed25519")
    return jwk.JWK.generate(kty="EC", crv="P-256")


def sign_compact(key, header, payload):
    """Sign `payload` (dict or bytes) with `header` as protected header."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, ensure_ascii=False,
                             separators=(",", ":")).encode("utf-8")
    token = jws.JWS(payload)
    token.allowed_algs = [header["alg"]]  # allows HS256 for negative controls
    token.add_signature(key, protected=json.dumps(header, separators=(",", ":")))
    return token.serialize(compact=True)


def vc_payload(issuer_did, subject_did, cred, valid_from, valid_until,
               issued_at=None):
    ctype, claims = cred
    cred_id = f"urn:uuid:{uuid.uuid4()}"
    return {
        "@context": [VC_CONTEXT],
        "id": cred_id,
        "type": ["VerifiableCredential", ctype],
        "issuer": issuer_did,
        "validFrom": rfc3339(valid_from),
        "validUntil": rfc3339(valid_until),
        "credentialSubject": {"id": subject_did, **claims},
        "credentialSchema": {"id": f"{SCHEMA_BASE}/{kebab(ctype)}/v1",
                             "type": "JsonSchema"},
        # JWT claims mirror the VC fields (contract: all present, consistent).
        "iss": issuer_did,
        "sub": subject_did,
        "nbf": int(valid_from),
        "exp": int(valid_until),
        "iat": int(issued_at if issued_at is not None else time.time()),
        "jti": cred_id,
    }


def mint_vc(issuer_key, subject_did, cred, valid_from=None, valid_until=None,
            header_extra=None, payload_extra=None):
    """A currently valid vc+jwt unless overridden (validity -1 d .. +30 d)."""
    now = int(time.time())
    valid_from = now - 86400 if valid_from is None else valid_from
    valid_until = now + 30 * 86400 if valid_until is None else valid_until
    issuer_did = did_from_jwk(issuer_key)
    payload = vc_payload(issuer_did, subject_did, cred, valid_from, valid_until)
    payload.update(payload_extra or {})
    header = {"alg": alg_for(issuer_key), "typ": "vc+jwt",
              "kid": kid_for(issuer_did)}
    header.update(header_extra or {})
    return sign_compact(issuer_key, header, payload)


ENVELOPED_PREFIX = "data:application/vc+jwt,"


def envelope(token):
    """A VCDM 2.0 EnvelopedVerifiableCredential carrying a compact vc+jwt."""
    return {"@context": VC_CONTEXT, "id": ENVELOPED_PREFIX + token,
            "type": "EnvelopedVerifiableCredential"}


def mint_vp(holder_key, audience, nonce, credentials, legacy=False):
    """A VC-JOSE-COSE vp+jwt: the VCDM 2.0 presentation is the payload, its credentials
    enveloped. `legacy` mints the older VC 1.1-style `vp` claim of bare JWTs instead."""
    holder_did = did_from_jwk(holder_key)
    iat = int(time.time())
    presentation = {"@context": [VC_CONTEXT],
                    "type": ["VerifiablePresentation"],
                    "holder": holder_did}
    claims = {"aud": audience, "nonce": nonce, "iat": iat, "exp": iat + VP_LIFETIME}
    if legacy:
        presentation["verifiableCredential"] = list(credentials)
        payload = {"iss": holder_did, "vp": presentation, **claims}
    else:
        presentation["verifiableCredential"] = [envelope(c) for c in credentials]
        payload = {**presentation, **claims}
    header = {"alg": alg_for(holder_key), "typ": "vp+jwt",
              "kid": kid_for(holder_did)}
    return sign_compact(holder_key, header, payload)


# Tampering helpers for negative controls --------------------------------

def flip_signature_byte(token):
    # Flip a bit in a decoded signature byte (not a base64 char, whose low
    # bits may be padding and decode to the same bytes).
    head, body, sig = token.split(".")
    raw = bytearray(b64u_dec(sig))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64u_enc(bytes(raw))}"


def der_int(value):
    body = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    if body[0] & 0x80:  # keep it a positive INTEGER
        body = b"\0" + body
    return bytes([0x02, len(body)]) + body


def es256_sig_to_der(token):
    """Re-encode a JWS ES256 signature (raw r||s, RFC 7518 3.4) as ASN.1 DER,
    the form a naive ECDSA library emits; a JWS verifier must reject it."""
    head, body, sig = token.split(".")
    raw = b64u_dec(sig)
    expect(len(raw) == 64, f"ES256 signature is {len(raw)} bytes, not 64")
    seq = der_int(int.from_bytes(raw[:32], "big")) + \
        der_int(int.from_bytes(raw[32:], "big"))
    der = bytes([0x30, len(seq)]) + seq
    return f"{head}.{body}.{b64u_enc(der)}"


# ---------------------------------------------------------------------------
# Verifying with jwcrypto (the independent side)
# ---------------------------------------------------------------------------

def verify_compact(token, expected_typ):
    """Verify a compact JWS whose key is named by a did:key `kid`.

    Returns (header, payload, kid_did). Only EdDSA/ES256 are accepted and the
    alg must match the did:key's key type, so a forged header cannot make us
    verify with some other algorithm.
    """
    expect(isinstance(token, str) and token.count(".") == 2,
           "not a compact JWS (need 3 dot-separated parts)")
    head_b64, body_b64, _ = token.split(".")
    header = json.loads(b64u_dec(head_b64))
    expect(header.get("typ") == expected_typ,
           f"header typ {header.get('typ')!r}, expected {expected_typ!r}")
    alg = header.get("alg")
    expect(alg in ("EdDSA", "ES256"), f"unexpected alg {alg!r}")
    kid = header.get("kid")
    expect(isinstance(kid, str) and "#" in kid, f"kid is not a DID URL: {kid!r}")
    kid_did, fragment = kid.split("#", 1)
    expect(fragment == kid_did[len("did:key:"):],
           f"kid fragment {fragment!r} is not the did:key multibase part")
    key = jwk_from_did(kid_did)
    expect(alg == alg_for(key), f"alg {alg} does not fit the kid's key type")
    obj = jws.JWS()
    obj.allowed_algs = [alg]
    try:
        obj.deserialize(token)
        obj.verify(key)
    except Exception as exc:  # jwcrypto raises several exception types
        raise Failure(f"jwcrypto rejected the signature: {exc!r}")
    payload = json.loads(obj.payload.decode("utf-8"))
    # jwcrypto verified exactly the payload segment we parse below.
    expect(b64u_dec(body_b64) == obj.payload, "payload mismatch after verify")
    return header, payload, kid_did


def check_vc_payload(payload, kid_did, expected_type=None,
                     expected_subject=None, expected_claims=None):
    """Check the VCDM 2.0 + JWT-claims contract on a verified credential."""
    p = payload
    expect(isinstance(p.get("@context"), list) and p["@context"][:1] == [VC_CONTEXT],
           f"@context[0] is not {VC_CONTEXT}: {p.get('@context')!r}")
    types = p.get("type")
    expect(isinstance(types, list) and len(types) == 2
           and types[0] == "VerifiableCredential",
           f"type is not [VerifiableCredential, <Type>]: {types!r}")
    if expected_type:
        expect(types[1] == expected_type, f"type[1] {types[1]!r} != {expected_type!r}")
    expect(p.get("issuer") == kid_did,
           f"issuer {p.get('issuer')!r} is not the kid's DID {kid_did!r}")
    expect(p.get("iss") == p["issuer"], f"iss {p.get('iss')!r} != issuer")
    expect(re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                        r"[89ab][0-9a-f]{3}-[0-9a-f]{12}", str(p.get("id"))),
           f"id is not a urn:uuid v4: {p.get('id')!r}")
    expect(p.get("jti") == p["id"], f"jti {p.get('jti')!r} != id")
    subject = p.get("credentialSubject")
    expect(isinstance(subject, dict) and isinstance(subject.get("id"), str),
           f"credentialSubject has no id: {subject!r}")
    expect(p.get("sub") == subject["id"], f"sub {p.get('sub')!r} != credentialSubject.id")
    if expected_subject:
        expect(subject["id"] == expected_subject,
               f"credentialSubject.id {subject['id']!r} != {expected_subject!r}")
    if expected_claims:
        got = {k: v for k, v in subject.items() if k != "id"}
        expect(got == expected_claims, f"subject claims {got!r} != {expected_claims!r}")
    valid_from = parse_rfc3339(p.get("validFrom"))
    valid_until = parse_rfc3339(p.get("validUntil"))
    for claim in ("nbf", "exp", "iat"):
        expect(isinstance(p.get(claim), (int, float)) and not isinstance(p[claim], bool),
               f"{claim} is not a NumericDate: {p.get(claim)!r}")
    expect(int(p["nbf"]) == int(valid_from), f"nbf {p['nbf']} != validFrom {p['validFrom']}")
    expect(int(p["exp"]) == int(valid_until), f"exp {p['exp']} != validUntil {p['validUntil']}")
    expect(valid_from < valid_until, "validFrom is not before validUntil")
    schema = p.get("credentialSchema")
    expect(isinstance(schema, dict) and schema.get("type") == "JsonSchema"
           and schema.get("id") == f"{SCHEMA_BASE}/{kebab(types[1])}/v1",
           f"credentialSchema is {schema!r}")


def check_vp(token, audience, nonce):
    """Verify a vp+jwt and every credential inside it; returns the payload."""
    header, p, kid_did = verify_compact(token, "vp+jwt")
    aud = p.get("aud")
    expect(aud == audience or (isinstance(aud, list) and audience in aud),
           f"aud {aud!r} != {audience!r}")
    expect(p.get("nonce") == nonce, f"nonce {p.get('nonce')!r} != {nonce!r}")
    iat, exp = p.get("iat"), p.get("exp")
    expect(isinstance(iat, (int, float)) and isinstance(exp, (int, float)),
           f"iat/exp missing: {iat!r}/{exp!r}")
    expect(0 < exp - iat <= MAX_VP_LIFETIME, f"exp - iat = {exp - iat} s")
    expect(abs(time.time() - iat) < 600, f"iat {iat} is not close to now")
    expect("vp" not in p, "a VC 1.1-style vp claim instead of a VCDM 2.0 payload")
    expect(p.get("iss") in (None, kid_did), f"iss {p.get('iss')!r} is not the kid's DID")
    expect(p.get("@context", [None])[:1] == [VC_CONTEXT], f"@context {p.get('@context')!r}")
    expect(p.get("type") == ["VerifiablePresentation"], f"type {p.get('type')!r}")
    expect(p.get("holder") == kid_did, f"holder {p.get('holder')!r} is not the signer")
    entries = p.get("verifiableCredential")
    expect(isinstance(entries, list) and entries,
           f"verifiableCredential is not a list: {entries!r}")
    creds = []
    for entry in entries:
        expect(isinstance(entry, dict)
               and entry.get("type") == "EnvelopedVerifiableCredential"
               and entry.get("@context") == VC_CONTEXT
               and isinstance(entry.get("id"), str)
               and entry["id"].startswith(ENVELOPED_PREFIX),
               f"not an EnvelopedVerifiableCredential of vc+jwt: {entry!r}")
        creds.append(entry["id"][len(ENVELOPED_PREFIX):])
    p["credentials"] = creds
    for cred in creds:
        _, cp, issuer = verify_compact(cred, "vc+jwt")
        check_vc_payload(cp, issuer, expected_subject=kid_did)
    return p


# ---------------------------------------------------------------------------
# Check runner
# ---------------------------------------------------------------------------

def fixture(fn):
    """Compute once per run; a failure is remembered and re-raised so every
    dependent check reports it instead of redoing the failing step."""
    attr = "_fixture_" + fn.__name__

    def wrapper(self):
        if attr not in self.__dict__:
            try:
                self.__dict__[attr] = (True, fn(self))
            except Exception as exc:
                self.__dict__[attr] = (False, exc)
        ok, value = self.__dict__[attr]
        if not ok:
            raise Failure(f"setup {fn.__name__} failed: {describe(value)}")
        return value
    return property(wrapper)


def describe(exc):
    text = str(exc) if isinstance(exc, Failure) else f"{type(exc).__name__}: {exc}"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def run_checks(checks):
    passed = failed = 0
    for name, fn in checks:
        try:
            fn()
        except Exception as exc:
            failed += 1
            print(f"FAIL {name}: {describe(exc)}", flush=True)
        else:
            passed += 1
            print(f"ok  {name}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0


# ---------------------------------------------------------------------------
# Checks against tfcctl
# ---------------------------------------------------------------------------

class TfcctlChecks:
    def __init__(self, tfcctl, tmp):
        self.tfcctl = tfcctl
        self.tmp = tmp
        self.counter = 0

    # -- plumbing --------------------------------------------------------

    def path(self, stem, ext):
        self.counter += 1
        return os.path.join(self.tmp, f"{self.counter:02d}-{stem}.{ext}")

    def write(self, stem, ext, text):
        p = self.path(stem, ext)
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(text)
        return p

    def run(self, *args):
        return subprocess.run([self.tfcctl, *args], capture_output=True,
                              text=True, encoding="utf-8", timeout=60)

    def run_ok(self, *args):
        proc = self.run(*args)
        expect(proc.returncode == 0,
               f"`tfcctl {' '.join(args[:2])}` exited {proc.returncode}: "
               f"{proc.stderr.strip()[:300]}")
        return proc.stdout.strip()

    def verify_json(self, kind, token, *extra):
        """Run `tfcctl <kind> verify FILE [extra] --json`; (exit, object)."""
        f = self.write(f"{kind}-under-test", "jwt", token)
        proc = self.run(kind, "verify", f, *extra, "--json")
        try:
            obj = json.loads(proc.stdout)
        except ValueError:
            raise Failure(f"exit {proc.returncode}, stdout is not JSON: "
                          f"{proc.stdout[:200]!r}, stderr {proc.stderr.strip()[:200]!r}")
        expect(isinstance(obj, dict), f"JSON output is not an object: {obj!r}")
        return proc.returncode, obj

    def expect_valid(self, kind, token, *extra):
        rc, obj = self.verify_json(kind, token, *extra)
        expect(rc == 0 and obj.get("valid") is True,
               f"expected valid, got exit {rc}: {json.dumps(obj, ensure_ascii=False)[:300]}")

    def expect_invalid(self, kind, token, codes, *extra):
        """codes: accepted error codes, or None for 'any code'."""
        rc, obj = self.verify_json(kind, token, *extra)
        expect(rc == 1 and obj.get("valid") is False,
               f"expected exit 1 / valid:false, got exit {rc}: "
               f"{json.dumps(obj, ensure_ascii=False)[:300]}")
        expect(isinstance(obj.get("code"), str) and "message" in obj,
               f"rejection lacks code/message: {obj!r}")
        if codes is not None:
            expect(obj["code"] in codes,
                   f"code {obj['code']!r}, expected {' or '.join(codes)} "
                   f"(message: {obj.get('message')!r})")

    def keygen(self, alg):
        """`tfcctl key generate`; returns (pem path, did)."""
        pem = self.path(f"tfcctl-{alg}", "pem")
        did = self.run_ok("key", "generate", "--out", pem, "--alg", alg)
        expect(did.startswith("did:key:z"), f"key generate printed {did!r}")
        return pem, did

    def tfc_issue(self, issuer_pem, cred, subject, to_stdout=False):
        ctype, claims = cred
        claims_file = self.write("claims", "json", json.dumps(claims, ensure_ascii=False))
        args = ["credential", "issue", "--issuer-key", issuer_pem, "--type", ctype,
                "--subject", subject, "--claims", claims_file, "--valid-days", "30"]
        if to_stdout:
            return self.run_ok(*args)
        out = self.path(kebab(ctype), "jwt")
        self.run_ok(*args, "--out", out)
        with open(out, encoding="utf-8") as fh:
            return fh.read().strip()

    # -- fixtures (shared across checks) ---------------------------------

    @fixture
    def py_issuer_ed(self):
        return new_key("ed25519")

    @fixture
    def py_issuer_p256(self):
        return new_key("p256")

    @fixture
    def py_holder(self):
        return new_key("ed25519")

    @fixture
    def verifier_did(self):
        return self.keygen("ed25519")[1]

    @fixture
    def py_vc_ed(self):
        return mint_vc(self.py_issuer_ed, did_from_jwk(self.py_holder), CREDIT_RATING)

    @fixture
    def py_vc_p256(self):
        return mint_vc(self.py_issuer_p256, did_from_jwk(self.py_holder), ORG_IDENTITY)

    @fixture
    def py_vp(self):
        # token_urlsafe may start with '-': nonces are passed as --nonce=VALUE throughout.
        nonce = secrets.token_urlsafe(16)
        token = mint_vp(self.py_holder, self.verifier_did, nonce,
                        [self.py_vc_ed, self.py_vc_p256])
        return token, nonce

    @fixture
    def tfc_ed(self):
        return self.keygen("ed25519")

    @fixture
    def tfc_p256(self):
        return self.keygen("p256")

    @fixture
    def tfc_holder(self):
        return self.keygen("ed25519")

    # -- 1-3: jwcrypto -> tfcctl ------------------------------------------

    def py_eddsa_credential_accepted(self):
        self.expect_valid("credential", self.py_vc_ed)

    def py_es256_credential_accepted(self):
        self.expect_valid("credential", self.py_vc_p256)

    def py_presentation_accepted(self):
        token, nonce = self.py_vp
        self.expect_valid("presentation", token, "--audience", self.verifier_did,
                          f"--nonce={nonce}")

    def py_legacy_presentation_still_read(self):
        # The older VC 1.1-style form is read during the transition, never written.
        nonce = secrets.token_urlsafe(16)
        token = mint_vp(self.py_holder, self.verifier_did, nonce,
                        [self.py_vc_ed, self.py_vc_p256], legacy=True)
        self.expect_valid("presentation", token, "--audience", self.verifier_did,
                          f"--nonce={nonce}")

    def neg_presentation_bare_tokens(self):
        # VCDM 2.0 credentials in a presentation are enveloped, not bare strings.
        nonce = secrets.token_urlsafe(16)
        holder_did = did_from_jwk(self.py_holder)
        iat = int(time.time())
        payload = {"@context": [VC_CONTEXT], "type": ["VerifiablePresentation"],
                   "holder": holder_did, "verifiableCredential": [self.py_vc_ed],
                   "aud": self.verifier_did, "nonce": nonce, "iat": iat,
                   "exp": iat + VP_LIFETIME}
        token = sign_compact(self.py_holder, {"alg": alg_for(self.py_holder), "typ": "vp+jwt",
                                              "kid": kid_for(holder_did)}, payload)
        self.expect_invalid("presentation", token, ["malformed"],
                            "--audience", self.verifier_did, f"--nonce={nonce}")

    # -- 4: negative controls (each token is valid but for one defect) ----

    def neg_flipped_signature_byte(self):
        self.expect_invalid("credential", flip_signature_byte(self.py_vc_ed),
                            ["bad_signature"])

    def neg_typ_jwt(self):
        token = mint_vc(self.py_issuer_ed, did_from_jwk(self.py_holder), CREDIT_RATING,
                        header_extra={"typ": "JWT"})
        self.expect_invalid("credential", token, ["wrong_typ"])

    def neg_alg_hs256(self):
        # Classic alg-confusion attack: HMAC keyed with the issuer's *public*
        # key bytes, kid still naming the Ed25519 did:key.
        pub = self.py_issuer_ed.export_public(as_dict=True)["x"]
        hmac_key = jwk.JWK(kty="oct", k=pub)
        issuer = did_from_jwk(self.py_issuer_ed)
        payload = vc_payload(issuer, did_from_jwk(self.py_holder), CREDIT_RATING,
                             time.time() - 86400, time.time() + 30 * 86400)
        token = sign_compact(hmac_key, {"alg": "HS256", "typ": "vc+jwt",
                                        "kid": kid_for(issuer)}, payload)
        self.expect_invalid("credential", token, ["unsupported_alg"])

    def neg_presentation_other_nonce(self):
        token, nonce = self.py_vp
        self.expect_invalid("presentation", token, ["nonce_mismatch"],
                            "--audience", self.verifier_did,
                            f"--nonce={nonce}-other")

    def neg_presentation_other_audience(self):
        token, nonce = self.py_vp
        other = did_from_jwk(new_key("ed25519"))
        self.expect_invalid("presentation", token, ["wrong_audience"],
                            "--audience", other, f"--nonce={nonce}")

    def neg_es256_der_signature(self):
        self.expect_invalid("credential", es256_sig_to_der(self.py_vc_p256),
                            ["bad_signature", "malformed"])

    # Extra controls the contract implies; no specific code is pinned.

    def neg_expired_credential(self):
        now = int(time.time())
        token = mint_vc(self.py_issuer_ed, did_from_jwk(self.py_holder), CREDIT_RATING,
                        valid_from=now - 40 * 86400, valid_until=now - 86400)
        self.expect_invalid("credential", token, None)

    def neg_issuer_not_kid(self):
        # Correctly signed by the kid's key, but claims another issuer.
        other = did_from_jwk(new_key("ed25519"))
        token = mint_vc(self.py_issuer_ed, did_from_jwk(self.py_holder), CREDIT_RATING,
                        payload_extra={"issuer": other, "iss": other})
        self.expect_invalid("credential", token, None)

    def neg_presentation_subject_not_holder(self):
        # A credential issued to someone else, presented by our holder.
        stranger = did_from_jwk(new_key("ed25519"))
        cred = mint_vc(self.py_issuer_ed, stranger, CREDIT_RATING)
        nonce = secrets.token_urlsafe(16)
        token = mint_vp(self.py_holder, self.verifier_did, nonce, [cred])
        self.expect_invalid("presentation", token, None,
                            "--audience", self.verifier_did, f"--nonce={nonce}")

    def missing_file_is_exit_2(self):
        # Contract: I/O errors are exit 2, distinct from "invalid" (exit 1).
        proc = self.run("credential", "verify", self.path("does-not-exist", "jwt"), "--json")
        expect(proc.returncode == 2, f"exit {proc.returncode}, expected 2")

    # -- 5: tfcctl -> jwcrypto --------------------------------------------

    def check_keygen(self, alg, prefix):
        pem, did = self.tfc_ed if alg == "ed25519" else self.tfc_p256
        expect(did.startswith("did:key:" + prefix), f"{alg} DID {did!r} lacks {prefix}")
        expect(stat.S_IMODE(os.stat(pem).st_mode) == 0o600,
               f"key file mode {oct(stat.S_IMODE(os.stat(pem).st_mode))}, expected 0o600")
        with open(pem, "rb") as fh:
            data = fh.read()
        expect(b"-----BEGIN PRIVATE KEY-----" in data, "key file is not PKCS#8 PEM")
        # The DID we derive from the PEM must be the one tfcctl printed.
        key = jwk.JWK.from_pem(data)
        expect(key.has_private, "PEM has no private key")
        expect(did_from_jwk(key) == did,
               f"DID from PEM {did_from_jwk(key)!r} != printed {did!r}")
        again = self.run_ok("key", "did", "--key", pem)
        expect(again == did, f"`key did` printed {again!r}, generate printed {did!r}")

    def tfcctl_keygen_ed25519(self):
        self.check_keygen("ed25519", "z6Mk")

    def tfcctl_keygen_p256(self):
        self.check_keygen("p256", "zDn")

    def check_tfc_credential(self, issuer, to_stdout):
        pem, issuer_did = issuer
        holder_did = self.tfc_holder[1]
        token = self.tfc_issue(pem, CREDIT_RATING, holder_did, to_stdout=to_stdout)
        header, payload, kid_did = verify_compact(token, "vc+jwt")
        expect(kid_did == issuer_did, f"kid DID {kid_did!r} is not the issuer key's DID")
        check_vc_payload(payload, kid_did, expected_type=CREDIT_RATING[0],
                         expected_subject=holder_did, expected_claims=CREDIT_RATING[1])
        now = time.time()
        expect(payload["nbf"] <= now + 60, f"nbf {payload['nbf']} is in the future")
        expect(28 * 86400 <= payload["exp"] - now <= 32 * 86400,
               f"--valid-days 30 gave exp {payload['exp'] - now:.0f} s from now")
        expect(abs(payload["iat"] - now) < 600, f"iat {payload['iat']} is not now")
        if header["alg"] == "ES256":
            sig = b64u_dec(token.split(".")[2])
            expect(len(sig) == 64, f"ES256 signature is {len(sig)} bytes, not raw r||s")

    def tfcctl_eddsa_credential_verifies_in_jwcrypto(self):
        self.check_tfc_credential(self.tfc_ed, to_stdout=True)

    def tfcctl_es256_credential_verifies_in_jwcrypto(self):
        self.check_tfc_credential(self.tfc_p256, to_stdout=False)

    # -- 6: tfcctl presentation -> jwcrypto --------------------------------

    def tfcctl_presentation_verifies_in_jwcrypto(self):
        holder_pem, holder_did = self.tfc_holder
        creds = [self.tfc_issue(self.tfc_ed[0], CREDIT_RATING, holder_did),
                 self.tfc_issue(self.tfc_p256[0], ORG_IDENTITY, holder_did)]
        files = [self.write("held", "jwt", c) for c in creds]
        nonce = secrets.token_urlsafe(16)
        out = self.path("presentation", "jwt")
        self.run_ok("presentation", "create", "--holder-key", holder_pem,
                    "--audience", self.verifier_did, f"--nonce={nonce}", *files,
                    "--out", out)
        with open(out, encoding="utf-8") as fh:
            token = fh.read().strip()
        p = check_vp(token, self.verifier_did, nonce)
        expect(p["holder"] == holder_did, f"holder {p['holder']!r} != {holder_did!r}")
        expect(p["credentials"] == creds,
               "verifiableCredential is not the presented credentials, in order")

    def all(self):
        return [(name, getattr(self, name)) for name in (
            "py_eddsa_credential_accepted",
            "py_es256_credential_accepted",
            "py_presentation_accepted",
            "py_legacy_presentation_still_read",
            "neg_presentation_bare_tokens",
            "neg_flipped_signature_byte",
            "neg_typ_jwt",
            "neg_alg_hs256",
            "neg_presentation_other_nonce",
            "neg_presentation_other_audience",
            "neg_es256_der_signature",
            "neg_expired_credential",
            "neg_issuer_not_kid",
            "neg_presentation_subject_not_holder",
            "missing_file_is_exit_2",
            "tfcctl_keygen_ed25519",
            "tfcctl_keygen_p256",
            "tfcctl_eddsa_credential_verifies_in_jwcrypto",
            "tfcctl_es256_credential_verifies_in_jwcrypto",
            "tfcctl_presentation_verifies_in_jwcrypto",
        )]


# ---------------------------------------------------------------------------
# Self-test: the Python side alone (no tfcctl)
# ---------------------------------------------------------------------------

def st_base58_vectors():
    expect(b58_encode(b"hello world") == "StV1DL6CwTryKyV", "hello world")
    expect(b58_encode(b"\0\0\x01") == "112", "leading zeros")
    expect(b58_encode(b"") == "" and b58_decode("") == b"", "empty")
    for n in range(200):
        data = b"\0" * (n % 3) + secrets.token_bytes(n % 40)
        expect(b58_decode(b58_encode(data)) == data, f"round trip {data.hex()}")


def st_did_key_published_vectors():
    # Ed25519: a DID document with publicKeyBase58 (Aries test data).
    did = "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th"
    raw = b58_decode("8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K")
    key = jwk_from_did(did)
    expect(b64u_dec(key.export_public(as_dict=True)["x"]) == raw, "Ed25519 x")
    expect(did_from_jwk(key) == did, "Ed25519 re-encode")
    # P-256: did:key spec test vector (nist-curves.json).
    did = "did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv"
    pub = jwk_from_did(did).export_public(as_dict=True)
    expect(pub["x"] == "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns", "P-256 x")
    expect(pub["y"] == "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM", "P-256 y")
    expect(did_from_jwk(jwk.JWK(**pub)) == did, "P-256 re-encode")


def st_did_key_roundtrip():
    for kind, prefix in (("ed25519", "did:key:z6Mk"), ("p256", "did:key:zDn")):
        for _ in range(20):
            key = new_key(kind)
            did = did_from_jwk(key)
            expect(did.startswith(prefix), f"{kind} DID {did} lacks {prefix}")
            back = jwk_from_did(did).export_public(as_dict=True)
            want = key.export_public(as_dict=True)
            expect(all(back.get(k) == want.get(k) for k in ("kty", "crv", "x", "y")),
                   f"{kind} round trip: {back} != {want}")


def st_p256_decompression():
    parities = set()
    for _ in range(64):
        pub = new_key("p256").export_public(as_dict=True)
        x, y = b64u_dec(pub["x"]), b64u_dec(pub["y"])
        point = p256_compress(x, y)
        parities.add(point[0])
        expect(p256_decompress(point) == (x, y), f"y mismatch for x={pub['x']}")
    expect(parities == {2, 3}, "did not see both y parities")
    # About half of all x values are off the curve; those must be refused,
    # not turned into a bogus key.
    refused = 0
    for x in range(1, 41):
        try:
            p256_decompress(b"\x02" + x.to_bytes(32, "big"))
        except Failure:
            refused += 1
    expect(0 < refused < 40, f"{refused}/40 small x values refused")


def st_credential(issuer_kind, cred):
    issuer, holder = new_key(issuer_kind), new_key("ed25519")
    token = mint_vc(issuer, did_from_jwk(holder), cred)
    header, payload, kid_did = verify_compact(token, "vc+jwt")
    expect(header["alg"] == alg_for(issuer) and kid_did == did_from_jwk(issuer), "header")
    check_vc_payload(payload, kid_did, expected_type=cred[0],
                     expected_subject=did_from_jwk(holder), expected_claims=cred[1])


def st_presentation():
    issuer, holder = new_key("p256"), new_key("ed25519")
    creds = [mint_vc(issuer, did_from_jwk(holder), CREDIT_RATING),
             mint_vc(issuer, did_from_jwk(holder), ORG_IDENTITY)]
    aud, nonce = did_from_jwk(new_key("ed25519")), secrets.token_urlsafe(16)
    token = mint_vp(holder, aud, nonce, creds)
    p = check_vp(token, aud, nonce)
    expect(p["credentials"] == creds, "credentials changed")
    try:
        check_vp(mint_vp(holder, aud, nonce, creds, legacy=True), aud, nonce)
    except Failure:
        pass
    else:
        raise Failure("the verifier took a VC 1.1-style vp claim as VC-JOSE-COSE")
    for wrong_aud, wrong_nonce in ((aud, nonce + "x"), (aud + "x", nonce)):
        try:
            check_vp(token, wrong_aud, wrong_nonce)
        except Failure:
            continue
        raise Failure("wrong audience/nonce accepted")


def st_verifier_rejects_tampering():
    # The Python verifier backs checks 5/6, so it must not be a rubber stamp.
    ed, p256, holder = new_key("ed25519"), new_key("p256"), new_key("ed25519")
    subj = did_from_jwk(holder)
    issuer = did_from_jwk(ed)
    hs = sign_compact(jwk.JWK(kty="oct", k=ed.export_public(as_dict=True)["x"]),
                      {"alg": "HS256", "typ": "vc+jwt", "kid": kid_for(issuer)},
                      vc_payload(issuer, subj, CREDIT_RATING, time.time() - 60,
                                 time.time() + 60))
    other = did_from_jwk(new_key("ed25519"))
    sig_error = "jwcrypto rejected the signature"
    # label -> (token, text the rejection must contain: right reason, not luck)
    cases = {
        "flipped signature": (flip_signature_byte(mint_vc(ed, subj, CREDIT_RATING)),
                              sig_error),
        "DER ES256 signature": (es256_sig_to_der(mint_vc(p256, subj, CREDIT_RATING)),
                                sig_error),
        "typ JWT": (mint_vc(ed, subj, CREDIT_RATING, header_extra={"typ": "JWT"}),
                    "header typ"),
        "HS256": (hs, "unexpected alg"),
        "issuer != kid": (mint_vc(ed, subj, CREDIT_RATING,
                                  payload_extra={"issuer": other, "iss": other}),
                          "is not the kid's DID"),
        "kid of another key": (mint_vc(ed, subj, CREDIT_RATING,
                                       header_extra={"kid": kid_for(other)}),
                               sig_error),
    }
    for label, (token, reason) in cases.items():
        try:
            _, payload, kid_did = verify_compact(token, "vc+jwt")
            check_vc_payload(payload, kid_did)
        except Failure as exc:
            expect(reason in str(exc), f"{label} rejected for another reason: {exc}")
            continue
        raise Failure(f"{label} accepted")


def self_test_checks():
    return [
        ("base58btc_vectors", st_base58_vectors),
        ("did_key_published_vectors", st_did_key_published_vectors),
        ("did_key_roundtrip_jwcrypto_keys", st_did_key_roundtrip),
        ("p256_decompression_matches_jwcrypto", st_p256_decompression),
        ("mint_and_verify_eddsa_credential",
         lambda: st_credential("ed25519", CREDIT_RATING)),
        ("mint_and_verify_es256_credential",
         lambda: st_credential("p256", ORG_IDENTITY)),
        ("mint_and_verify_presentation", st_presentation),
        ("python_verifier_rejects_tampering", st_verifier_rejects_tampering),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--tfcctl", help="path to the tfcctl binary")
    group.add_argument("--self-test", action="store_true",
                       help="check only the Python side (no tfcctl needed)")
    args = ap.parse_args()
    if args.self_test:
        ok = run_checks(self_test_checks())
    else:
        with tempfile.TemporaryDirectory(prefix="tfc-interop-") as tmp:
            ok = run_checks(TfcctlChecks(os.path.abspath(args.tfcctl)
                                         if os.sep in args.tfcctl else args.tfcctl,
                                         tmp).all())
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
