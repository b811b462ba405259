# Optional addition to signerd's policy (policy.hcl) for dynamic registration
# (the RegisterDevice RPC). Grant it only to signerd deployments that register
# devices; policy.hcl alone keeps signerd read-only.
#
# RegisterDevice reads the product's ProductSecret and stores the DeviceSecret
# the platform issues, never replacing a stored one. KV v2 (mount "iot", as in
# policy.hcl; change the leading "iot/" for another -vault-kv-mount):
#
# - ProductSecrets live at products/{productKey}, field productSecret (signerd's
#   -vault-product-path and -vault-product-field): read only.
# - Device secrets are written with check-and-set cas=0 at
#   devices/{productKey}/{deviceName}. "create" allows writing a key that does
#   not exist yet and nothing else: a write to an existing device is an update,
#   which Vault denies, so not even a bug in signerd could overwrite a secret.
#   "read" there comes from policy.hcl.
#
# No "update", "delete", "list" or metadata access.
path "iot/data/products/*" {
  capabilities = ["read"]
}

path "iot/data/devices/*" {
  capabilities = ["create"]
}
