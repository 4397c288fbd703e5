#!/usr/bin/env python3
"""Check the TFC credential JSON Schemas against their examples.

    pip install jsonschema rfc3339-validator rfc3986-validator
    python3 credential-schemas/examples/check_examples.py            # check everything
    python3 credential-schemas/examples/check_examples.py FILE.json  # validate one payload

What is checked:
  * every schema in ../schemas is a valid draft 2020-12 schema, its $id is
    https://schemas.tfc.example/<file stem>/v1, and a type schema's `type` const and
    `credentialSchema.id` const agree with its file name;
  * examples/<kebab>/valid-*.json validate against schemas/<kebab>.json with no error;
  * examples/<kebab>/invalid-*.json fail, and fail for the stated reason: expected-errors.json
    gives, per invalid file, the JSON pointer and keyword of the error that must be reported
    (looking inside oneOf/anyOf), and every reported error must lie on that pointer's path, so a
    file cannot pass by failing for some other reason;
  * every type has at least one valid and three invalid examples, and one valid example with a
    credentialStatus.

Formats are asserted (date, date-time, uri and the custom corporate-number). The run refuses to
start if the optional format libraries are missing, since jsonschema would then silently skip
those formats.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE.parent / "schemas"
EXPECTED = HERE / "expected-errors.json"
BASE = "https://schemas.tfc.example"
ENVELOPE = "vc-envelope"
MAX_PAYLOAD = 64 * 1024
MIN_INVALID = 3


def corporate_number_ok(value: object) -> bool:
    """法人番号: 13 digits, the first is the check digit over the other twelve.

    National Tax Agency rule: number the 12 base digits from the right as n = 1..12, with P_n
    the digit and Q_n = 1 for odd n, 2 for even n; check digit = 9 - (sum(P_n * Q_n) mod 9).
    """
    if not isinstance(value, str):
        return True  # formats only apply to strings; `type` catches the rest
    if not re.fullmatch(r"[1-9][0-9]{12}", value):
        return False
    base = value[1:]
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base), start=1))
    return int(value[0]) == 9 - total % 9


def format_checker() -> FormatChecker:
    checker = FormatChecker()
    missing = [f for f in ("date", "date-time", "uri") if f not in checker.checkers]
    if missing:
        sys.exit(
            f"format checkers missing: {missing}; "
            "pip install rfc3339-validator rfc3986-validator (else they are silently skipped)"
        )
    checker.checks("corporate-number")(corporate_number_ok)
    return checker


def kebab(type_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type_name).lower()


def pointer(path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def leaves(error):
    """The error itself and, recursively, the errors of its oneOf/anyOf branches."""
    yield error
    for sub in error.context or ():
        yield from leaves(sub)


def self_test() -> list[str]:
    problems = []
    if not corporate_number_ok("7000012050002"):  # 国税庁
        problems.append("corporate-number: 7000012050002 (国税庁) must pass")
    for d in "12345689":
        if corporate_number_ok(d + "000012050002"):
            problems.append(f"corporate-number: {d}000012050002 must fail")
    for bad in ("700001205000", "70000120500021", "0000012050002", "７000012050002"):
        if corporate_number_ok(bad):
            problems.append(f"corporate-number: {bad!r} must fail")
    return problems


def load_schemas() -> tuple[dict[str, dict], list[str]]:
    schemas, problems = {}, []
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = path.stem
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as e:  # noqa: BLE001 - report and go on
            problems.append(f"{path.name}: not a valid 2020-12 schema: {e}")
        want_id = f"{BASE}/{name}/v1"
        if schema.get("$id") != want_id:
            problems.append(f"{path.name}: $id {schema.get('$id')!r}, want {want_id!r}")
        if name != ENVELOPE:
            props = schema.get("properties", {})
            type_const = props.get("type", {}).get("const", [None, None])
            if kebab(type_const[1] or "") != name:
                problems.append(f"{path.name}: type const {type_const} does not match file name")
            sid = props.get("credentialSchema", {}).get("properties", {}).get("id", {}).get("const")
            if sid != want_id:
                problems.append(f"{path.name}: credentialSchema.id const {sid!r}, want {want_id!r}")
            if schema.get("allOf") != [{"$ref": f"{BASE}/{ENVELOPE}/v1"}]:
                problems.append(f"{path.name}: must be allOf the envelope")
        schemas[name] = schema
    if ENVELOPE not in schemas:
        problems.append(f"{ENVELOPE}.json missing")
    return schemas, problems


def validators(schemas: dict[str, dict]) -> dict[str, Draft202012Validator]:
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values() if "$id" in s
    )
    checker = format_checker()
    return {
        name: Draft202012Validator(schema, registry=registry, format_checker=checker)
        for name, schema in schemas.items()
    }


def check_invalid(errors, expect) -> str | None:
    """None if the errors match the expectation, else why not."""
    if not errors:
        return "validated, but must fail"
    want_path, want_kw = expect["instancePath"], expect["keyword"]
    for e in errors:
        p = pointer(e.absolute_path)
        # same place (e.g. pattern and format both fire), or a oneOf/anyOf above it
        if p != want_path and not (want_path.startswith(p + "/") and e.context):
            return f"unrelated error at {p or '/'} ({e.validator}): {e.message}"
    for e in errors:
        for leaf in leaves(e):
            if pointer(leaf.absolute_path) == want_path and leaf.validator == want_kw:
                mention = expect.get("mentions")
                if mention is None or repr(mention) in leaf.message:
                    return None
    got = "; ".join(f"{pointer(e.absolute_path) or '/'} {e.validator}: {e.message}" for e in errors)
    return f"expected {want_kw} at {want_path or '/'}, got: {got}"


def check_all() -> int:
    problems = self_test()
    schemas, schema_problems = load_schemas()
    problems += schema_problems
    vals = validators(schemas)
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    seen_expectations = set()
    n_valid = n_invalid = 0

    dirs = sorted(d for d in HERE.iterdir() if d.is_dir() and not d.name.startswith(("_", ".")))
    for name in schemas:
        if name not in {d.name for d in dirs}:
            problems.append(f"schemas/{name}.json has no examples directory")

    for d in dirs:
        v = vals.get(d.name)
        if v is None:
            problems.append(f"{d.name}/: no schemas/{d.name}.json")
            continue
        valid = sorted(d.glob("valid-*.json"))
        invalid = sorted(d.glob("invalid-*.json"))
        stray = sorted(set(d.glob("*.json")) - set(valid) - set(invalid))
        problems += [f"{p.relative_to(HERE)}: name must start with valid- or invalid-" for p in stray]
        if not valid or len(invalid) < MIN_INVALID:
            problems.append(f"{d.name}/: needs >= 1 valid and >= {MIN_INVALID} invalid examples")

        with_status = False
        for path in valid:
            rel = str(path.relative_to(HERE))
            instance = json.loads(path.read_text(encoding="utf-8"))
            with_status |= "credentialStatus" in instance
            size = len(json.dumps(instance, ensure_ascii=False, separators=(",", ":")).encode())
            errors = list(v.iter_errors(instance))
            if size > MAX_PAYLOAD:
                problems.append(f"{rel}: payload {size} bytes > {MAX_PAYLOAD}")
            if errors:
                for e in errors:
                    problems.append(f"{rel}: {pointer(e.absolute_path) or '/'} {e.validator}: {e.message}")
                print(f"FAIL  {rel}")
            else:
                print(f"ok    {rel}")
            n_valid += 1
        if not with_status:
            problems.append(f"{d.name}/: no valid example carries a credentialStatus")

        for path in invalid:
            rel = str(path.relative_to(HERE))
            instance = json.loads(path.read_text(encoding="utf-8"))
            expect = expected.get(rel)
            if expect is None:
                problems.append(f"{rel}: no entry in expected-errors.json")
                print(f"FAIL  {rel}")
                continue
            seen_expectations.add(rel)
            why = check_invalid(list(v.iter_errors(instance)), expect)
            if why:
                problems.append(f"{rel}: {why}")
                print(f"FAIL  {rel}")
            else:
                kw = expect["keyword"]
                print(f"ok    {rel}  -> {kw} at {expect['instancePath'] or '/'}")
            n_invalid += 1

    for rel in sorted(set(expected) - seen_expectations):
        problems.append(f"expected-errors.json: {rel} has no example file")

    print()
    print(f"{len(schemas)} schemas, {n_valid} valid and {n_invalid} invalid examples")
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print("  - " + p)
        return 1
    print("all checks passed")
    return 0


def check_files(paths: list[str]) -> int:
    """Validate payload files against the schema named by their credentialSchema.id."""
    schemas, problems = load_schemas()
    vals = validators(schemas)
    by_id = {s.get("$id"): vals[n] for n, s in schemas.items()}
    rc = 0
    for p in paths:
        instance = json.loads(Path(p).read_text(encoding="utf-8"))
        sid = (instance.get("credentialSchema") or {}).get("id")
        v = by_id.get(sid, vals[ENVELOPE])
        errors = list(v.iter_errors(instance))
        label = sid if sid in by_id else f"{ENVELOPE} (unknown schema {sid!r})"
        if errors:
            rc = 1
            print(f"INVALID {p} against {label}")
            for e in errors:
                print(f"  {pointer(e.absolute_path) or '/'} {e.validator}: {e.message}")
        else:
            print(f"valid   {p} against {label}")
    return rc


if __name__ == "__main__":
    sys.exit(check_files(sys.argv[1:]) if sys.argv[1:] else check_all())
