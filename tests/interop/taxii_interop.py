"""Pulls a gateway's TAXII 2.1 collection with the OASIS taxii2-client and validates every
object with the OASIS stix2-validator; or pushes a STIX bundle's objects into it with the
client's add_objects, as a MISP or OpenCTI instance would. Prints one JSON summary for the
Rust test to check.

Usage: taxii_interop.py URL CA CERT KEY ADDED_AFTER
       taxii_interop.py push URL CA CERT KEY BUNDLE_FILE
"""

import json
import os
import sys

import requests
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages


def push(url, ca, cert, key, bundle_file):
    server = Server(url, verify=ca, cert=(cert, key))
    collection = server.default.collections[0]
    with open(bundle_file, encoding="utf-8") as handle:
        bundle = json.load(handle)
    summary = {"can_write": collection.can_write}
    try:
        status = collection.add_objects({"objects": bundle["objects"]})
    except Exception as error:  # the refusal is what the caller checks
        summary["error"] = type(error).__name__ + ": " + str(error)
        print(json.dumps(summary))
        return
    again = requests.get(
        url + "tfc/status/" + status.id + "/",
        headers={"Accept": "application/taxii+json;version=2.1"},
        verify=ca,
        cert=(cert, key),
        timeout=10,
    )
    summary.update(
        {
            "status": status.status,
            "total_count": status.total_count,
            "success_count": status.success_count,
            "failure_count": status.failure_count,
            "failures": [failure.get("message") for failure in status.failures or []],
            "status_again": again.json().get("status") if again.ok else again.status_code,
        }
    )
    print(json.dumps(summary))


def main():
    # requests prefers these to a session's own CA file for requests that name none, which
    # is how taxii2-client calls it: our admin CA must be the only trust anchor.
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(variable, None)
    if sys.argv[1] == "push":
        push(*sys.argv[2:7])
        return
    url, ca, cert, key, added_after = sys.argv[1:6]
    server = Server(url, verify=ca, cert=(cert, key))
    root = server.default
    collections = root.collections
    collection = collections[0]

    pages = list(as_pages(collection.get_objects, per_request=2))
    objects = [obj for page in pages for obj in page.get("objects", [])]
    later = collection.get_objects(added_after=added_after).get("objects", [])

    options = ValidationOptions(version="2.1")
    invalid, warnings = [], 0
    for obj in objects:
        result = validate_instance(obj, options)
        warnings += len(result.warnings)
        if not result.is_valid:
            invalid.append({"id": obj.get("id"), "errors": [str(e) for e in result.errors]})

    # A client that accepts neither TAXII nor JSON is refused with 406.
    refused = requests.get(
        url, headers={"Accept": "text/html"}, verify=ca, cert=(cert, key), timeout=10
    )

    print(
        json.dumps(
            {
                "title": server.title,
                "api_roots": len(server.api_roots),
                "collections": [c.title for c in collections],
                "can_read": collection.can_read,
                "pages": len(pages),
                "objects": len(objects),
                "ids": sorted(obj["id"] for obj in objects),
                "added_after": len(later),
                "invalid": invalid,
                "warnings": warnings,
                "not_acceptable": refused.status_code,
            }
        )
    )


if __name__ == "__main__":
    main()
