package secrets

// CheckPathTemplate checks a device secret's path template
// (VaultConfig.PathTemplate) as NewVault will, so that a command can
// report a bad one with its other settings, before it dials Vault.
func CheckPathTemplate(t string) error { return checkTemplate(t) }
