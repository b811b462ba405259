#!/usr/bin/env bash
# Applies signerd's Vault side to a running Vault with the `vault` CLI:
#   1. a KV v2 secrets engine at $KV_MOUNT (enabled if absent; an existing
#      mount must already be KV v2: it is never changed),
#   2. the policy $POLICY from policy.hcl (read-only on $KV_MOUNT/data/devices/*
#      and the other platforms' key paths $KV_MOUNT/data/azure/*, azure-dps/*,
#      tencent/*, huawei/devices/*, onenet/*; read, create and update on
#      $KV_MOUNT/data/$TOKEN_PREFIX/*, where the replicas share the PreVerify
#      tokens),
#   3. Kubernetes auth at $K8S_AUTH_MOUNT (enabled if absent; configured only
#      when K8S_HOST is given) and the role $ROLE bound to the ServiceAccount
#      $K8S_SERVICE_ACCOUNT in namespace $K8S_NAMESPACE, for tokens with
#      audience $K8S_AUDIENCE (the projected token in deploy/k8s),
#   4. optionally (APPROLE=true) an AppRole role $ROLE for signerd outside
#      Kubernetes,
#   5. optionally (REGISTRATION=true) the policy $POLICY-registration from
#      policy-registration.hcl (read $KV_MOUNT/data/products/*, create-only on
#      $KV_MOUNT/data/devices/*) for the RegisterDevice RPC, attached to the
#      roles next to $POLICY. Without it the roles get $POLICY alone (a re-run
#      without REGISTRATION=true detaches it again).
#   6. optionally (TRANSIT=true) a Transit secrets engine at $TRANSIT_MOUNT
#      (enabled if absent) and the policy $POLICY-transit from
#      policy-transit.hcl (update on $TRANSIT_MOUNT/hmac/*) for products in
#      Transit mode, attached to the roles like $POLICY-registration.
# Idempotent: every step checks or overwrites with the same values, so it is
# safe to re-run. Needs VAULT_ADDR and a token allowed to manage mounts, auth
# methods and policies (VAULT_TOKEN or `vault login`); VAULT_NAMESPACE,
# VAULT_CACERT etc. apply as usual.
#
# Settings (environment; defaults match deploy/k8s and signerd's flags):
#   KV_MOUNT=iot                  signerd -vault-kv-mount
#   TOKEN_PREFIX=preverify-tokens the first segment of signerd -preverify-token-path
#   POLICY=signerd                policy name
#   ROLE=signerd                  Kubernetes auth role (signerd -vault-k8s-role) and AppRole role
#   K8S_AUTH_MOUNT=kubernetes     signerd -vault-k8s-mount
#   K8S_NAMESPACE=signerd         namespace of deploy/k8s
#   K8S_SERVICE_ACCOUNT=signerd   ServiceAccount of deploy/k8s
#   K8S_AUDIENCE=vault            audience of the projected token in deploy/k8s
#   K8S_HOST=                     API server URL; when set, writes the auth method's config
#   K8S_CA_CERT=                  with K8S_HOST: file with the API server's CA bundle
#   K8S_TOKEN_REVIEWER_JWT=       with K8S_HOST: file with a token allowed to create TokenReviews
#                                 (neither is needed when Vault itself runs in the cluster)
#   TOKEN_TTL=1h TOKEN_MAX_TTL=24h  signerd's Vault tokens (it renews, then logs in again)
#   APPROLE=false                 also create the AppRole role
#   APPROLE_MOUNT=approle         signerd -vault-approle-mount
#   APPROLE_SECRET_ID_TTL=720h    lifetime of a secret id
#   REGISTRATION=false            also allow dynamic registration (RegisterDevice)
#   TRANSIT=false                 also allow Transit HMACs (products with transit: true)
#   TRANSIT_MOUNT=transit         signerd -vault-transit-mount
#   VAULT_CLI=vault               the vault binary
set -euo pipefail

KV_MOUNT=${KV_MOUNT:-iot}
TOKEN_PREFIX=${TOKEN_PREFIX:-preverify-tokens}
POLICY=${POLICY:-signerd}
ROLE=${ROLE:-signerd}
K8S_AUTH_MOUNT=${K8S_AUTH_MOUNT:-kubernetes}
K8S_NAMESPACE=${K8S_NAMESPACE:-signerd}
K8S_SERVICE_ACCOUNT=${K8S_SERVICE_ACCOUNT:-signerd}
K8S_AUDIENCE=${K8S_AUDIENCE:-vault}
K8S_HOST=${K8S_HOST:-}
K8S_CA_CERT=${K8S_CA_CERT:-}
K8S_TOKEN_REVIEWER_JWT=${K8S_TOKEN_REVIEWER_JWT:-}
TOKEN_TTL=${TOKEN_TTL:-1h}
TOKEN_MAX_TTL=${TOKEN_MAX_TTL:-24h}
APPROLE=${APPROLE:-false}
APPROLE_MOUNT=${APPROLE_MOUNT:-approle}
APPROLE_SECRET_ID_TTL=${APPROLE_SECRET_ID_TTL:-720h}
REGISTRATION=${REGISTRATION:-false}
TRANSIT=${TRANSIT:-false}
TRANSIT_MOUNT=${TRANSIT_MOUNT:-transit}
VAULT_CLI=${VAULT_CLI:-vault}

