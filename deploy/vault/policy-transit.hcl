# Optional addition to signerd's policy (policy.hcl) for products in Transit
# mode (products file: transit: true). Grant it only to signerd deployments
# that serve such products.
#
# In Transit mode each device's secret is a Transit key of type hmac that
# never leaves Vault: signerd asks Vault for the HMAC instead of reading the
# secret, with POST <mount>/hmac/<key>/sha2-256, which needs "update" there.
# Mount "transit" (signerd's -vault-transit-mount; apply.sh rewrites the
# leading "transit/" when TRANSIT_MOUNT names another).
#
# No read of transit/keys/* (signerd never inspects keys), no export, no
# import, no encrypt/decrypt/sign: importing keys is signerctl's job, with
# an operator's token.
path "transit/hmac/*" {
  capabilities = ["update"]
}
