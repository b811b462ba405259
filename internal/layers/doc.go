// Package layers holds no code: its test checks that signerd's packages
// import each other only in the directions docs/ARCHITECTURE.md draws, so
// that a shortcut (secrets importing auth, a platform importing another,
// anything importing a command) fails the build's tests instead of
// accreting.
package layers
