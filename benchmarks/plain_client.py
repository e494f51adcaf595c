"""Case C of the benchmark: the best plain client, with no Ansible.

One requests.Session exchanges the API token for an access token, then sends the deactivate requests in
sequence, 15 ids each, over one TLS connection. Reads its input from a JSON file with api_host, ca_path,
api_token, org_id and token_ids, and prints a JSON summary. Exits with status 1 when a request fails.

    python plain_client.py INPUT.json
"""

from __future__ import annotations

import json
import sys

import requests

API_TOKEN_AUTHORIZE_PATH = "/csp/gateway/am/api/auth/api-tokens/authorize"
BATCH_SIZE = 15
TIMEOUT = 30  # seconds per request


def main(input_path: str) -> int:
    with open(input_path, encoding="utf-8") as file:
        run = json.load(file)
    base_url = f"https://{run['api_host']}"
    ids = run["token_ids"]

    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the emulator is on loopback
        session.verify = run["ca_path"]
        response = session.post(base_url + API_TOKEN_AUTHORIZE_PATH, data={"api_token": run["api_token"]}, timeout=TIMEOUT)
        response.raise_for_status()
        session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

        deactivate_url = f"{base_url}/csp/gateway/am/api/orgs/{run['org_id']}/api-tokens/deactivate"
        deactivated = 0
        requests_sent = 0
        for start in range(0, len(ids), BATCH_SIZE):
            response = session.post(deactivate_url, json={"ids": ids[start:start + BATCH_SIZE]}, timeout=TIMEOUT)
            requests_sent += 1
            response.raise_for_status()
            deactivated += len(response.json().get("successes", []))

    print(json.dumps({"requests": requests_sent, "deactivated": deactivated}))
    return 0 if deactivated == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
