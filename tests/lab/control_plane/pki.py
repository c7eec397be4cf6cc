# -*- coding: utf-8 -*-
# Copyright: (c) 2026, homelab.longhorn_dr contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab cluster's certificates, keys and static tokens, as a k3s server writes them at first start.

One CA signs the API server's serving certificate, the client certificate it uses towards the
node agent (kubelet API), and the node agent's serving certificate.  The service-account key pair
signs and verifies service-account tokens.  Users authenticate with static bearer tokens
(``--token-auth-file``), one per identity.
"""

from __future__ import annotations

import csv
import datetime
import ipaddress
import os
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The Service ClusterIP range k3s uses by default; its first address is kubernetes.default.
SERVICE_CIDR = "10.43.0.0/16"
KUBERNETES_SERVICE_IP = "10.43.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# Identities with a static token: (name, user, groups).  "admin" is what the collection and the
# tests use; "restricted" holds only what RBAC grants it, so refusals can be tested.
IDENTITIES = (
    ("admin", "lab-admin", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
    ("node-agent", "system:node:lab-node-1", ("system:nodes",)),
    ("longhorn", "system:serviceaccount:longhorn-system:longhorn-service-account", ("system:serviceaccounts", "system:serviceaccounts:longhorn-system")),
    ("restricted", "lab-restricted", ("lab:restricted",)),
)


def _write(path, data, mode=0o600):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject_cn, issuer_cert, issuer_key, public_key, *, organization=None, ca=False, server_names=(), client=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server_names:
        names = []
        for name in server_names:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                names.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """Files under ``<dir>``: created once, reused on a warm start (as k3s keeps /var/lib/rancher/k3s/server/tls)."""

    def __init__(self, directory):
        self.dir = directory

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def ca_cert(self):
        return self.path("ca.crt")

    def ensure(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path("tokens.csv")):
            self._create()
        return self

    def _create(self):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _cert("lab-server-ca", None, ca_key, ca_key.public_key(), ca=True)
        _write(self.path("ca.key"), _key_pem(ca_key))
        _write(self.path("ca.crt"), ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

        def issue(stem, cn, **kwargs):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _cert(cn, ca_cert, ca_key, key.public_key(), **kwargs)
            _write(self.path(stem + ".key"), _key_pem(key))
            _write(self.path(stem + ".crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)

        issue("apiserver", "kube-apiserver", server=True,
              server_names=("127.0.0.1", "localhost", KUBERNETES_SERVICE_IP, "kubernetes", "kubernetes.default",
                            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
        # The aggregation layer's front proxy has its own CA, as on k3s (request-header-ca.crt).
        proxy_ca_key = ec.generate_private_key(ec.SECP256R1())
        proxy_ca = _cert("lab-request-header-ca", None, proxy_ca_key, proxy_ca_key.public_key(), ca=True)
        _write(self.path("request-header-ca.crt"), proxy_ca.public_bytes(serialization.Encoding.PEM), 0o644)
        proxy_key = ec.generate_private_key(ec.SECP256R1())
        _write(self.path("client-auth-proxy.key"), _key_pem(proxy_key))
        proxy_cert = _cert("system:auth-proxy", proxy_ca, proxy_ca_key, proxy_key.public_key(), client=True)
        _write(self.path("client-auth-proxy.crt"), proxy_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        issue("apiserver-kubelet-client", "system:kube-apiserver", organization="system:masters", client=True)
        issue("node-agent-serving", "lab-node-1", server=True, server_names=("127.0.0.1", "localhost", "lab-node-1"))
        issue("webhook-serving", "longhorn-admission-webhook", server=True,
              server_names=("127.0.0.1", "localhost", "longhorn-admission-webhook.longhorn-system.svc"))
        # Service-account tokens: RSA, as kubeadm and k3s generate them.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(self.path("service-account.key"), _key_pem(sa_key))
        _write(self.path("service-account.pub"), sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        with open(self.path("tokens.csv.tmp"), "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for index, (_name, user, groups) in enumerate(IDENTITIES):
                writer.writerow([secrets.token_hex(24), user, "lab-uid-%d" % index] + ([",".join(groups)] if groups else []))
        os.chmod(self.path("tokens.csv.tmp"), 0o600)
        os.replace(self.path("tokens.csv.tmp"), self.path("tokens.csv"))

    def token(self, identity):
        """The bearer token of an identity named in IDENTITIES."""
        users = {name: user for name, user, _groups in IDENTITIES}
        if identity not in users:
            raise KeyError("unknown lab identity %r; known: %s" % (identity, ", ".join(users)))
        with open(self.path("tokens.csv"), encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                if row[1] == users[identity]:
                    return row[0]
        raise KeyError("no token for %r in %s" % (identity, self.path("tokens.csv")))