here=$(cd "$(dirname "$0")" && pwd)
# Table output is parsed below: ignore a VAULT_FORMAT=json in the caller's shell.
export VAULT_FORMAT=table

say() { printf 'apply.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
v() { "$VAULT_CLI" "$@"; }

for name in KV_MOUNT TOKEN_PREFIX POLICY ROLE K8S_AUTH_MOUNT K8S_NAMESPACE K8S_SERVICE_ACCOUNT K8S_AUDIENCE APPROLE_MOUNT TRANSIT_MOUNT; do
  [[ ${!name} =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "$name=${!name@Q}: want letters, digits, '.', '_' or '-'"
done
case $APPROLE in true | false) ;; *) die "APPROLE=${APPROLE@Q}: want true or false" ;; esac
case $REGISTRATION in true | false) ;; *) die "REGISTRATION=${REGISTRATION@Q}: want true or false" ;; esac
case $TRANSIT in true | false) ;; *) die "TRANSIT=${TRANSIT@Q}: want true or false" ;; esac
command -v "$VAULT_CLI" >/dev/null || die "no vault CLI ($VAULT_CLI); install it or set VAULT_CLI"
[ -n "${VAULT_ADDR:-}" ] || die "VAULT_ADDR is not set"
v token lookup >/dev/null || die "cannot use the Vault token at $VAULT_ADDR (set VAULT_TOKEN or run vault login)"

# mount_type LIST PATH prints the type of the mount at PATH/ from
# `vault secrets list` or `vault auth list`, or nothing when there is none.
mount_type() {
  local table
  table=$(v "$1" list) || die "vault $1 list failed"
  awk -v p="$2/" '$1 == p { print $2 }' <<<"$table"
}

# 1. KV v2 for device secrets.
kv_type=$(mount_type secrets "$KV_MOUNT")
case $kv_type in
  "")
    v secrets enable -path="$KV_MOUNT" -version=2 -description="signerd device secrets" kv >/dev/null
    say "enabled KV v2 at $KV_MOUNT/"
    ;;
  kv)
    opts=$(v read -field=options "sys/mounts/$KV_MOUNT")
    [[ $opts == *version:2* ]] ||
      die "$KV_MOUNT/ is a KV version 1 mount ($opts); signerd needs KV v2 (vault kv enable-versioning $KV_MOUNT upgrades it) or another KV_MOUNT"
    say "KV v2 at $KV_MOUNT/ already enabled"
    ;;
  *) die "$KV_MOUNT/ is mounted as $kv_type, not kv: choose another KV_MOUNT" ;;
esac

# 2. The least-privilege policy, with the mount name substituted.
[ "$TOKEN_PREFIX" != devices ] || die "TOKEN_PREFIX=devices: the PreVerify tokens must not share the device secrets' path"
sed -e "s#\"iot/#\"$KV_MOUNT/#" -e "s#/data/preverify-tokens/#/data/$TOKEN_PREFIX/#" "$here/policy.hcl" | v policy write "$POLICY" - >/dev/null
say "wrote policy $POLICY (read $KV_MOUNT/data/devices/*, azure/*, azure-dps/*, tencent/*, huawei/devices/*, onenet/*; read, create, update $KV_MOUNT/data/$TOKEN_PREFIX/*)"
POLICIES=$POLICY
if [ "$REGISTRATION" = true ]; then
  sed "s#\"iot/#\"$KV_MOUNT/#" "$here/policy-registration.hcl" | v policy write "$POLICY-registration" - >/dev/null
  POLICIES="$POLICY,$POLICY-registration"
  say "wrote policy $POLICY-registration (read $KV_MOUNT/data/products/*, create $KV_MOUNT/data/devices/*)"
