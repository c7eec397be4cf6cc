# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This doc fragment is PRIVATE to homelab.longhorn_dr: it may change at any time.
# Do not use it from other collections or standalone modules.

from __future__ import annotations


class ModuleDocFragment:

    # Mirrors S3_CONNECTION_ARG_SPEC in plugins/module_utils/_s3.py option by option;
    # names and aliases follow amazon.aws so that habits carry over.
    DOCUMENTATION = r"""
options:
  endpoint_url:
    description:
      - URL of the S3 API, for example V(https://minio.example.com:9000).
      - The same value as C(AWS_ENDPOINTS) in Longhorn's backup target credential secret.
      - Requests use path-style addressing, as Longhorn does when C(AWS_ENDPOINTS) is set.
    type: str
    required: true
    aliases: [aws_endpoint_url, s3_url]
  access_key:
    description:
      - The access key ID (C(AWS_ACCESS_KEY_ID)).
      - When neither O(access_key) nor O(secret_key) is given, boto3 looks for credentials
        the usual way (environment variables, shared credentials file).
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description:
      - The secret access key (C(AWS_SECRET_ACCESS_KEY)). Never shown in results, warnings or errors.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description:
      - A session token for temporary credentials. Never shown in results, warnings or errors.
    type: str
    aliases: [aws_session_token]
  region:
    description:
      - The region requests are signed for. MinIO accepts V(us-east-1) unless it was configured otherwise.
      - Use the region of the backup target URL C(s3://<bucket>@<region>/).
    type: str
    default: us-east-1
    aliases: [aws_region]
  validate_certs:
    description:
      - Whether to verify the endpoint's TLS certificate.
    type: bool
    default: true
  ca_bundle:
    description:
      - A PEM file with the CA certificates to trust instead of the system ones, like C(AWS_CERT) for Longhorn.
      - If not set, the value of the E(AWS_CA_BUNDLE) environment variable is used.
      - Ignored when O(validate_certs=false).
    type: path
    aliases: [aws_ca_bundle]
  bucket:
    description:
      - The bucket of the backup target, the C(<bucket>) of C(s3://<bucket>@<region>/<prefix>/).
    type: str
    required: true
  prefix:
    description:
      - The path of the backup target URL, the C(<prefix>) of C(s3://<bucket>@<region>/<prefix>/).
      - Longhorn keeps its data under C(<prefix>/backupstore/); the default is the bucket root.
    type: str
    default: ""
"""
