package aliyun_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// client, attempt, backoff timer and emulator handler must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
