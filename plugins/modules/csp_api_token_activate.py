#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: csp.iam contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: csp_api_token_activate
short_description: Re-activate deactivated API tokens of a VMware Cloud Services organization
version_added: 0.1.0
description:
  - Re-activates API tokens of one organization in VMware Cloud Services (CSP), the Tanzu Platform console,
    or the identity service of VCF Automation, through
    C(POST /csp/gateway/am/api/orgs/{orgId}/api-tokens/activate).
  - Undoes M(csp.iam.csp_api_token_deactivate), for example when an offboarding run cut off the wrong token.
  - Sends the ids in batches of at most 15, the API's limit, and accounts for every id, including those of
    batches that succeeded before a later request failed.
  - Safe to run again until it succeeds. A token that the service reports as already active counts neither as
    a change nor as a failure.
author:
  - csp.iam contributors (!UNKNOWN)
extends_documentation_fragment:
  - csp.iam.csp
  - csp.iam.csp.token_batches
options:
  org_id:
    description:
      - The GUID of the organization that owns the tokens.
      - If not set, the value of the E(CSP_ORG_ID) environment variable is used.
    type: str
    required: true
  token_ids:
    description:
      - The ids of the API tokens to re-activate.
      - Duplicates are removed and the first occurrence keeps its place. A blank entry, a non-string entry,
        an id with surrounding spaces, and an id with control or invisible characters are errors. An empty
        list sends no request.
      - A string is split at commas, so that O(token_ids=a,b) works on the command line. Any other value
        that is not a list, such as a bare number or a mapping, is an error.
    type: raw
    required: true
    aliases:
      - ids
attributes:
  check_mode:
    description: Can run in check mode, which predicts the result without changing any token.
    support: partial
    details:
      - No API reads the state of a token by id, so check mode cannot tell which tokens are already active.
        It reports every requested id under RV(activated) and C(changed=true), sends no activate request,
        and, for O(api_token) and O(client_id) credentials without O(passcode), authenticates once to verify
        the credentials.
  diff_mode:
    description: Diff mode shows no difference, because the state of a token cannot be read.
    support: none
  action_group:
    description: Use C(group/csp.iam.csp) in C(module_defaults) to set the connection options of all the modules.
    support: full
    membership:
      - csp.iam.csp
notes:
  - The endpoint needs the Organization Owner role and a user's credentials, O(api_token) or O(access_token).
    The API reference does not allow service accounts (client credentials) to call it, and the module then
    fails with HTTP 403.
  - The wording of the service's message for a token that is already active is not documented. The module
    treats a failure as "already active" when its message contains V(already) followed within a few words by
    V(active), V(activated) or V(enabled), such as V(API token X is already active.), unless a word that negates
    it or puts it in the future, such as V(not), V(never), V(scheduled) or V(pending), stands right before
    V(already) or between the two words. Every other failure message fails the task.
  - When a request is retried after its first attempt may have reached the service, tokens that the retry
    reports as already active are counted under RV(activated), and the module warns.
  - The first request that fails as a whole, after its retries, stops the run. The ids of that batch and of
    every later batch are listed under RV(failures), and the task fails while still reporting what earlier
    batches activated.
"""

EXAMPLES = r"""
- name: Restore a token that an offboarding run deactivated by mistake
  csp.iam.csp_api_token_activate:
    org_id: 8a3c1f52-3c57-4a5e-9d4b-1f0e2d7c6b5a
    token_ids:
      - 3f1c2b7e-5d4a-4c3b-9a8f-1e2d3c4b5a69
    api_token: "{{ csp_api_token }}"
  delegate_to: localhost

- name: Undo a deactivation, reusing its registered result
  csp.iam.csp_api_token_activate:
    org_id: "{{ org_id }}"
    ids: "{{ offboarding.deactivated }}"
  delegate_to: localhost
"""

RETURN = r"""
activated:
  description:
    - Ids of the tokens that this run re-activated, in request order.
    - In check mode, every requested id, because the state of a token cannot be read.
  returned: always
  type: list
  elements: str
  sample: ["3f1c2b7e-5d4a-4c3b-9a8f-1e2d3c4b5a69"]
already_active:
  description: Ids that the service reported as already active. They make neither a change nor a failure.
  returned: always
  type: list
  elements: str
  sample: []
failures:
  description:
    - Every other requested id, with the reason it did not end up active - the service's message, an id the
      response did not mention, a request that failed, or a batch not sent after an earlier request failed.
    - The task fails when this list is not empty.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The token id.
      type: str
      returned: always
    message:
      description: Why the token was not re-activated.
      type: str
      returned: always
  sample: [{"id": "9d8c7b6a-5f4e-4d3c-8b2a-190f8e7d6c5b", "message": "API token 9d8c... was not found."}]
requests:
  description: How many activate requests were sent, retries not counted.
  returned: always
  type: int
  sample: 1
retries:
  description: How many times a request was retried after a rate limit, a gateway error or a connection failure.
  returned: always
  type: int
  sample: 0
msg:
  description: One sentence with the counts, and the error that stopped the run if one did.
  returned: always
  type: str
  sample: "Activated 1 of 1 API tokens: 0 already active, 0 failed."
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.csp.iam.plugins.module_utils._token_module import run_token_state_module, token_argument_spec
from ansible_collections.csp.iam.plugins.module_utils._token_state import ACTIVATE


def main():
    module = AnsibleModule(argument_spec=token_argument_spec(), supports_check_mode=True)
    run_token_state_module(module, ACTIVATE)


if __name__ == "__main__":
    main()