fi
if [ "$TRANSIT" = true ]; then
  transit_type=$(mount_type secrets "$TRANSIT_MOUNT")
  case $transit_type in
    "")
      v secrets enable -path="$TRANSIT_MOUNT" -description="signerd device HMAC keys" transit >/dev/null
      say "enabled Transit at $TRANSIT_MOUNT/"
      ;;
    transit) say "Transit at $TRANSIT_MOUNT/ already enabled" ;;
    *) die "$TRANSIT_MOUNT/ is mounted as $transit_type, not transit: choose another TRANSIT_MOUNT" ;;
  esac
  sed "s#\"transit/#\"$TRANSIT_MOUNT/#" "$here/policy-transit.hcl" | v policy write "$POLICY-transit" - >/dev/null
  POLICIES="$POLICIES,$POLICY-transit"
  say "wrote policy $POLICY-transit (update $TRANSIT_MOUNT/hmac/*)"
fi

# 3. Kubernetes auth and signerd's role.
k8s_type=$(mount_type auth "$K8S_AUTH_MOUNT")
case $k8s_type in
  "")
    v auth enable -path="$K8S_AUTH_MOUNT" -description="Kubernetes service accounts" kubernetes >/dev/null
    say "enabled kubernetes auth at $K8S_AUTH_MOUNT/"
    ;;
  kubernetes) say "kubernetes auth at $K8S_AUTH_MOUNT/ already enabled" ;;
  *) die "auth/$K8S_AUTH_MOUNT/ is $k8s_type auth, not kubernetes: choose another K8S_AUTH_MOUNT" ;;
esac
if [ -n "$K8S_HOST" ]; then
  args=(kubernetes_host="$K8S_HOST")
  if [ -n "$K8S_CA_CERT" ]; then args+=(kubernetes_ca_cert=@"$K8S_CA_CERT"); fi
  if [ -n "$K8S_TOKEN_REVIEWER_JWT" ]; then args+=(token_reviewer_jwt=@"$K8S_TOKEN_REVIEWER_JWT"); fi
  v write "auth/$K8S_AUTH_MOUNT/config" "${args[@]}" >/dev/null
  say "configured auth/$K8S_AUTH_MOUNT for $K8S_HOST"
elif [ -z "$(v read -field=kubernetes_host "auth/$K8S_AUTH_MOUNT/config" 2>/dev/null)" ]; then
  say "warning: auth/$K8S_AUTH_MOUNT has no kubernetes_host yet: set K8S_HOST (and K8S_CA_CERT) and re-run, or configure it yourself"
fi
# The role binds exactly one ServiceAccount in one namespace and accepts
# only tokens minted for the audience $K8S_AUDIENCE. The default policy stays
# attached: it lets signerd look up and renew its own token.
v write "auth/$K8S_AUTH_MOUNT/role/$ROLE" \
  bound_service_account_names="$K8S_SERVICE_ACCOUNT" \
  bound_service_account_namespaces="$K8S_NAMESPACE" \
  audience="$K8S_AUDIENCE" \
  alias_name_source=serviceaccount_uid \
  token_policies="$POLICIES" \
  token_ttl="$TOKEN_TTL" \
  token_max_ttl="$TOKEN_MAX_TTL" \
  token_type=service >/dev/null
say "wrote role auth/$K8S_AUTH_MOUNT/role/$ROLE (ServiceAccount $K8S_NAMESPACE/$K8S_SERVICE_ACCOUNT, audience $K8S_AUDIENCE, policies $POLICIES)"

# 4. Optional AppRole role, for signerd outside Kubernetes.
if [ "$APPROLE" = true ]; then
  approle_type=$(mount_type auth "$APPROLE_MOUNT")
  case $approle_type in
    "")
      v auth enable -path="$APPROLE_MOUNT" approle >/dev/null
      say "enabled approle auth at $APPROLE_MOUNT/"
      ;;
    approle) ;;
    *) die "auth/$APPROLE_MOUNT/ is $approle_type auth, not approle: choose another APPROLE_MOUNT" ;;
  esac
  v write "auth/$APPROLE_MOUNT/role/$ROLE" \
    token_policies="$POLICIES" \
    token_ttl="$TOKEN_TTL" \
    token_max_ttl="$TOKEN_MAX_TTL" \
    token_type=service \
    secret_id_ttl="$APPROLE_SECRET_ID_TTL" \
    secret_id_num_uses=0 >/dev/null
  say "wrote role auth/$APPROLE_MOUNT/role/$ROLE (policies $POLICIES); role id: $(v read -field=role_id "auth/$APPROLE_MOUNT/role/$ROLE/role-id")"
  say "a secret id for signerd's -vault-approle-secret-id-file: vault write -f -field=secret_id auth/$APPROLE_MOUNT/role/$ROLE/secret-id"
fi
say "done"
