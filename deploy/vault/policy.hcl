# signerd's Vault policy: read one device secret at a time, and keep the
# PreVerify tokens all replicas share; nothing else.
#
# Device secrets live in the KV v2 mount "iot" at devices/{productKey}/{deviceName}
# (signerd's -vault-kv-mount and -vault-kv-path). KV v2 serves a secret's current
# version at <mount>/data/<path>: "read" there is all signerd needs. No "list"
# (signerd never enumerates devices), no metadata, no writes, no other mount.
# apply.sh rewrites the leading "iot/" when KV_MOUNT names another mount.
path "iot/data/devices/*" {
  capabilities = ["read"]
}

# Azure IoT Hub device and module keys, and Azure DPS enrollment group keys,
# at platform/azure's default locations (-platforms azure.vault, azure.dpsVault):
# read-only, as above.
path "iot/data/azure/*" {
  capabilities = ["read"]
}
path "iot/data/azure-dps/*" {
  capabilities = ["read"]
}

# The other platforms' device keys, at their default locations (the
# -platforms file's vault sections; a changed path needs its line here).
path "iot/data/tencent/*" {
  capabilities = ["read"]
}
path "iot/data/huawei/devices/*" {
  capabilities = ["read"]
}
path "iot/data/onenet/*" {
  capabilities = ["read"]
}

# The iotToken each device got from PreVerify, shared by every signerd
# replica (signerd's -preverify-token-path, default
# preverify-tokens/{productKey}/{deviceName}): read, and written with
# check-and-set, which needs "create" (a device's first record) and "update"
# (every later version). No delete, list, metadata or destroy: signerd only
# ever writes a newer version. The tokens are credentials: no other policy
# should grant this path. apply.sh rewrites "preverify-tokens/" when
# TOKEN_PREFIX names another.
path "iot/data/preverify-tokens/*" {
  capabilities = ["create", "read", "update"]
}
