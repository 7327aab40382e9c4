# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""The connection options every railway_* module takes (module_utils.railway.COMMON_ARGS)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  railway_token:
    description:
      - "Railway account or workspace API token (sent as C(Authorization: Bearer))."
      - Falls back to the E(RAILWAY_API_TOKEN) environment variable.
    type: str
    required: true
  railway_api_url:
    description: GraphQL endpoint; only changed to point tests at a fake.
    type: str
    default: https://backboard.railway.com/graphql/v2
  request_timeout:
    description: Seconds to wait for each HTTP response.
    type: int
    default: 30
"""
