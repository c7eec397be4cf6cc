# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""API errors shaped as Kubernetes ``Status`` objects."""

from __future__ import annotations


class ApiError(Exception):
    """An error the API server answers with; ``status()`` is the wire body."""

    code = 500
    reason = "InternalError"

    def __init__(self, message, *, code=None, reason=None, details=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason
        self.details = details or {}

    def status(self):
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(kind_plural, name, group=""):
    details = {"kind": kind_plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def _qualified(plural, group):
    return "%s.%s" % (plural, group) if group else plural


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    def __init__(self, plural, name, group=""):
        super().__init__('%s "%s" not found' % (_qualified(plural, group), name), details=_details(plural, name, group))


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    def __init__(self, plural, name, group=""):
        super().__init__('%s "%s" already exists' % (_qualified(plural, group), name), details=_details(plural, name, group))


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    def __init__(self, plural, name, group="", why="the object has been modified; please apply your changes to the latest version and try again"):
        super().__init__('Operation cannot be fulfilled on %s "%s": %s' % (_qualified(plural, group), name, why),
                         details=_details(plural, name, group))


class Invalid(ApiError):
    """422: ``causes`` is a list of ``(field, message, reason)``."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind, name, causes, group=""):
        self.causes = list(causes)
        qualified = "%s.%s" % (kind, group) if group else kind
        text = ", ".join("%s: %s" % (field, msg) if field else msg for field, msg, _reason in self.causes)
        if len(self.causes) > 1:
            # The API server brackets an aggregate of several field errors.
            text = "[%s]" % text
        details = {"name": name, "kind": kind, "causes": [
            {"reason": reason, "message": msg, "field": field} for field, msg, reason in self.causes]}
        if group:
            details["group"] = group
        super().__init__('%s "%s" is invalid: %s' % (qualified, name, text), details=details)


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class Gone(ApiError):
    code = 410
    reason = "Expired"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class Timeout(ApiError):
    code = 504
    reason = "Timeout"


class AdmissionDenied(ApiError):
    """What a validating webhook's denial looks like to a client.

    Longhorn's webhooks answer most refusals as 422 Invalid (werror.NewInvalidError);
    callers pass another code where the webhook does.
    """

    code = 422
    reason = "Invalid"

    def __init__(self, webhook, message, code=None):
        super().__init__('admission webhook "%s" denied the request: %s' % (webhook, message), code=code)
