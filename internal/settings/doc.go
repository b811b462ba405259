// Package settings reads a command's settings from its three sources in
// one way for signerd and signerctl alike: the command line, then
// PREFIX_NAME environment variables for what the command line left out,
// then a YAML file of settings by flag name for what both left out.
//
// A command has one list of settings, its flag.FlagSet; the environment
// and the file name the same settings, so that each has one name, one
// default and one check. Every problem of every source is reported in one
// run, each naming the flag, variable or file key and saying what was
// wanted; a misspelt name is an error with the nearest real name, never a
// setting silently left at its default.
package settings
