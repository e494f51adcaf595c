"""Callback plugin for tests: append every task result to a JSON Lines file.

Enable it with ANSIBLE_CALLBACK_PLUGINS pointing at this folder, ANSIBLE_CALLBACKS_ENABLED=record_results, and
RECORD_RESULTS_PATH naming the output file. Each line has the task name, the host, the status (ok, failed or
skipped) and the result.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record_results
type: aggregate
short_description: Append every task result to the JSON Lines file named by RECORD_RESULTS_PATH
description:
  - Test helper of csp.iam. Not part of the collection.
requirements:
  - enable in configuration
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status: str) -> None:
        # ansible-core 2.19 added CallbackTaskResult.result, and older versions have only _result.
        data = dict(result.result if hasattr(result, "result") else result._result)
        # In ansible-core 2.21 the result of a failed assert task reaches callbacks without "failed", so add it.
        if status == "failed":
            data["failed"] = True
        # ansible-core 2.19 added CallbackTaskResult.host, and older versions have only _host.
        host = result.host if hasattr(result, "host") else result._host
        entry = {"task": result.task_name, "host": host.get_name(), "status": status, "result": data}
        with open(os.environ["RECORD_RESULTS_PATH"], "a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
