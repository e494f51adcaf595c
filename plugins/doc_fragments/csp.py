# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection and authentication options shared by every module of this collection.
    DOCUMENTATION = r"""
options:
  api_host:
    description:
      - The CSP host to call, as a host name, V(host:port), or an V(https://) URL without a path.
      - Examples are V(console.cloud.vmware.com), V(console-stg.cloud.vmware.com),
        V(console.tanzu.broadcom.com), or a VCF Automation appliance.
      - An V(http://) URL is rejected, because credentials must never travel over plain HTTP.
      - Spaces and line breaks around the value are ignored. Inside it they are an error.
      - If not set, the value of the E(CSP_API_HOST) environment variable is used.
    type: str
    default: console.cloud.vmware.com
  api_token:
    description:
      - A user's API token, generated in the console. The module exchanges it for a short-lived access token
        and renews that token when it expires during a run, at most once for each request.
      - If not set, the value of the E(CSP_API_TOKEN) environment variable is used.
      - Give exactly one kind of credential - O(api_token), O(access_token), or O(client_id) with O(client_secret).
    type: str
  passcode:
    description:
      - A one-time MFA code, sent with O(api_token) where the organization requires MFA for the API-token exchange.
      - Because the code works once, a run that must renew its access token fails when the code is used up.
    type: str
  access_token:
    description:
      - An access token obtained elsewhere, sent as is. The module cannot renew it, so the run fails when it expires.
      - If not set, the value of the E(CSP_ACCESS_TOKEN) environment variable is used.
    type: str
  client_id:
    description:
      - The client ID of an OAuth app or service account, for the client-credentials grant. Requires O(client_secret).
      - If not set, the value of the E(CSP_CLIENT_ID) environment variable is used.
    type: str
  client_secret:
    description:
      - The client secret that goes with O(client_id).
      - If not set, the value of the E(CSP_CLIENT_SECRET) environment variable is used.
    type: str
  validate_certs:
    description:
      - Whether to verify the host's TLS certificate.
      - Set to V(false) only on a lab appliance you trust. The module warns when verification is off.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to trust instead of the default bundle, for appliances whose certificate
        is signed by a private CA.
      - This option wins over the E(REQUESTS_CA_BUNDLE) and E(CURL_CA_BUNDLE) environment variables, and so does
        the default bundle when O(ca_path) is not set.
      - If not set, the value of the E(CSP_CA_PATH) environment variable is used.
    type: path
  timeout:
    description:
      - Seconds to wait for a connection, and for each response to arrive completely. Greater than 0 and at
        most 3600.
    type: float
    default: 30
  retries:
    description:
      - How many times one request is retried after HTTP 429, 502, 503 or 504 or a connection failure.
      - The wait honours the service's C(Retry-After) header. Without one, it grows exponentially from about
        0.5 seconds, with jitter, up to 30 seconds. The waits of one request total at most 120 seconds, so a
        C(Retry-After) that requests more ends the retries at once.
      - V(0) turns retries off.
    type: int
    default: 5
notes:
  - Proxies are read from the standard E(HTTPS_PROXY) and E(NO_PROXY) environment variables.
  - >-
    The modules call the CSP API from the host that runs them, which is usually the controller, through
    C(hosts: localhost) or C(delegate_to: localhost). That host needs the Python library C(requests) and
    network access to O(api_host); the managed nodes need neither.
requirements:
  - requests
"""

    # Options of the modules that send API token ids in batches.
    TOKEN_BATCHES = r"""
options:
  max_concurrency:
    description:
      - How many batch requests of at most 15 ids to send at the same time.
      - V(1), the default, sends one batch after the other. Higher values finish large lists sooner, and the
        result keeps the order of O(token_ids) either way.
      - At most V(8). The service's rate limit is not documented, and beyond a few parallel requests the
        time saved goes mostly into HTTP 429 responses. A 429 on any request slows every request of the run.
      - After a request fails, no new batch starts. Batches already in flight complete and are accounted for.
    type: int
    default: 1
"""
